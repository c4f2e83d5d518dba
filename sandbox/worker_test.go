package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/sched"
)

// idleWorkers returns the pool's idle workers, least recently used first.
func (h *harness) idleWorkers() []*worker {
	p := h.l.workers()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*worker(nil), p.idle...)
}

// onlyWorker returns the one idle worker of the pool.
func (h *harness) onlyWorker() *worker {
	h.t.Helper()
	ws := h.idleWorkers()
	if len(ws) != 1 {
		h.t.Fatalf("%d idle workers, want 1", len(ws))
	}
	return ws[0]
}

// marker returns a unique argument for sleep, to find its processes by.
func marker() string {
	return fmt.Sprintf("1000.%d", time.Now().UnixNano()%1e9)
}

// childrenOf lists the host pids whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(e.Name())
			kids = append(kids, n)
		}
	}
	return kids
}

func TestWorkerKillsLeftovers(t *testing.T) {
	tests := []struct {
		name  string
		start string // %s is the marker
	}{
		{"setsid daemon", "setsid sleep %s > /dev/null 2>&1 &"},
		{"double fork", "(sleep %s > /dev/null 2>&1 &) ; :"},
		{"nohup in a new group", "set -m; nohup sleep %s > /dev/null 2>&1 &"},
	}
	h := newHarness(t, "worker")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := marker()
			res := h.run(context.Background(), job("p", "daemon", fmt.Sprintf(tc.start, m)))
			mustSucceed(t, h, res)
			w := h.onlyWorker()
			// Gone when Run returns, not a moment later: the next stage
			// must not meet it.
			if left := procsWith(t, m); len(left) != 0 {
				t.Fatalf("processes left running after the stage: %v", left)
			}
			// The next stage, on the same worker, sees no other process.
			res = h.run(context.Background(), job("p", "look",
				`for p in /proc/[0-9]*; do [ "${p#/proc/}" = $$ ] || [ "${p#/proc/}" = 1 ] || echo "$(cat $p/cmdline | tr '\0' ' ')"; done`))
			mustSucceed(t, h, res)
			if got := h.log(res); got != "" {
				t.Errorf("the next stage sees processes (besides itself and the runner):\n%s", got)
			}
			if h.onlyWorker() != w {
				t.Error("the stages did not run on the same worker")
			}
		})
	}
}

// TestWorkerFresh checks that a stage finds nothing of the last one that
// ran on its worker, wherever that one wrote.
func TestWorkerFresh(t *testing.T) {
	places := []string{"$MC_WORKSPACE/p/junk", "$MC_WORKSPACE/p/sub/junk", "$MC_WORKSPACE/junk", "$HOME/junk",
		"/tmp/junk", "/junk", "/mc/junk", "/dev/shm/junk", "/dev/junk"}
	var write, look []string
	for _, p := range places {
		// Not every place is writable when not root.
		write = append(write, fmt.Sprintf("{ mkdir -p $(dirname %s) && echo x > %s && chmod 0 %s; } 2>/dev/null || true", p, p, p))
		look = append(look, fmt.Sprintf("test ! -e %s || echo %s", p, p))
	}
	write = append(write, `chmod 0500 "$HOME" /tmp "$MC_WORKSPACE/p"`, "hostname sneaky 2>/dev/null || true")
	look = append(look, `stat -c %a "$HOME" /tmp "$MC_WORKSPACE/$MC_PACKAGE"`, "hostname", `find "$MC_WORKSPACE" | sort`)
	host, _ := os.Hostname()
	// The next stage in the same package (its directory is kept) and in
	// another (the directory is reused under another name).
	for _, pkg := range []string{"p", "q"} {
		t.Run(pkg, func(t *testing.T) {
			h := newHarness(t, "worker")
			j := job("p", "write", strings.Join(write, "; "))
			j.Inputs = []sched.Input{h.input("p/in.txt", "in", false)}
			mustSucceed(t, h, h.run(context.Background(), j))
			w := h.onlyWorker()
			res := h.run(context.Background(), job(pkg, "look", look...))
			mustSucceed(t, h, res)
			want := fmt.Sprintf("755\n755\n755\n%s\n/mc/ws\n/mc/ws/%s\n", host, pkg)
			if h.log(res) != want {
				t.Errorf("the next stage found:\n%s\nwant:\n%s", h.log(res), want)
			}
			if h.onlyWorker() != w {
				t.Error("the stages did not run on the same worker")
			}
		})
	}
}

