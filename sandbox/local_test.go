package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// The sandbox modes every behaviour is checked in: on bubblewrap workers
// (what CI and most users get), in a bubblewrap sandbox per stage (the
// fallback when workers cannot start, and with KeepSandbox), and directly
// (the fallback without bubblewrap).
var modes = []string{"worker", "bwrap", "direct"}

// isolatedModes are the modes under bubblewrap.
var isolatedModes = []string{"worker", "bwrap"}

// requireBwrap fails (never skips) the test when bubblewrap is missing:
// isolation is part of the contract, and CI installs it.
func requireBwrap(t *testing.T) {
	t.Helper()
	if _, err := osexec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is not installed; the sandbox tests need it: apt-get install bubblewrap")
	}
}

type harness struct {
	t     *testing.T
	mode  string
	l     *Local
	store *cas.Store
	dir   string // holds cas/, sandbox/, mounts/
	warns []string
}

func newHarness(t *testing.T, mode string, mods ...func(*LocalOptions)) *harness {
	t.Helper()
	return newHarnessUnconfined(t, mode, unconfined{}, mods...)
}

// newHarnessUnconfined is newHarness with guarantees of the sandbox
// switched off (u), for the positive controls of the attack tests.
func newHarnessUnconfined(t *testing.T, mode string, u unconfined, mods ...func(*LocalOptions)) *harness {
	t.Helper()
	h := &harness{t: t, mode: mode, dir: t.TempDir()}
	store, err := cas.OpenStore(filepath.Join(h.dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	h.store = store
	var mu sync.Mutex
	opts := LocalOptions{
		Store:      store,
		SandboxDir: filepath.Join(h.dir, "sandbox"),
		MountsDir:  filepath.Join(h.dir, "mounts"),
		Warn: func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			h.warns = append(h.warns, msg)
		},
	}
	for _, m := range mods {
		m(&opts)
	}
	l, err := NewLocal(opts)
	if err != nil {
		t.Fatal(err)
	}
	l.unconfined = u
	h.l = l
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	switch mode {
	case "worker", "bwrap":
		requireBwrap(t)
		if !l.Isolated() {
			t.Fatalf("bwrap is installed but does not work here: %v", h.warns)
		}
		if mode == "bwrap" {
			p := l.workers()
			p.mu.Lock()
			p.disabled = true // as when workers cannot start
			p.mu.Unlock()
		}
	case "direct":
		l.probeOnce.Do(func() {}) // never probe: run without bubblewrap
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	return h
}

// run runs job, which must not fail for infrastructure reasons, and checks
// that the sandbox is gone afterwards.
func (h *harness) run(ctx context.Context, job *sched.Job) *sched.Result {
	h.t.Helper()
	res, err := h.l.Run(ctx, job)
	if err != nil {
		h.t.Fatalf("Run: %v", err)
	}
	h.checkNoSandbox()
	if h.mode == "worker" && !h.l.opts.KeepSandbox {
		p := h.l.workers()
		p.mu.Lock()
		ok := p.started && !p.disabled
		p.mu.Unlock()
		if !ok {
			h.t.Fatalf("the stage did not run on a worker: %q", h.warns)
		}
	}
	return res
}

// checkNoSandbox checks that no sandbox is left but the directories of
// idle workers, which must hold nothing of the last stage but the empty
// directories of its workspace.
func (h *harness) checkNoSandbox() {
	h.t.Helper()
	// A spare worker still starting (Jobs > 1) is an idle one once started.
	h.l.workers().spareWG.Wait()
	ents, err := os.ReadDir(h.l.opts.SandboxDir)
	if err != nil {
		h.t.Fatal(err)
	}
	workers := map[string]*worker{}
	p := h.l.workers()
	p.mu.Lock()
	for _, w := range p.idle {
		workers[filepath.Base(w.sb.dir)] = w
	}
	p.mu.Unlock()
	for len(ents) > 0 && workers[ents[0].Name()] != nil {
		w := workers[ents[0].Name()]
		dir := filepath.Join(h.l.opts.SandboxDir, ents[0].Name())
		left, err := os.ReadDir(dir)
		if err != nil {
			h.t.Fatal(err)
		}
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
			if e.IsDir() {
				filepath.WalkDir(filepath.Join(dir, e.Name()), func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						h.t.Error(err)
						return nil
					}
					rel, _ := filepath.Rel(dir, p)
					inTmp, _ := filepath.Rel("tmp", rel)
					mountPoint := e.Name() == "tmp" && w.tmpKeep[filepath.ToSlash(inTmp)]
					if rel != e.Name() && (!d.IsDir() || e.Name() != "ws" && !mountPoint) {
						names = append(names, rel)
					}
					return nil
				})
			}
		}
		if strings.Join(names, " ") != "home tmp ws" {
			h.t.Errorf("idle worker %s holds %q, want only its empty home and tmp, and a ws of empty directories", dir, names)
		}
		ents = ents[1:]
	}
	if len(ents) != 0 {
		h.t.Errorf("sandbox dir not cleaned: %d entries, first %s", len(ents), ents[0].Name())
	}
}

