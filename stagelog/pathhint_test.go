package stagelog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSandboxPathHint: which PATH entries the hint blames, and that it
// stays silent when PATH explains nothing (the negative control).
func TestSandboxPathHint(t *testing.T) {
	home := t.TempDir()
	gobin := filepath.Join(home, "go", "bin")
	if err := os.MkdirAll(gobin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gobin, "protoc-gen-go"), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	shims := t.TempDir() // outside any home: the sandbox holds it
	shim := "#!/bin/sh\nexec " + home + "/.pyenv/versions/3.12/bin/python3 \"$@\"\n"
	if err := os.WriteFile(filepath.Join(shims, "python3.99"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		log        []string
		want       []string // substrings; none: no hint
	}{
		{"tool under home", "/usr/bin:" + gobin, []string{"sh: 1: protoc-gen-go: not found"},
			[]string{"protoc-gen-go is " + gobin + "/protoc-gen-go on this machine, but " + gobin + " is not visible", "  " + gobin + "\n", "Fix: "}},
		{"bash says it differently", "/usr/bin:" + gobin, []string{"bash: line 1: protoc-gen-go: command not found"},
			[]string{"protoc-gen-go is " + gobin + "/protoc-gen-go on this machine"}},
		{"shim outside home running a program under it", "/usr/bin:" + shims, []string{"sh: 1: python3.99: not found"},
			[]string{"python3.99 is " + shims + "/python3.99 on this machine: a shim", "Fix: "}},
		{"the shim ran and missed its target", "/usr/bin:" + shims, []string{shims + "/python3: 2: exec: " + home + "/.pyenv/versions/3.12/bin/python3: not found"},
			[]string{home + "/.pyenv/versions/3.12/bin/python3 is under " + home}},
		{"nothing on PATH under home, tool missing everywhere", "/usr/bin:/bin", []string{"sh: 1: nope: not found"}, nil},
		{"no not-found line, no home entry", "/usr/bin:/bin", []string{"some tool exited 127 by itself"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sandboxPathHint(c.log, c.path, home)
			if c.want == nil {
				if got != "" {
					t.Errorf("hint %q, want none", got)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("hint lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