// TestWorkerNamespaceChanged: a stage that changes what the runner cannot
// undo has its worker replaced before the next stage.
func TestWorkerNamespaceChanged(t *testing.T) {
	tests := []struct {
		name       string
		root       bool // the change needs root
		change     string
		look, want string // what the next stage sees
	}{
		// A mount is no longer a change a stage can make (the seccomp
		// filter refuses it: TestSandboxAttacks).
		{"a SysV shared memory segment", false, "ipcmk -M 4096 >/dev/null", "tail -n +2 /proc/sysvipc/shm | wc -l", "0\n"},
		{"a SysV semaphore set", false, "ipcmk -S 1 >/dev/null", "tail -n +2 /proc/sysvipc/sem | wc -l", "0\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Getuid() != 0 {
				t.Skip("skipped: needs root inside the sandbox")
			}
			h := newHarness(t, "worker")
			mustSucceed(t, h, h.run(context.Background(), job("p", "change", tc.change)))
			w := h.onlyWorker()
			// The runner finds out after reporting the stage over; the
			// next stage it is sent is refused and runs on a new worker.
			res := h.run(context.Background(), job("p", "next", tc.look))
			mustSucceed(t, h, res)
			if h.log(res) != tc.want {
				t.Errorf("the next stage sees %q, want %q", h.log(res), tc.want)
			}
			if h.onlyWorker() == w {
				t.Error("the worker was kept")
			}
		})
	}
}

// TestWorkerSignalsToRunner: what a stage sends to PID 1 does not end its
// worker.
func TestWorkerSignalsToRunner(t *testing.T) {
	h := newHarness(t, "worker")
	mustSucceed(t, h, h.run(context.Background(), job("p", "warm", "true")))
	w := h.onlyWorker()
	res := h.run(context.Background(), job("p", "sig", "for s in TERM INT HUP QUIT USR1 PIPE; do kill -$s 1; done; kill -TERM -1; echo survived"))
	mustSucceed(t, h, res)
	res = h.run(context.Background(), job("p", "after", "echo ok"))
	mustSucceed(t, h, res)
	if h.onlyWorker() != w {
		t.Error("the worker was replaced")
	}
}

func TestWorkerKilledFromOutside(t *testing.T) {
	h := newHarness(t, "worker")
	mustSucceed(t, h, h.run(context.Background(), job("p", "first", "true")))
	w := h.onlyWorker()
	bwrap := w.cmd.Process.Pid
	if err := syscall.Kill(-bwrap, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// No waiting: the pool may not know yet that the worker is dead.
	j := job("p", "next", "echo $MC_WORKSPACE > out")
	j.Outs = []string{"p/out"}
	res := h.run(context.Background(), j)
	mustSucceed(t, h, res)
	if nw := h.onlyWorker(); nw == w {
		t.Error("the dead worker is still in the pool")
	}
	if _, err := os.Stat(w.sb.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead worker's directory is left: %v", err)
	}
}

func TestWorkerTimeoutAndCancel(t *testing.T) {
	tests := []struct {
		name string
		// stopRunner freezes the runner, so that it cannot answer the
		// kill: the worker itself must then be killed.
		stopRunner bool
		cancel     bool
	}{
		{"timeout", false, false},
		{"cancel", false, true},
		{"timeout, runner not answering", true, false},
		{"cancel, runner not answering", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "worker")
			mustSucceed(t, h, h.run(context.Background(), job("p", "warm", "true")))
			w := h.onlyWorker()
			m := marker()
			j := job("p", "slow", fmt.Sprintf("setsid sleep %s > /dev/null 2>&1 & sleep %s & echo started; wait", m, m))
			live := &signalWriter{want: "started", ready: make(chan struct{})}
			j.Log = live
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if !tc.cancel {
				j.Timeout = time.Second
			}
			go func() {
				select {
				case <-live.ready:
				case <-time.After(10 * time.Second):
				}
				if tc.stopRunner {
					for _, pid := range childrenOf(t, w.cmd.Process.Pid) {
						syscall.Kill(pid, syscall.SIGSTOP)
					}
				}
				if tc.cancel {
					cancel()
				}
			}()
			start := time.Now()
			res, err := h.l.Run(ctx, j)
			took := time.Since(start)
			switch {
			case tc.cancel && !errors.Is(err, context.Canceled):
				t.Errorf("Run = %+v, %v; want context.Canceled", res, err)
			case !tc.cancel && (err != nil || res.Err == nil || res.Err.Error() != "timed out after 1s"):
				t.Errorf("Run = %+v, %v; want a timeout", res, err)
			}
			if max := time.Second + killGrace + 3*time.Second; took > max {
				t.Errorf("Run took %v", took)
			}
			h.checkNoSandbox()
			waitGone(t, m)
			next := h.idleWorkers()
			switch {
			case tc.stopRunner && len(next) != 0:
				t.Errorf("the worker that did not answer was kept")
			case !tc.stopRunner && (len(next) != 1 || next[0] != w):
				t.Errorf("the worker was not kept after its stage was killed")
			}
			res = h.run(context.Background(), job("p", "after", "echo ok"))
			mustSucceed(t, h, res)
			if h.log(res) != "ok\n" {
				t.Errorf("log after: %q", h.log(res))
			}
		})
	}
}