func (h *harness) log(res *sched.Result) string {
	h.t.Helper()
	b, err := h.store.ReadBytes(res.Log)
	if err != nil {
		h.t.Fatalf("reading the log blob: %v", err)
	}
	return string(b)
}

// input stores content and returns it as an input at path.
func (h *harness) input(path, content string, exec bool) sched.Input {
	h.t.Helper()
	d, err := h.store.PutBytes([]byte(content))
	if err != nil {
		h.t.Fatal(err)
	}
	return sched.Input{Path: path, Digest: d, Size: int64(len(content)), Exec: exec}
}

func job(pkg, name string, cmds ...string) *sched.Job {
	return &sched.Job{Label: graph.Label{Pkg: pkg, Name: name}, Pkg: pkg, Cmds: cmds}
}

func mustSucceed(t *testing.T, h *harness, res *sched.Result) {
	t.Helper()
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("stage failed: code %d, %v; log:\n%s", res.ExitCode, res.Err, h.log(res))
	}
}

func TestLocalOutputs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			tests := []struct {
				name string
				pkg  string
				cmds []string
				outs []string
				want []cas.Output // Digest filled from the content below
				data []string
			}{
				{
					name: "file",
					pkg:  "svc/api",
					cmds: []string{"printf api > out/api"},
					outs: []string{"svc/api/out/api"},
					want: []cas.Output{{Path: "svc/api/out/api", Size: 3}},
					data: []string{"api"},
				},
				{
					name: "executable in the root package",
					pkg:  "",
					cmds: []string{"printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh"},
					outs: []string{"run.sh"},
					want: []cas.Output{{Path: "run.sh", Size: 10, Exec: true}},
					data: []string{"#!/bin/sh\n"},
				},
				{
					name: "symlink to a file",
					pkg:  "p",
					cmds: []string{"printf real > real.txt && ln -s real.txt link.txt"},
					outs: []string{"p/real.txt", "p/link.txt"},
					want: []cas.Output{{Path: "p/real.txt", Size: 4}, {Path: "p/link.txt", Size: 4}},
					data: []string{"real", "real"},
				},
				{
					name: "absolute symlink inside the sandbox",
					pkg:  "p",
					cmds: []string{"printf abs > a.txt && ln -s \"$MC_WORKSPACE/p/a.txt\" out/b.txt"},
					outs: []string{"p/a.txt", "p/out/b.txt"},
					want: []cas.Output{{Path: "p/a.txt", Size: 3}, {Path: "p/out/b.txt", Size: 3}},
					data: []string{"abs", "abs"},
				},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					j := job(tc.pkg, "build", tc.cmds...)
					j.Outs = tc.outs
					res := h.run(context.Background(), j)
					mustSucceed(t, h, res)
					for i := range tc.want {
						tc.want[i].Digest = cas.FromBytes([]byte(tc.data[i]))
					}
					if fmt.Sprint(res.Outputs) != fmt.Sprint(tc.want) {
						t.Errorf("outputs = %+v, want %+v", res.Outputs, tc.want)
					}
					for i, o := range res.Outputs {
						b, err := h.store.ReadBytes(o.Digest)
						if err != nil || string(b) != tc.data[i] {
							t.Errorf("blob of %s = %q, %v; want %q", o.Path, b, err, tc.data[i])
						}
					}
				})
			}
		})
	}
}

