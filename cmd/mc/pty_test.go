package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// openPty returns a pseudo-terminal of the given size: what mc writes to
// the second file, a terminal shows, and the test reads from the first.
func openPty(t *testing.T, cols, rows int) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal (/dev/ptmx): %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the terminal side: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}); err != nil {
		t.Fatalf("setting the terminal size: %v", err)
	}
	return m, s
}

// runInPty runs mc with args, its stdout and stderr a terminal of cols
// columns, and returns the exit status and all it wrote.
func runInPty(t *testing.T, cols int, args ...string) (int, string) {
	t.Helper()
	m, s := openPty(t, cols, 30)
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(&out, m)
		var pe *os.PathError
		if err != nil && !(errors.As(err, &pe) && errors.Is(pe.Err, syscall.EIO)) {
			t.Errorf("reading the terminal: %v", err)
		}
	}()
	code := Main(args, s, s)
	s.Close() // the reader then gets EIO: everything written has been read
	<-done
	return code, out.String()
}

var escape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// screenLines are the runs of visible text between line starts: what
// would wrap on the terminal if one reached its width.
func screenLines(raw string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(raw, func(r rune) bool { return r == '\n' || r == '\r' }) {
		out = append(out, escape.ReplaceAllString(l, ""))
	}
	return out
}

// TestProgressInPty: on a terminal, mc build draws one line per running
// stage (longest first) above a line of counts, cut to the width so that
// nothing wraps, at 50 and 120 columns; colours follow NO_COLOR and
// --color, and are never red or yellow for healthy stages.
func TestProgressInPty(t *testing.T) {
	pkg := "services/payments/internal/generated/protobuf"
	build := `stage(name = "first_stage_with_a_long_name", cmd = "sleep 1.6; echo one")
stage(name = "second_stage_with_a_long_name", cmd = "sleep 1.6; echo two")
stage(name = "third", cmd = "sleep 1.6; echo three")
`
	for _, c := range []struct {
		cols  int
		env   []string
		flags []string
		color bool
	}{
		{120, nil, nil, true},
		{50, []string{"NO_COLOR=1"}, nil, false},
		{50, []string{"NO_COLOR=1"}, []string{"--color=always"}, true},
		{120, nil, []string{"--color=never"}, false},
	} {
		t.Run(fmt.Sprintf("%dcols%v%v", c.cols, c.env, c.flags), func(t *testing.T) {
			ws := t.TempDir()
			for name, body := range map[string]string{"WORKSPACE.mc": `workspace(name = "pty")` + "\n", pkg + "/BUILD.mc": build} {
				p := filepath.Join(ws, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("XDG_CACHE_HOME", filepath.Join(ws, ".cache"))
			t.Setenv("NO_COLOR", "")
			os.Unsetenv("NO_COLOR")
			for _, kv := range c.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			args := append([]string{"-C", ws, "build", "-j", "3"}, c.flags...)
			code, raw := runInPty(t, c.cols, append(args, "//...")...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, raw)
			}
			// Three stage lines above the counts, at some redraw.
			stage := `  \S+  \d+\.\d\ds\n`
			block := regexp.MustCompile(stage + stage + stage + `\[\d/3\] 3 running · 0 cached · 0 failed · \d+\.\d\ds`)
			plain := strings.ReplaceAll(escape.ReplaceAllString(raw, ""), "\r\n", "\n")
			if !block.MatchString(plain) {
				t.Errorf("no progress block with the three running stages:\n%q", plain)
			}
			// No line of the progress block, nor of the summary, is wrapped
			// by the terminal: the block is cut to the width, the summary
			// wrapped at spaces (a single word longer than the line, such
			// as a long label, stays whole). The stages' own lines
			// ("[//pkg:name] ...") are their logs, shown whole.
			for _, l := range screenLines(raw) {
				if strings.HasPrefix(l, "[//") {
					continue
				}
				live := strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "[")
				if n := utf8.RuneCountInString(l); n >= c.cols && (live || strings.Contains(strings.TrimSpace(l), " ")) {
					t.Errorf("a line of %d columns on a %d-column terminal wraps: %q", n, c.cols, l)
				}
			}
			if c.cols == 50 && !strings.Contains(plain, "…") {
				t.Errorf("at 50 columns the long labels must be cut:\n%q", plain)
			}
			colored := regexp.MustCompile(`\x1b\[(\d+)m\[//`).FindAllStringSubmatch(raw, -1)
			if c.color != (len(colored) > 0) {
				t.Errorf("colour %v, but %d coloured labels:\n%q", c.color, len(colored), raw)
			}
			for _, m := range colored {
				if m[1] == "31" || m[1] == "33" || m[1] == "91" || m[1] == "93" {
					t.Errorf("a healthy stage's label in red or yellow (%s)", m[1])
				}
			}
			if !c.color && regexp.MustCompile(`\x1b\[[0-9;]*m`).MatchString(raw) {
				t.Errorf("colour codes with colour off:\n%q", raw)
			}
			// The block is gone at the end: the summary is the last thing.
			i, j := strings.LastIndex(raw, "running ·"), strings.Index(raw, "Build: 3 built, 0 cached, 0 failed in ")
			if i < 0 || j < i || !strings.Contains(raw[i:j], "\x1b[J") || !(strings.HasSuffix(raw[:j], "\n") || strings.HasSuffix(raw[:j], "\x1b[J")) {
				t.Errorf("no summary line of its own:\n%q", plain)
			}
		})
	}
}