func TestWorkerClose(t *testing.T) {
	h := newHarness(t, "worker")
	// Two workers, one per network mode, and a third stage still running
	// when Close is called.
	for _, network := range []bool{false, true} {
		j := job("p", "w", "true")
		j.Network = network
		mustSucceed(t, h, h.run(context.Background(), j))
	}
	m := marker()
	j := job("p", "busy", fmt.Sprintf("setsid sleep %s > /dev/null 2>&1 & echo started; sleep %s", m, m))
	j.CacheMounts = map[string]string{"C": "c"}
	live := &signalWriter{want: "started", ready: make(chan struct{})}
	j.Log = live
	done := make(chan error, 1)
	go func() {
		res, err := h.l.Run(context.Background(), j)
		if err == nil && res.Err == nil {
			err = errors.New("the busy stage succeeded")
		} else {
			err = nil
		}
		done <- err
	}()
	select {
	case <-live.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the busy stage did not start")
	}
	var bwraps []int
	p := h.l.workers()
	p.mu.Lock()
	for w := range p.all {
		bwraps = append(bwraps, w.cmd.Process.Pid)
	}
	p.mu.Unlock()
	if len(bwraps) != 3 {
		t.Fatalf("%d workers, want 3", len(bwraps))
	}
	if err := h.l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the busy stage's Run did not return after Close")
	}
	if left := procsWith(t, m); len(left) != 0 {
		t.Errorf("processes left after Close: %v", left)
	}
	for _, pid := range bwraps {
		if alive(strconv.Itoa(pid)) {
			t.Errorf("bwrap %d still runs after Close", pid)
		}
	}
	ents, err := os.ReadDir(h.l.opts.SandboxDir)
	if err != nil || len(ents) != 0 {
		t.Errorf("sandbox directory after Close: %d entries, %v", len(ents), err)
	}
	// Stages still run after Close, each in a sandbox of its own.
	res := h.run(context.Background(), job("p", "later", "echo $MC_WORKSPACE"))
	mustSucceed(t, h, res)
	if h.log(res) != sandboxWS+"\n" {
		t.Errorf("log after Close: %q", h.log(res))
	}
}