func TestLocalDirectoryOutputs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			j := job("gen", "proto",
				"mkdir -p out/pb/sub out/pb/empty",
				"printf a > out/pb/a.go && printf bb > out/pb/sub/b.go && ln -s a.go out/pb/c.go",
				"printf x > out/pb/tool && chmod +x out/pb/tool",
			)
			j.Outs = []string{"gen/out/pb/"}
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			if len(res.Outputs) != 1 {
				t.Fatalf("outputs = %+v, want one", res.Outputs)
			}
			o := res.Outputs[0]
			if o.Path != "gen/out/pb" || !o.IsDir || o.Size != 4 {
				t.Errorf("output = %+v, want gen/out/pb, a directory of 4 bytes", o)
			}
			tree, err := h.store.GetTree(o.Digest)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range tree.Entries {
				got = append(got, fmt.Sprintf("%s:%s:%v:%v:%s", e.Path, shortOrNone(e.Digest), e.Exec, e.Dir, e.Symlink))
			}
			want := []string{
				"a.go:" + cas.FromBytes([]byte("a")).Short() + ":false:false:",
				"c.go:-:false:false:a.go",
				"empty:-:false:true:",
				"sub/b.go:" + cas.FromBytes([]byte("bb")).Short() + ":false:false:",
				"tool:" + cas.FromBytes([]byte("x")).Short() + ":true:false:",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}

			// The tree is an input of the next stage, at its own path.
			j2 := job("app", "build", "cat ../gen/out/pb/a.go ../gen/out/pb/sub/b.go ../gen/out/pb/c.go > all", "test -x ../gen/out/pb/tool")
			j2.Inputs = []sched.Input{{Path: "gen/out/pb", Digest: o.Digest, IsTree: true}}
			j2.Outs = []string{"app/all"}
			res2 := h.run(context.Background(), j2)
			mustSucceed(t, h, res2)
			if res2.Outputs[0].Digest != cas.FromBytes([]byte("abba")) {
				t.Errorf("stage reading the tree produced %v, want the digest of %q", res2.Outputs[0], "abba")
			}
		})
	}
}

func shortOrNone(d cas.Digest) string {
	if d.IsZero() {
		return "-"
	}
	return d.Short()
}

func TestLocalCommands(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			tests := []struct {
				name     string
				cmds     []string
				wantCode int
				wantLog  string
			}{
				{"all succeed", []string{"echo one", "echo two", "echo three"}, 0, "one\ntwo\nthree\n"},
				{"second fails", []string{"echo one", "echo two; exit 3", "echo three"}, 3, "one\ntwo\n"},
				{"first fails", []string{"false", "echo two"}, 1, ""},
				{"one command", []string{"echo solo; exit 7"}, 7, "solo\n"},
				{"exit in one command does not end the next", []string{"exit 0", "echo after"}, 0, "after\n"},
				{"stderr is merged", []string{"echo out; echo err >&2; echo out2"}, 0, "out\nerr\nout2\n"},
				{"killed by a signal", []string{"kill -TERM $$"}, 128 + 15, ""},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					j := job("p", "t", tc.cmds...)
					j.Outs = []string{"p/never"}
					res := h.run(context.Background(), j)
					if res.ExitCode != tc.wantCode {
						t.Errorf("exit code = %d, want %d (%v)", res.ExitCode, tc.wantCode, res.Err)
					}
					if got := h.log(res); got != tc.wantLog && tc.wantCode != 0 {
						t.Errorf("log = %q, want %q", got, tc.wantLog)
					}
					if tc.wantCode == 0 {
						// Success, but the declared output is missing.
						if res.Err == nil || res.Err.Error() != "missing declared output p/never" {
							t.Errorf("err = %v, want the missing output named", res.Err)
						}
						if got := h.log(res); got != tc.wantLog {
							t.Errorf("log = %q, want %q", got, tc.wantLog)
						}
						return
					}
					if res.Err == nil {
						t.Fatal("no error for a failed stage")
					}
					if tc.wantCode < 128 && res.Err.Error() != fmt.Sprintf("exit status %d", tc.wantCode) {
						t.Errorf("err = %q, want %q", res.Err, fmt.Sprintf("exit status %d", tc.wantCode))
					}
					if len(res.Outputs) != 0 {
						t.Errorf("outputs collected from a failed stage: %v", res.Outputs)
					}
				})
			}
		})
	}
}

func TestLocalBadOutputs(t *testing.T) {
	h := newHarness(t, "worker")
	tests := []struct {
		name string
		cmd  string
		outs []string
		want string
	}{
		{"one missing", "touch out/lib", []string{"p/out/api", "p/out/lib"}, "missing declared output p/out/api"},
		{"two missing", ":", []string{"p/a", "p/b"}, "missing declared outputs p/a, p/b"},
		{"missing directory", ":", []string{"p/d/"}, "missing declared output p/d/"},
		{"file for a directory", "touch d", []string{"p/d/"}, "declared output p/d/ is not a directory"},
		{"directory for a file", "mkdir f", []string{"p/f"}, "declared output p/f is a directory (declare it as p/f/)"},
		{"symlink leaving the workspace", "ln -s /etc/passwd pw", []string{"p/pw"}, "declared output p/pw: symlink points outside the workspace (/etc/passwd)"},
		{"fifo", "mkfifo f", []string{"p/f"}, "declared output p/f is not a regular file (p---------)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := job("p", "t", tc.cmd)
			j.Outs = tc.outs
			res := h.run(context.Background(), j)
			if res.ExitCode != 0 || res.Err == nil || res.Err.Error() != tc.want {
				t.Errorf("got code %d, err %v; want code 0, err %q", res.ExitCode, res.Err, tc.want)
			}
			if len(res.Outputs) != 0 {
				t.Errorf("outputs of a failed stage: %v", res.Outputs)
			}
		})
	}
}

