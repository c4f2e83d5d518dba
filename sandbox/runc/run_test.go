package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/syncbuf"
)

func TestRun(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	ws := rootDir(t, rt)
	if err := os.Mkdir(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(ws, "sub"), confineUID(t, rt), confineUID(t, rt)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		edit     func(*Spec)
		wantCode int
		wantOut  string // exact, unless contains
		contains bool
	}{
		{name: "echo", args: []string{"/bin/echo", "hello"}, wantOut: "hello\n"},
		{name: "exit code", args: []string{"/bin/sh", "-c", "echo before; exit 3"}, wantCode: 3, wantOut: "before\n"},
		// runc copies the two streams separately: their interleaving is
		// lost, unless the command sends both to one.
		{name: "interleaved in one stream", args: []string{"/bin/sh", "-c", "exec 2>&1; echo 1; echo 2 >&2; echo 3; echo 4 >&2"}, wantOut: "1\n2\n3\n4\n"},
		{name: "root", args: []string{"/bin/id", "-u"}, wantOut: "0\n"},
		{name: "hostname", args: []string{"/bin/hostname"}, wantOut: "mc\n"},
		{name: "open files limit", args: []string{"/bin/sh", "-c", "ulimit -n; ulimit -Hn"}, wantOut: fmt.Sprintf("%d\n%[1]d\n", nofileLimit())},
		{name: "localhost", args: []string{"/bin/cat", "/etc/hosts"}, wantOut: "localhost", contains: true},
		{name: "args as given", args: []string{"/bin/sh", "-c", `printf '[%s]' "$@"`, "sh", "a b", "$c", ""}, wantOut: "[a b][$c][]"},
		{
			name:    "cwd",
			args:    []string{"/bin/sh", "-c", "pwd; touch made"},
			edit:    func(s *Spec) { s.Cwd = "/mc/ws/sub"; s.Mounts = []Mount{{Source: ws, Dest: "/mc/ws"}} },
			wantOut: "/mc/ws/sub\n",
		},
		{
			name:    "home tmpfs writable",
			args:    []string{"/bin/sh", "-c", `echo x > "$HOME/f" && cat "$HOME/f" && stat -f -c %T "$HOME"`},
			wantOut: "x\ntmpfs\n",
		},
		{
			name:    "tmp sticky",
			args:    []string{"/bin/stat", "-c", "%A", "/tmp"},
			wantOut: "drwxrwxrwt\n",
		},
		{
			name:    "root read-only",
			args:    []string{"/bin/sh", "-c", "touch /bin/x 2>&1; echo $?"},
			wantOut: "Read-only file system\n1\n", contains: true,
		},
		{
			name:     "command not found",
			args:     []string{"/bin/nosuch-command"},
			wantCode: -2, // any non-zero
			wantOut:  `runc run failed: unable to start container process: exec: "/bin/nosuch-command"`, contains: true,
		},
		{
			name:    "default capabilities",
			args:    []string{"/bin/sh", "-c", "grep CapEff /proc/self/status"},
			wantOut: "CapEff:\t0000000020000420\n",
		},
		{
			name:    "chown with CAP_CHOWN",
			args:    []string{"/bin/sh", "-c", "touch /tmp/f && chown 1000 /tmp/f && stat -c %u /tmp/f"},
			edit:    func(s *Spec) { s.Capabilities = append(defaultCaps(), "CAP_CHOWN") },
			wantOut: "1000\n",
		},
	}
	state := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec(t, rootfs, tt.args...)
			if tt.edit != nil {
				tt.edit(&spec)
			}
			code, out := run(t, rt, spec, state)
			switch {
			case tt.wantCode == -2 && code == 0:
				t.Errorf("exit status 0, want non-zero; output:\n%s", out)
			case tt.wantCode != -2 && code != tt.wantCode:
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if tt.contains && !strings.Contains(out, tt.wantOut) || !tt.contains && out != tt.wantOut {
				t.Errorf("output %q, want %q", out, tt.wantOut)
			}
			assertGone(t, rt, state, spec.ID)
		})
	}
	if _, err := os.Stat(filepath.Join(ws, "sub", "made")); err != nil {
		t.Errorf("a file written in the bound workspace is not on the host: %v", err)
	}
}