func TestWorkerPoolSize(t *testing.T) {
	h := newHarness(t, "worker")
	const jobs = 3
	var wg sync.WaitGroup
	// Each stage waits for the others to have started: jobs run at once.
	for i := 0; i < jobs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := job("p", "c", fmt.Sprintf("touch $S/%d; while [ $(ls $S | wc -l) -lt %d ]; do sleep 0.01; done", i, jobs))
			j.CacheMounts = map[string]string{"S": "sync"}
			j.Timeout = 20 * time.Second
			res, err := h.l.Run(context.Background(), j)
			if err != nil || res.Err != nil {
				t.Errorf("stage %d: %v, %+v", i, err, res)
			}
		}()
	}
	wg.Wait()
	if n := len(h.idleWorkers()); n != jobs {
		t.Errorf("%d idle workers after %d stages at once, want %d", n, jobs, jobs)
	}
	// Serial stages reuse them: no new worker starts.
	before := map[*worker]bool{}
	for _, w := range h.idleWorkers() {
		before[w] = true
	}
	for i := 0; i < 5; i++ {
		j := job("p", "s", "true")
		j.CacheMounts = map[string]string{"S": "sync"}
		mustSucceed(t, h, h.run(context.Background(), j))
	}
	for _, w := range h.idleWorkers() {
		if !before[w] {
			t.Error("a new worker started for serial stages")
		}
	}
	// Another key (other cache mounts) gets a worker of its own, and the
	// first key's stay.
	mustSucceed(t, h, h.run(context.Background(), job("p", "n", "test ! -e /mc/cache")))
	if n := len(h.idleWorkers()); n != jobs+1 {
		t.Errorf("%d idle workers, want %d", n, jobs+1)
	}
}

// TestWorkerSpare: with Jobs = 2, the stage that starts the first worker
// of a key has a second one started beside it, so that two stages of that
// key at once start none; the control, Jobs = 1, starts the second on
// demand. Close abandons a spare still starting and leaves nothing behind.
func TestWorkerSpare(t *testing.T) {
	stage := func(name, cmd string) *sched.Job {
		j := job("p", name, cmd)
		j.CacheMounts = map[string]string{"S": "sync"}
		j.Timeout = 20 * time.Second
		return j
	}
	for _, jobs := range []int{2, 1} {
		t.Run(fmt.Sprint("jobs=", jobs), func(t *testing.T) {
			h := newHarness(t, "worker", func(o *LocalOptions) { o.Jobs = jobs })
			mustSucceed(t, h, h.run(context.Background(), stage("first", "true")))
			deadline := time.Now().Add(10 * time.Second)
			for len(h.idleWorkers()) < jobs && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			before := map[*worker]bool{}
			for _, w := range h.idleWorkers() {
				before[w] = true
			}
			if len(before) != jobs {
				t.Fatalf("%d idle workers after one stage, want %d", len(before), jobs)
			}
			// Two stages at once, each waiting for the other to start.
			var wg sync.WaitGroup
			for i := 0; i < 2; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := h.l.Run(context.Background(), stage("c", fmt.Sprintf("touch $S/%d; while [ $(ls $S | wc -l) -lt 2 ]; do sleep 0.01; done", i)))
					if err != nil || res.Err != nil {
						t.Errorf("stage %d: %v, %+v", i, err, res)
					}
				}()
			}
			wg.Wait()
			started := 0
			for _, w := range h.idleWorkers() {
				if !before[w] {
					started++
				}
			}
			if want := 2 - jobs; started != want {
				t.Errorf("two stages at once started %d workers, want %d", started, want)
			}
		})
	}
	t.Run("close", func(t *testing.T) {
		// Until Close meets a spare still starting (it takes 60-100 ms, the
		// stage a few), at most five times.
		for attempt := 0; ; attempt++ {
			h := newHarness(t, "worker", func(o *LocalOptions) { o.Jobs = 2 })
			key := keyOf(stage("first", "true"))
			res, err := h.l.Run(context.Background(), stage("first", "true"))
			if err != nil || res.Err != nil {
				t.Fatalf("Run: %v, %+v", err, res)
			}
			p := h.l.workers()
			p.mu.Lock()
			starting := p.spares[key]
			p.mu.Unlock()
			if err := h.l.Close(); err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			n, spares := len(p.all), p.spares[key]
			p.mu.Unlock()
			if n != 0 || spares != 0 {
				t.Errorf("after Close: %d workers, %d spares starting", n, spares)
			}
			ents, err := os.ReadDir(h.l.opts.SandboxDir)
			if err != nil || len(ents) != 0 {
				t.Errorf("sandbox directory after Close: %d entries, %v", len(ents), err)
			}
			if starting == 1 {
				break
			}
			if attempt == 4 {
				t.Fatal("Close never met a spare still starting")
			}
		}
	})
}