// procsWith lists host processes whose command line contains arg (zombies,
// whose command line is empty, do not count).
func procsWith(t *testing.T, arg string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			found = append(found, e.Name())
		}
	}
	return found
}

// sleeper returns a stage command that starts a background child (its pid
// written to pidfile) and an orphaned grandchild, both `sleep 100.N` with a
// unique N, and waits; and the argument to look for.
func sleeper(pidfile string) (cmd, arg string) {
	arg = fmt.Sprintf("100.%d", time.Now().UnixNano()%1e9)
	cmd = fmt.Sprintf("sleep %s & echo $! > %s; (sleep %s &); echo started; wait", arg, pidfile, arg)
	return cmd, arg
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func waitGone(t *testing.T, arg string) {
	t.Helper()
	// The kill is synchronous for the group; give the kernel a moment to
	// tear down processes that were reparented.
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := procsWith(t, arg)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running after the stage: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLocalTimeout(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			pidfile := filepath.Join(h.dir, "mounts", "pids", "pid")
			cmd, arg := sleeper(filepath.Join("$PIDS", "pid"))
			j := job("p", "slow", cmd)
			j.CacheMounts = map[string]string{"PIDS": "pids"}
			// Long enough for the stage to start on a loaded machine.
			j.Timeout = 2 * time.Second
			start := time.Now()
			res := h.run(context.Background(), j)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("a 2s timeout took %v", took)
			}
			if res.ExitCode != -1 || res.Err == nil || res.Err.Error() != "timed out after 2s" {
				t.Errorf("got code %d, err %v; want -1, timed out after 2s", res.ExitCode, res.Err)
			}
			b, err := os.ReadFile(pidfile)
			pid := string(bytes.TrimSpace(b))
			if err != nil || pid == "" {
				t.Fatalf("the stage did not write its pid file: %v", err)
			}
			if !strings.Contains(h.log(res), "started") {
				t.Errorf("log of a timed out stage lost: %q", h.log(res))
			}
			waitGone(t, arg)
			// Without bubblewrap the pid is the host's (under it, the PID
			// namespace's own, and the command-line check above counts).
			if mode == "direct" && alive(pid) {
				t.Errorf("the stage's child %s is still running", pid)
			}
		})
	}
}

// signalWriter closes ready when the log holds want.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestLocalCancel(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			cmd, arg := sleeper("/dev/null")
			j := job("p", "slow", cmd)
			live := &signalWriter{want: "started", ready: make(chan struct{})}
			j.Log = live
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-live.ready:
				case <-time.After(10 * time.Second):
				}
				cancel()
			}()
			res, err := h.l.Run(ctx, j)
			if !errors.Is(err, context.Canceled) || res != nil {
				t.Fatalf("Run = %v, %v; want context.Canceled", res, err)
			}
			select {
			case <-live.ready:
			default:
				t.Fatal("the stage never started")
			}
			waitGone(t, arg)
			h.checkNoSandbox()

			// Already cancelled: nothing runs.
			res, err = h.l.Run(ctx, job("p", "x", "echo ran"))
			if !errors.Is(err, context.Canceled) || res != nil {
				t.Errorf("Run with a cancelled context = %v, %v", res, err)
			}
		})
	}
}