// TestEnv checks that the container's environment is exactly the Spec's.
func TestEnv(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{name: "as given", env: []string{"PATH=/bin", "HOME=/mc/home", "A=1", "B=two words", "EMPTY="}},
		// runc's own addition, documented on Spec.Env.
		{name: "HOME added by runc", env: []string{"PATH=/bin"}, want: []string{"HOME=/", "PATH=/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MC_LEAK_CHECK", "leaked")
			spec := baseSpec(t, rootfs, "/bin/env")
			spec.Env = tt.env
			code, out := run(t, rt, spec, t.TempDir())
			if code != 0 {
				t.Fatalf("exit status %d: %s", code, out)
			}
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			want := tt.want
			if want == nil {
				want = append([]string(nil), tt.env...)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("environment\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestBindMounts(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	tests := []struct {
		name     string
		readOnly bool
		wantCode int
		wantFile bool
	}{
		{name: "rw", wantCode: 0, wantFile: true},
		{name: "ro", readOnly: true, wantCode: 1, wantFile: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := rootDir(t, rt)
			if err := os.WriteFile(filepath.Join(dir, "in"), []byte("from host\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", "cat /mc/cache/x/in && echo written > /mc/cache/x/out")
			spec.Mounts = []Mount{{Source: dir, Dest: "/mc/cache/x", ReadOnly: tt.readOnly}}
			code, out := run(t, rt, spec, state)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if !strings.Contains(out, "from host\n") {
				t.Errorf("output %q does not hold the bound file's content", out)
			}
			data, err := os.ReadFile(filepath.Join(dir, "out"))
			if got := err == nil; got != tt.wantFile {
				t.Errorf("file written in the container on the host: %v, want %v", got, tt.wantFile)
			}
			if tt.wantFile && string(data) != "written\n" {
				t.Errorf("written file holds %q", data)
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "conf")
		if err := os.WriteFile(f, []byte("a file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := baseSpec(t, rootfs, "/bin/cat", "/mc/conf")
		spec.Mounts = []Mount{{Source: f, Dest: "/mc/conf", ReadOnly: true}}
		if code, out := run(t, rt, spec, state); code != 0 || out != "a file\n" {
			t.Errorf("status %d, output %q", code, out)
		}
	})
}

func TestNetwork(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var host []string
	for _, e := range entries {
		host = append(host, e.Name())
	}
	if len(host) < 2 {
		t.Fatalf("the host has only %v: cannot tell its network from a private one", host)
	}
	tests := []struct {
		network bool
		want    []string
	}{
		{network: false, want: []string{"lo"}},
		{network: true, want: host},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("network=", tt.network), func(t *testing.T) {
			spec := baseSpec(t, rootfs, "/bin/ls", "-1", "/sys/class/net")
			spec.Network = tt.network
			code, out := run(t, rt, spec, t.TempDir())
			if code != 0 {
				t.Fatalf("exit status %d: %s", code, out)
			}
			got := strings.Fields(out)
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("interfaces %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("resolv.conf", func(t *testing.T) {
		host, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			t.Fatalf("the host has no resolv.conf to compare with: %v", err)
		}
		for _, network := range []bool{false, true} {
			spec := baseSpec(t, rootfs, "/bin/cat", "/etc/resolv.conf")
			spec.Network = network
			code, out := run(t, rt, spec, t.TempDir())
			want := "" // the image's, empty
			if network {
				want = string(host)
			}
			if code != 0 || out != want {
				t.Errorf("network=%v: status %d, resolv.conf %q, want %q", network, code, out, want)
			}
		}
	})
}

// TestOutputFile gives Run a file: runc and the container write to it
// directly, without a pipe.
func TestOutputFile(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	p := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec := baseSpec(t, rootfs, "/bin/sh", "-c", "echo one; echo two >&2; echo three; echo four >&2")
	code, err := rt.Run(context.Background(), spec, t.TempDir(), f)
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Each stream in order, both complete; how they interleave is runc's.
	var stdout, stderr []string
	for _, l := range strings.Fields(string(data)) {
		if l == "two" || l == "four" {
			stderr = append(stderr, l)
		} else {
			stdout = append(stdout, l)
		}
	}
	if len(data) != len("one\ntwo\nthree\nfour\n") ||
		!reflect.DeepEqual(stdout, []string{"one", "three"}) || !reflect.DeepEqual(stderr, []string{"two", "four"}) {
		t.Errorf("log %q", data)
	}
}

// TestCancel checks that a cancelled or timed-out container is killed
// quickly and leaves nothing behind.
func TestCancel(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	tests := []struct {
		name    string
		timeout bool
		want    error
	}{
		{name: "cancel", want: context.Canceled},
		{name: "timeout", timeout: true, want: context.DeadlineExceeded},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			marker := fmt.Sprint(9000 + i) // a sleep no other test runs
			// A child that ignores SIGTERM and the shell as PID 1: only a
			// SIGKILL from outside ends them.
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", "trap '' TERM; sleep "+marker+" & echo ready; wait")
			ctx, cancel := context.WithCancel(context.Background())
			if tt.timeout {
				ctx, cancel = context.WithTimeout(context.Background(), time.Second)
			}
			defer cancel()
			var out syncbuf.Buffer
			var code int
			var err error
			var ended time.Time
			finished := make(chan struct{})
			go func() {
				code, err = rt.Run(ctx, spec, state, &out)
				ended = time.Now()
				close(finished)
			}()
			for !strings.Contains(out.String(), "ready") {
				select {
				case <-finished:
					t.Fatalf("Run ended before it was cancelled: %d, %v, %q", code, err, out.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			// The shell says ready once it forked the sleep, maybe
			// before the sleep has started.
			for try := 0; len(processesWith(marker)) == 0; try++ {
				if try == 100 {
					t.Fatal("the container's sleep is not running")
				}
				time.Sleep(10 * time.Millisecond)
			}
			var stopped time.Time
			if tt.timeout {
				stopped, _ = ctx.Deadline()
			} else {
				stopped = time.Now()
				cancel()
			}
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancellation")
			}
			if d := ended.Sub(stopped); d > 2*time.Second {
				t.Errorf("Run returned %v after cancellation, want under 2s", d)
			}
			if !errors.Is(err, tt.want) || code != -1 {
				t.Errorf("Run = %d, %v; want -1, %v", code, err, tt.want)
			}
			if pids := processesWith(marker); len(pids) != 0 {
				t.Errorf("processes %v survived", pids)
			}
			assertGone(t, rt, state, spec.ID)
		})
	}
}

// TestCancelEarly cancels while runc is still creating the container:
// the kill must still find it, or runc must not start it.
func TestCancelEarly(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 15 * time.Millisecond, 30 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			state := t.TempDir()
			spec := baseSpec(t, rootfs, "/bin/sleep", "9100")
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(delay, cancel)
			start := time.Now()
			code, err := rt.Run(ctx, spec, state, nil)
			if !errors.Is(err, context.Canceled) || code != -1 {
				t.Errorf("Run = %d, %v; want -1, context.Canceled", code, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Run took %v", d)
			}
			if pids := processesWith("9100"); len(pids) != 0 {
				t.Errorf("processes %v survived", pids)
			}
			assertGone(t, rt, state, spec.ID)
		})
	}
}

// TestRootfsUnchanged runs containers that mount, write and create
// directories everywhere they may, and checks that the shared rootfs is
// the same afterwards, byte for byte.
func TestRootfsUnchanged(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	before := snapshot(t, rootfs)
	ws, cache := rootDir(t, rt), rootDir(t, rt)
	state := t.TempDir()
	specs := []Spec{
		baseSpec(t, rootfs, "/bin/sh", "-c", "mkdir -p /mc/x /tmp/y; touch /mc/f /tmp/f /f /bin/f; true"),
		baseSpec(t, rootfs, "/bin/true"),
	}
	deep := baseSpec(t, rootfs, "/bin/sh", "-c", "touch a && ls /mc /mc/cache")
	deep.Mounts = []Mount{
		{Source: ws, Dest: "/mc/ws"},
		{Source: cache, Dest: "/mc/cache/one/two"},
		{Source: cache, Dest: "/mc/ws/pkg/nested", ReadOnly: true},
	}
	deep.Cwd = "/mc/ws/pkg"
	deep.Network = true
	specs = append(specs, deep)
	for _, s := range specs {
		if code, out := run(t, rt, s, state); code != 0 {
			t.Errorf("%v: exit status %d: %s", s.Args, code, out)
		}
	}
	// Refused before runc runs: each would have had runc create a
	// directory in the rootfs.
	refused := []func(*Spec){
		func(s *Spec) { s.Tmpfs = []string{"/var/tmp"} },
		func(s *Spec) { s.Mounts = []Mount{{Source: ws, Dest: "/opt/ws"}} },
		func(s *Spec) { s.Cwd = "/nonexistent" },
	}
	for i, edit := range refused {
		s := baseSpec(t, rootfs, "/bin/true")
		edit(&s)
		if _, err := rt.Run(context.Background(), s, state, nil); err == nil {
			t.Errorf("refused spec %d was run", i)
		}
	}
	after := snapshot(t, rootfs)
	if !reflect.DeepEqual(before, after) {
		for p, d := range after {
			if before[p] != d {
				t.Errorf("%s: %q, was %q", p, d, before[p])
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("%s removed", p)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "pkg", "nested")); err != nil {
		t.Errorf("the mount point below a bind was not created in its source: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	const n = 4
	var wg sync.WaitGroup
	outs := make([]string, n)
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := rootDir(t, rt)
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", fmt.Sprintf("sleep 0.2; echo %d > /mc/ws/f; cat /mc/ws/f", i))
			spec.Mounts = []Mount{{Source: ws, Dest: "/mc/ws"}}
			var out syncbuf.Buffer
			codes[i], errs[i] = rt.Run(context.Background(), spec, state, &out)
			outs[i] = out.String()
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || codes[i] != 0 || outs[i] != fmt.Sprintf("%d\n", i) {
			t.Errorf("run %d: %d, %v, %q", i, codes[i], errs[i], outs[i])
		}
	}
	if ids, err := rt.List(state); err != nil || len(ids) != 0 {
		t.Errorf("runc list: %v, %v", ids, err)
	}
}

// TestCleanup leaves a container running, as a crash of mc would, and
// checks that Cleanup removes it and its bundle, and only what is left
// over: a Run in progress goes on.
func TestCleanup(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	spec := baseSpec(t, rootfs, "/bin/sleep", "9200")
	if err := spec.validate(); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(state, bundlePrefix+spec.ID+"-x")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	mps := ordered(&spec, func(string) bool { return false })
	data, err := json.Marshal(config(&spec, mps, nil, nofileLimit(), mustConfinement(t, rt)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Detached, its output to a file: a pipe would be held open by the
	// container.
	logPath := filepath.Join(t.TempDir(), "out")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := osexec.Command(rt.Path(), "--root", filepath.Join(state, stateSubdir), "run", "--detach", "--bundle", bundle, spec.ID)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("runc run --detach: %v: %s", err, out)
	}
	// Bundles without a container: one old (left over), one young (a Run
	// about to start).
	old := filepath.Join(state, bundlePrefix+"old-1")
	young := filepath.Join(state, bundlePrefix+"young-1")
	for _, d := range []string{old, young} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}

	active := baseSpec(t, rootfs, "/bin/sh", "-c", "echo started; sleep 1; echo done")
	var out syncbuf.Buffer
	var code int
	var runErr error
	finished := make(chan struct{})
	go func() {
		code, runErr = rt.Run(context.Background(), active, state, &out)
		close(finished)
	}()
	for !strings.Contains(out.String(), "started") {
		time.Sleep(10 * time.Millisecond)
	}
	if ids, err := rt.List(state); err != nil || len(ids) != 2 {
		t.Fatalf("runc list: %v, %v; want the detached and the active container", ids, err)
	}

	if err := rt.Cleanup(state); err != nil {
		t.Fatal(err)
	}
	if ids, err := rt.List(state); err != nil || !reflect.DeepEqual(ids, []string{active.ID}) {
		t.Errorf("runc list after Cleanup: %v, %v; want the active container only", ids, err)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{bundle, false}, {old, false}, {young, true}} {
		if _, err := os.Stat(c.path); (err == nil) != c.want {
			t.Errorf("%s exists: %v, want %v", filepath.Base(c.path), err == nil, c.want)
		}
	}
	if pids := processesWith("9200"); len(pids) != 0 {
		t.Errorf("processes %v survived", pids)
	}
	<-finished
	if runErr != nil || code != 0 || out.String() != "started\ndone\n" {
		t.Errorf("the active Run: %d, %v, %q", code, runErr, out.String())
	}
	if err := os.Remove(young); err != nil {
		t.Fatal(err)
	}
	assertGone(t, rt, state, spec.ID)
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestFailingOutput checks that a failing writer does not block the
// container (which writes far more than a pipe holds) and is reported.
func TestFailingOutput(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	spec := baseSpec(t, rootfs, "/bin/sh", "-c", "head -c 4000000 /dev/zero; exit 5")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	state := t.TempDir()
	code, err := rt.Run(ctx, spec, state, &failingWriter{n: 10})
	if ctx.Err() != nil {
		t.Fatal("the container blocked on its output")
	}
	if code != 5 || err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Run = %d, %v; want 5 and the writer's error", code, err)
	}
	assertGone(t, rt, state, spec.ID)
}