// TestWorkerStartFails: when workers cannot start, stages run each in a
// bubblewrap sandbox of their own, with one warning.
func TestWorkerStartFails(t *testing.T) {
	tests := []struct {
		name   string
		runner string
		want   string
	}{
		{"no executable", "", "cannot find mc's own executable"},
		{"not a runner", "/bin/true", "starting a sandbox worker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "bwrap")
			p := h.l.workers()
			p.mu.Lock()
			p.disabled = false
			p.mu.Unlock()
			h.l.runner = tc.runner
			for i := 0; i < 3; i++ {
				res := h.run(context.Background(), job("p", "x", "echo $MC_WORKSPACE"))
				mustSucceed(t, h, res)
				if h.log(res) != sandboxWS+"\n" {
					t.Errorf("not isolated: %q", h.log(res))
				}
			}
			if len(h.warns) != 1 || !strings.Contains(h.warns[0], tc.want) || strings.Contains(h.warns[0], "\n") {
				t.Errorf("warnings = %q, want one line mentioning %q", h.warns, tc.want)
			}
			if !p.disabled {
				t.Error("workers not disabled after failing to start")
			}
		})
	}
}

func TestRunnerRefusesOutsideItsNamespace(t *testing.T) {
	var stderr strings.Builder
	code := serveRunner(strings.NewReader(""), &strings.Builder{}, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "not PID 1") {
		t.Errorf("serveRunner outside a sandbox = %d, %q; want a refusal", code, stderr.String())
	}
}

// tree lists the files and directories below root as "path" for files,
// "path/" for directories and "path/ (mode)" for a directory of mode
// other than 0755, sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			got = append(got, rel+"@")
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm() != 0o755 {
				rel += fmt.Sprintf("/ (%o)", fi.Mode().Perm())
			} else {
				rel += "/"
			}
			got = append(got, rel)
		default:
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// makeTree creates entries below root: "d/" a directory (mode 0700), "f" a
// file (mode 0400), "l@" a symlink to /.
func makeTree(t *testing.T, root string, entries []string) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, strings.TrimSuffix(strings.TrimSuffix(e, "/"), "@"))
		var err error
		switch {
		case strings.HasSuffix(e, "/"):
			err = os.Mkdir(p, 0o700)
		case strings.HasSuffix(e, "@"):
			err = os.Symlink("/", p)
		default:
			err = os.WriteFile(p, []byte("x"), 0o400)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func set(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, i := range items {
		m[i] = true
	}
	return m
}

func TestClearDir(t *testing.T) {
	tests := []struct {
		name   string
		before []string
		keep   []string
		after  []string
	}{
		{
			name:   "files go, kept directories stay",
			before: []string{"a/", "a/src/", "a/src/x.txt", "a/out/", "a/out/y", "top.txt"},
			keep:   []string{"a", "a/src", "a/out"},
			after:  []string{"a/", "a/out/", "a/src/"},
		},
		{
			name:   "directories not kept go",
			before: []string{"a/", "a/deep/", "a/deep/er/", "a/deep/er/f", "c/"},
			keep:   []string{"a"},
			after:  []string{"a/"},
		},
		{
			name:   "nothing kept",
			before: []string{"a/", "a/b/", "f", "l@"},
			after:  nil,
		},
		{
			name:   "a symlink where a directory is kept",
			before: []string{"a@"},
			keep:   []string{"a"},
			after:  nil,
		},
		{
			name:   "a kept directory not there",
			before: []string{"b/"},
			keep:   []string{"a", "b"},
			after:  []string{"b/"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			makeTree(t, root, tc.before)
			if err := os.Chmod(root, 0o500); err != nil {
				t.Fatal(err)
			}
			shape, err := clearDir(root, "", set(tc.keep...))
			if err != nil {
				t.Fatal(err)
			}
			// Modes are reset, and the shape returned is what is left.
			got := tree(t, root)
			if !slices.Equal(got, tc.after) {
				t.Errorf("after: %q, want %q", got, tc.after)
			}
			if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("root: %v, %v; want mode 0755", fi.Mode(), err)
			}
			var fromShape []string
			var walk func(prefix string, d dirTree)
			walk = func(prefix string, d dirTree) {
				for n, sub := range d {
					fromShape = append(fromShape, prefix+n+"/")
					walk(prefix+n+"/", sub)
				}
			}
			walk("", shape)
			slices.Sort(fromShape)
			if !slices.Equal(fromShape, tc.after) {
				t.Errorf("shape %q, want %q", fromShape, tc.after)
			}
		})
	}
}