func TestLocalEnv(t *testing.T) {
	t.Setenv("MC_LEAK_CHECK", "leaked")
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			j := job("svc/api", "env", "env", "ls -A \"$HOME\" | wc -l; touch \"$HOME/ok\"")
			j.Env = map[string]string{"CGO_ENABLED": "0", "GREETING": "hello world"}
			j.Secrets = map[string]string{"NPM_TOKEN": "s3cr3t-value"}
			j.CacheMounts = map[string]string{"GOCACHE": "go-build", "GOMODCACHE": "go-mod"}
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			ws, home, cache := sandboxWS, sandboxHome, sandboxCache
			if mode == "direct" {
				// The sandbox's own path; only its prefix is known.
				ws, home, cache = h.l.opts.SandboxDir, h.l.opts.SandboxDir, h.l.opts.MountsDir
			}
			got := map[string]string{}
			lines := strings.Split(strings.TrimSpace(h.log(res)), "\n")
			for _, line := range lines[:len(lines)-1] {
				k, v, _ := strings.Cut(line, "=")
				got[k] = v
			}
			if n := strings.TrimSpace(lines[len(lines)-1]); n != "0" {
				t.Errorf("HOME held %s entries, want an empty directory", n)
			}
			want := map[string]func(string) bool{
				"PATH":         func(v string) bool { return v == os.Getenv("PATH") },
				"HOME":         func(v string) bool { return strings.HasPrefix(v, home) && strings.HasSuffix(v, "home") },
				"CGO_ENABLED":  func(v string) bool { return v == "0" },
				"GREETING":     func(v string) bool { return v == "hello world" },
				"NPM_TOKEN":    func(v string) bool { return v == "****" }, // masked in the log
				"GOCACHE":      func(v string) bool { return v == filepath.Join(cache, "go-build") },
				"GOMODCACHE":   func(v string) bool { return v == filepath.Join(cache, "go-mod") },
				"MC_WORKSPACE": func(v string) bool { return strings.HasPrefix(v, ws) && strings.HasSuffix(v, "ws") },
				"MC_PACKAGE":   func(v string) bool { return v == "svc/api" },
				"MC_TARGET":    func(v string) bool { return v == "//svc/api:env" },
				// Set by the shell itself, not passed in.
				"PWD": func(v string) bool { return v == filepath.Join(got["MC_WORKSPACE"], "svc/api") },
			}
			for k, v := range got {
				check, ok := want[k]
				switch {
				case !ok && (k == "SHLVL" || k == "_" || k == "OLDPWD"): // other shells' own variables
				case !ok:
					t.Errorf("unexpected variable %s=%s", k, v)
				case !check(v):
					t.Errorf("%s=%q is wrong", k, v)
				}
			}
			for k := range want {
				if _, ok := got[k]; !ok {
					t.Errorf("variable %s missing", k)
				}
			}
		})
	}
}

func TestLocalSecretsMasked(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			// The secret is printed whole, then split across two writes
			// separated in time, then with a short secret that stays.
			j := job("p", "s",
				`echo "token=$TOKEN"`,
				`printf 'x-hunt'; sleep 0.2; printf 'er2-secret-y\n'`,
				`echo "short=$SHORT"`,
			)
			j.Secrets = map[string]string{"TOKEN": "hunter2-secret", "SHORT": "abc"}
			live := &bytes.Buffer{}
			j.Log = live
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			want := "token=****\nx-****-y\nshort=abc\n"
			if got := h.log(res); got != want {
				t.Errorf("log blob = %q, want %q", got, want)
			}
			if live.String() != want {
				t.Errorf("live log = %q, want %q", live.String(), want)
			}
		})
	}
}

// TestLocalIsolation checks what a stage can see of the host under
// bubblewrap: not the workspace it was built from, not the cache, and its
// workspace at the fixed path /mc/ws.
func TestLocalIsolation(t *testing.T) {
	requireBwrap(t)
	tests := []struct {
		name string
		// exposeParent puts the directory holding the workspace and the
		// cache on PATH, which binds it into the sandbox: both must then
		// be covered.
		exposeParent bool
	}{
		{"workspace elsewhere", false},
		{"workspace inside a bound directory", true},
	}
	for _, tc := range tests {
		for _, mode := range isolatedModes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				testIsolation(t, mode, tc.exposeParent)
			})
		}
	}
}

func testIsolation(t *testing.T, mode string, exposeParent bool) {
	parent := t.TempDir()
	wsDir := filepath.Join(parent, "ws")
	if err := os.MkdirAll(filepath.Join(wsDir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(wsDir, "undeclared.txt"), "TOPSECRET")
	writeFile(t, filepath.Join(wsDir, "app", "main.txt"), "declared")
	writeFile(t, filepath.Join(parent, "visible.txt"), "VISIBLE")
	if exposeParent {
		t.Setenv("PATH", parent+string(filepath.ListSeparator)+os.Getenv("PATH"))
	}
	cache := filepath.Join(parent, "cache")
	h := newHarness(t, mode, func(o *LocalOptions) {
		s, err := cas.OpenStore(filepath.Join(cache, "cas"))
		if err != nil {
			t.Fatal(err)
		}
		o.Store = s
		o.SandboxDir = filepath.Join(cache, "sandbox")
		o.MountsDir = filepath.Join(cache, "mounts")
	})
	h.store = h.l.opts.Store
	main := filepath.Join(wsDir, "app", "main.txt")
	j := job("app", "peek",
		"pwd; cat main.txt; echo",
		fmt.Sprintf("cat %s/undeclared.txt 2>/dev/null || echo cannot read", wsDir),
		fmt.Sprintf("cat %s/visible.txt 2>/dev/null; echo", parent),
		// Covered (empty) when their parent is bound, absent otherwise.
		fmt.Sprintf("find %s %s %s -mindepth 1 2>/dev/null | wc -l", wsDir, cache, h.l.opts.SandboxDir),
		"ls -A /mc",
	)
	j.Inputs = []sched.Input{{Path: "app/main.txt", Digest: cas.FromBytes([]byte("declared")), Size: 8, Source: main}}
	res := h.run(context.Background(), j)
	mustSucceed(t, h, res)
	log := h.log(res)
	visible := ""
	if exposeParent {
		visible = "VISIBLE"
	}
	want := fmt.Sprintf("/mc/ws/app\ndeclared\ncannot read\n%s\n0\nhome\nws\n", visible)
	if log != want {
		t.Errorf("log:\n%s\nwant:\n%s", log, want)
	}
	if strings.Contains(log, "TOPSECRET") {
		t.Errorf("the stage read an undeclared file of the workspace:\n%s", log)
	}

	// The same stage without bubblewrap does see the workspace:
	// the check above is not vacuous.
	d := newHarness(t, "direct")
	res = d.run(context.Background(), job("app", "peek", fmt.Sprintf("cat %s/undeclared.txt", wsDir)))
	if !strings.Contains(d.log(res), "TOPSECRET") {
		t.Errorf("without bubblewrap the file should be readable; log %q", d.log(res))
	}

	// A stage naming no source of the workspace does not see it
	// either, though nothing tells which workspace it belongs to.
	// (And what its worker shows stays: the second stage on a worker sees
	// what the first did.)
	res = h.run(context.Background(), job("app", "peek2",
		fmt.Sprintf("cat %s/undeclared.txt 2>/dev/null || echo cannot read", wsDir),
		fmt.Sprintf("cat %s/visible.txt 2>/dev/null; echo", parent)))
	if got, want := h.log(res), "cannot read\n"+visible+"\n"; got != want {
		t.Errorf("a stage without sources read %q, want %q", got, want)
	}
}

func TestLocalNetwork(t *testing.T) {
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) { testNetwork(t, mode) })
	}
}

func testNetwork(t *testing.T, mode string) {
	h := newHarness(t, mode)
	// Interface names, as /proc/net/dev lists them (no /sys in the sandbox).
	const list = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"
	out, err := osexec.Command("/bin/sh", "-c", list).Output()
	if err != nil {
		t.Fatal(err)
	}
	host := string(out)
	tests := []struct {
		network bool
		want    string
	}{
		{false, "lo\n"},
		{true, host}, // the host's own interfaces
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("network=", tc.network), func(t *testing.T) {
			j := job("p", "net", list)
			j.Network = tc.network
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			if got := h.log(res); got != tc.want {
				t.Errorf("interfaces = %q, want %q", got, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocalInputModified(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			tests := []struct {
				name    string
				cmd     string
				tree    bool
				wantErr string // "" : the stage succeeds and the blob stays
			}{
				{"appended to", "chmod u+w in.txt && echo more >> in.txt", false, "stage modified its input p/in.txt (inputs are read-only)"},
				{"made writable", "chmod 0644 in.txt", false, "stage modified its input p/in.txt (inputs are read-only)"},
				{"file of a tree", "chmod u+w tree/f.txt && echo more >> tree/f.txt", true, "stage modified its input p/tree/f.txt (inputs are read-only)"},
				{"replaced", "rm -f in.txt && echo new > in.txt", false, ""},
				{"only read", "cat in.txt", false, ""},
			}
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					content := fmt.Sprintf("input %d of %s\n", i, mode)
					in := h.input("p/in.txt", content, false)
					blob := in.Digest
					if tc.tree {
						dir := filepath.Join(t.TempDir(), "tree")
						writeFile(t, filepath.Join(dir, "f.txt"), content)
						d, _, err := h.store.PutTree(dir, false)
						if err != nil {
							t.Fatal(err)
						}
						in = sched.Input{Path: "p/tree", Digest: d, IsTree: true}
					}
					j := job("p", "mod", tc.cmd)
					j.Inputs = []sched.Input{in}
					res := h.run(context.Background(), j)
					if tc.wantErr == "" {
						mustSucceed(t, h, res)
						if b, err := h.store.ReadBytes(blob); err != nil || string(b) != content {
							t.Errorf("blob after the stage: %q, %v", b, err)
						}
						return
					}
					if mode != "direct" && os.Geteuid() == 0 {
						// mc as root: the stage's root is an unprivileged
						// host id, which may not change mc's files at all.
						if res.ExitCode == 0 {
							t.Errorf("the stage changed its input, owned by mc: %+v", res)
						}
						if b, err := h.store.ReadBytes(blob); err != nil || string(b) != content {
							t.Errorf("blob after the stage: %q, %v", b, err)
						}
						return
					}
					if res.Err == nil || res.Err.Error() != tc.wantErr {
						t.Errorf("err = %v, want %q", res.Err, tc.wantErr)
					}
					if h.store.Has(blob) {
						t.Errorf("the modified blob is still in the store")
					}
				})
			}
		})
	}
}