func TestReshape(t *testing.T) {
	tests := []struct {
		name       string
		have, want []string
		after      []string
		// renamed names a directory of have expected to become one of
		// want (the same inode).
		renamed [2]string
	}{
		{"same", []string{"a", "a/src"}, []string{"a", "a/src"}, []string{"a/", "a/src/"}, [2]string{"a/src", "a/src"}},
		{"another package's directories are reused",
			[]string{"a", "a/src", "a/out"}, []string{"b", "b/src", "b/out"},
			[]string{"b/", "b/out/", "b/src/"}, [2]string{"a/src", "b/src"}},
		{"more wanted", []string{"a"}, []string{"b", "b/c", "d"}, []string{"b/", "b/c/", "d/"}, [2]string{"a", "b"}},
		{"fewer wanted", []string{"a", "a/b", "c"}, []string{"c"}, []string{"c/"}, [2]string{"c", "c"}},
		{"from nothing", nil, []string{"x", "x/y"}, []string{"x/", "x/y/"}, [2]string{}},
		{"to nothing", []string{"x", "x/y"}, nil, nil, [2]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			var mk []string
			for _, d := range tc.have {
				mk = append(mk, d+"/")
			}
			makeTree(t, root, mk)
			var ino uint64
			if tc.renamed[0] != "" {
				fi, err := os.Stat(filepath.Join(root, tc.renamed[0]))
				if err != nil {
					t.Fatal(err)
				}
				ino = fi.Sys().(*syscall.Stat_t).Ino
			}
			w := &worker{sb: &sandboxDirs{ws: root}, shape: treeOf(set(tc.have...))}
			if err := w.reshape(set(tc.want...)); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range tree(t, root) {
				got = append(got, strings.TrimSuffix(e, " (700)"))
			}
			if !slices.Equal(got, tc.after) {
				t.Errorf("after: %q, want %q", got, tc.after)
			}
			if tc.renamed[0] != "" {
				fi, err := os.Stat(filepath.Join(root, tc.renamed[1]))
				if err != nil || fi.Sys().(*syscall.Stat_t).Ino != ino {
					t.Errorf("%s was not reused as %s", tc.renamed[0], tc.renamed[1])
				}
			}
			if err := w.reshape(set(tc.want...)); err != nil {
				t.Errorf("reshaping again: %v", err)
			}
		})
	}
}

func TestKeptDirs(t *testing.T) {
	j := &sched.Job{
		Pkg: "svc/api",
		Inputs: []sched.Input{
			{Path: "svc/api/main.go"},
			{Path: "lib/core/out/core.a"},
			{Path: "gen/out/pb", IsTree: true},
			{Path: "top.txt"},
		},
		Outs: []string{"svc/api/out/api", "svc/api/out/docs/"},
	}
	var got []string
	for d := range keptDirs(j) {
		got = append(got, d)
	}
	slices.Sort(got)
	want := []string{"gen", "gen/out", "lib", "lib/core", "lib/core/out", "svc", "svc/api", "svc/api/out"}
	if !slices.Equal(got, want) {
		t.Errorf("keptDirs = %q, want %q", got, want)
	}
}

func TestStageLog(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		writes []string
		file   bool
	}{
		{"empty", 10, nil, false},
		{"in memory", 10, []string{"hello", "world"}, false},
		{"spilled", 10, []string{"hello", "world", "!"}, true},
		{"always a file", -1, []string{"x"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store, err := cas.OpenStore(filepath.Join(dir, "cas"))
			if err != nil {
				t.Fatal(err)
			}
			l := &stageLog{path: filepath.Join(dir, "log"), limit: tc.limit}
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(l.path); (err == nil) != tc.file {
				t.Errorf("log file exists: %v, want %v", err == nil, tc.file)
			}
			d, err := l.store(store, true)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Join(tc.writes, "")
			if b, err := store.ReadBytes(d); err != nil || string(b) != want {
				t.Errorf("stored log %q, %v; want %q", b, err, want)
			}
		})
	}
}