func TestLocalSources(t *testing.T) {
	h := newHarness(t, "worker")
	src := filepath.Join(t.TempDir(), "ws", "p", "main.c")
	writeFile(t, src, "int main;\n")
	d := cas.FromBytes([]byte("int main;\n"))
	tests := []struct {
		name    string
		digest  cas.Digest
		wantErr string
	}{
		{"stored on first use", d, ""},
		{"edited since it was digested", cas.FromBytes([]byte("old\n")), "source p/main.c changed during the build; run mc again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := job("p", "cc", "cat main.c")
			j.Inputs = []sched.Input{{Path: "p/main.c", Digest: tc.digest, Size: 10, Source: src}}
			res := h.run(context.Background(), j)
			if tc.wantErr == "" {
				mustSucceed(t, h, res)
				if h.log(res) != "int main;\n" || !h.store.Has(d) {
					t.Errorf("log %q, source stored: %v", h.log(res), h.store.Has(d))
				}
				return
			}
			if res.Err == nil || res.Err.Error() != tc.wantErr || res.ExitCode != -1 {
				t.Errorf("got code %d, err %v; want -1, %q", res.ExitCode, res.Err, tc.wantErr)
			}
		})
	}
}

func TestLocalExecInputs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			j := job("app", "run", "../tools/gen.sh > out/gen.txt", "test ! -w ../tools/data.txt || test $(id -u) = 0")
			j.Inputs = []sched.Input{
				h.input("tools/gen.sh", "#!/bin/sh\necho generated\n", true),
				h.input("tools/data.txt", "data\n", false),
			}
			j.Outs = []string{"app/out/gen.txt"}
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			if res.Outputs[0].Digest != cas.FromBytes([]byte("generated\n")) {
				t.Errorf("output %+v is not what the tool prints", res.Outputs[0])
			}
		})
	}
}

func TestLocalCacheMountPersists(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, mode)
			first := job("a", "warm", `echo warm > "$GOCACHE/marker"`)
			first.CacheMounts = map[string]string{"GOCACHE": "go-build"}
			mustSucceed(t, h, h.run(context.Background(), first))
			// Another stage, another variable, the same cache name.
			second := job("b", "use", `cat "$XDG_CACHE/marker"`)
			second.CacheMounts = map[string]string{"XDG_CACHE": "go-build"}
			res := h.run(context.Background(), second)
			mustSucceed(t, h, res)
			if got := h.log(res); got != "warm\n" {
				t.Errorf("second stage read %q from the cache mount, want %q", got, "warm\n")
			}
			b, err := os.ReadFile(filepath.Join(h.l.opts.MountsDir, "go-build", "marker"))
			if err != nil || string(b) != "warm\n" {
				t.Errorf("cache mount on the host: %q, %v", b, err)
			}
		})
	}
}

func TestLocalKeepSandbox(t *testing.T) {
	// Workers are on: a kept sandbox must still be one of its own.
	h := newHarness(t, "worker", func(o *LocalOptions) { o.KeepSandbox = true })
	j := job("p", "keep", "echo kept > out.txt; exit 2")
	live := &bytes.Buffer{}
	j.Log = live
	res, err := h.l.Run(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || !strings.HasPrefix(res.Err.Error(), "exit status 2 (sandbox kept at ") {
		t.Fatalf("err = %v, want the sandbox's place", res.Err)
	}
	dir := strings.TrimSuffix(strings.TrimPrefix(res.Err.Error(), "exit status 2 (sandbox kept at "), ")")
	if b, err := os.ReadFile(filepath.Join(dir, "ws", "p", "out.txt")); err != nil || string(b) != "kept\n" {
		t.Errorf("kept sandbox: %q, %v", b, err)
	}
	if !strings.Contains(live.String(), dir) {
		t.Errorf("live log %q does not say where the sandbox is", live.String())
	}
}

func TestLocalBadJobs(t *testing.T) {
	h := newHarness(t, "direct")
	tests := []struct {
		name string
		mod  func(*sched.Job)
	}{
		{"input escaping", func(j *sched.Job) { j.Inputs = []sched.Input{{Path: "../x"}} }},
		{"absolute output", func(j *sched.Job) { j.Outs = []string{"/etc/passwd"} }},
		{"package escaping", func(j *sched.Job) { j.Pkg = "a/../.." }},
		{"cache name with a slash", func(j *sched.Job) { j.CacheMounts = map[string]string{"C": "a/b"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := job("p", "bad", "true")
			tc.mod(j)
			if res, err := h.l.Run(context.Background(), j); err == nil {
				t.Errorf("Run = %+v, nil; want an error", res)
			}
			h.checkNoSandbox()
		})
	}
	// An image that is neither among the inputs nor pinned to a digest
	// is a malformed job (images: local_container_test.go).
	j := job("p", "img", "true")
	j.Image = "//images:go"
	res, err := h.l.Run(context.Background(), j)
	if err == nil || !strings.Contains(err.Error(), "image //images:go") {
		t.Errorf("image stage: %+v, %v; want an error naming the image", res, err)
	}
}

func TestLocalWarnings(t *testing.T) {
	tests := []struct {
		name  string
		bwrap string
		want  string
	}{
		{"not installed", "", "apt-get install bubblewrap"},
		{"not working", "/bin/false", "bubblewrap cannot create a sandbox here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, dir: t.TempDir()}
			store, err := cas.OpenStore(filepath.Join(h.dir, "cas"))
			if err != nil {
				t.Fatal(err)
			}
			h.store = store
			var warns []string
			var mu sync.Mutex
			l, err := NewLocal(LocalOptions{Store: store, SandboxDir: filepath.Join(h.dir, "sb"), MountsDir: filepath.Join(h.dir, "m"),
				Warn: func(m string) { mu.Lock(); warns = append(warns, m); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			l.bwrap = tc.bwrap
			h.l = l
			var wg sync.WaitGroup
			for i := 0; i < 3; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := l.Run(context.Background(), job("p", "x", "echo $MC_WORKSPACE"))
					if err != nil || res.Err != nil {
						t.Errorf("Run: %v, %+v", err, res)
						return
					}
					if strings.HasPrefix(h.log(res), sandboxWS) {
						t.Errorf("ran under bubblewrap: %q", h.log(res))
					}
				}()
			}
			wg.Wait()
			h.checkNoSandbox()
			if l.Isolated() {
				t.Error("Isolated() = true")
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tc.want) || strings.Contains(warns[0], "\n") {
				t.Errorf("warnings = %q, want one line mentioning %q", warns, tc.want)
			}
		})
	}
}

func TestLocalConcurrent(t *testing.T) {
	h := newHarness(t, "worker")
	var wg sync.WaitGroup
	results := make([]*sched.Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := job(fmt.Sprintf("p%d", i), "c", fmt.Sprintf("cat ../shared.txt > out; echo %d >> out", i))
			j.Inputs = []sched.Input{h.input("shared.txt", "shared\n", false)}
			j.Outs = []string{fmt.Sprintf("p%d/out", i)}
			res, err := h.l.Run(context.Background(), j)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res == nil || res.Err != nil {
			t.Fatalf("stage %d: %+v", i, res)
		}
		if want := cas.FromBytes(fmt.Appendf(nil, "shared\n%d\n", i)); res.Outputs[0].Digest != want {
			t.Errorf("stage %d output %v", i, res.Outputs[0])
		}
	}
	h.checkNoSandbox()
}

// BenchmarkLocalTinyStage measures the per-stage overhead the benchmark's
// 10k tiny stages pay, on each path: workers, a sandbox per stage, none.
func BenchmarkLocalTinyStage(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			store, err := cas.OpenStore(filepath.Join(dir, "cas"))
			if err != nil {
				b.Fatal(err)
			}
			l, err := NewLocal(LocalOptions{Store: store, SandboxDir: filepath.Join(dir, "sb"), MountsDir: filepath.Join(dir, "m")})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			switch {
			case mode == "direct":
				l.probeOnce.Do(func() {})
			case !l.Isolated():
				b.Fatal("bubblewrap does not work here")
			case mode == "bwrap":
				l.workers().disabled = true
			}
			d, _ := store.PutBytes([]byte("in\n"))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := job("p", "tiny", fmt.Sprintf("cat in.txt | md5sum > out.txt; echo %d >> out.txt", i))
				j.Inputs = []sched.Input{{Path: "p/in.txt", Digest: d, Size: 3}}
				j.Outs = []string{"p/out.txt"}
				res, err := l.Run(context.Background(), j)
				if err != nil || res.Err != nil {
					b.Fatal(err, res.Err)
				}
			}
		})
	}
}
