package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A worker is a long-lived sandbox: one bubblewrap process, started once
// with the namespaces a stage gets, whose PID 1 is the runner (this same
// binary, see RunnerMain). Stages then run in it one after the other, each
// paying a fork and exec instead of a sandbox set-up. Between stages the
// runner kills whatever a stage left running and undoes what it changed in
// the sandbox's own directories, and the host empties the workspace, home
// and /tmp (see tidy), so that a stage finds the sandbox as fresh as one of
// its own.
type worker struct {
	key    poolKey
	covers []string // host paths (workspaces) hidden besides the root's
	sb     *sandboxDirs
	cmd    *osexec.Cmd
	stdin  *os.File // requests
	stdout *bufio.Reader
	out    *os.File
	stderr *tailWriter
	exited chan struct{} // closed once bubblewrap has exited and been reaped
	// mounts are the cache mount directories bound at start: a directory
	// removed and made again on the host is not the one the worker sees.
	mounts    []mountID
	closeOnce sync.Once
	// tmpKeep are the directories bubblewrap made in /tmp as mount points
	// (for a directory on PATH below /tmp): removing one on the host
	// would detach its mount in the sandbox.
	tmpKeep map[string]bool
	// shape is the tree of the empty directories in the workspace, as
	// clear left it; nil when not known.
	shape dirTree
	// pool keeps the directories stages no longer need (worker_tidy.go).
	pool *dirPool
	// dirBuf is the buffer clear reads directories with.
	dirBuf []byte

	mu  sync.Mutex // serializes requests
	buf []byte     // frame buffer, used by one job at a time
	// broken marks a worker that must not run another stage.
	broken bool
	// net is the worker's private network (stage_net.go); nil: the host's or none.
	net *stageNet
}

// killGrace is how long the runner has to report a killed stage over
// before the whole worker is killed instead.
const killGrace = 2 * time.Second

// workerStartTimeout bounds a worker's start, up to its hello.
const workerStartTimeout = 30 * time.Second

// errWorkerLost is a worker that died or stopped answering.
var errWorkerLost = errors.New("the sandbox worker died")

// startWorker starts a worker for jobs of key, hiding covers as well.
// Cancelling ctx abandons a start still waiting for the worker's hello.
func (l *Local) startWorker(ctx context.Context, key poolKey, covers []string) (w *worker, err error) {
	if l.runner == "" {
		return nil, errors.New("cannot find mc's own executable to run in the sandbox")
	}
	sb, err := newSandbox(l.opts.SandboxDir, "worker-", true)
	if err != nil {
		return nil, fmt.Errorf("creating a worker sandbox: %w", err)
	}
	dir := sb.dir
	defer func() {
		if err != nil {
			removeAll(dir)
		}
	}()
	// The workspace a stage sees is a directory below ws, next to the
	// worker's pool of spare directories (worker_tidy.go), which no stage
	// sees: an idle worker holds empty directories only.
	sb.ws = filepath.Join(dir, "ws", "stage")
	if err := os.Mkdir(sb.ws, 0o755); err != nil {
		return nil, fmt.Errorf("creating a worker sandbox: %w", err)
	}
	if err := l.ownSandbox(sb); err != nil {
		return nil, fmt.Errorf("creating a worker sandbox: %w", err)
	}
	// The runner is executed from an open descriptor (fd 3 in bubblewrap,
	// which passes it on): the sandbox then shows no trace of it.
	self, err := os.Open(l.runner)
	if err != nil {
		return nil, fmt.Errorf("opening mc's executable: %w", err)
	}
	defer self.Close()
	var mounts []cacheMount
	var ids []mountID
	for _, name := range key.mountNames() {
		if err := l.seedFromTrusted(name); err != nil {
			return nil, err
		}
		host := filepath.Join(l.opts.MountsDir, name)
		if err := l.ownMount(host); err != nil {
			return nil, fmt.Errorf("cache mount %s: %w", name, err)
		}
		id, ok := statMount(host)
		if !ok {
			return nil, fmt.Errorf("cache mount %s: cannot stat %s", name, host)
		}
		mounts = append(mounts, cacheMount{host: host, inside: sandboxCache + "/" + name})
		ids = append(ids, id)
	}
	c, err := l.root.workerArgs(l.bwrap, sb, key.network, mounts, coverArgs(covers), self)
	if err != nil {
		return nil, fmt.Errorf("starting a worker: %w", err)
	}
	defer c.close()
	argv := c.args
	// With PrivateNetwork, a network worker runs in a network namespace of
	// its own, set up once per worker (stage_net.go).
	wnet, err := l.privateNet(key.network, true)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			wnet.close()
		}
	}()

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting a worker: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("starting a worker: %w", err)
	}
	w = &worker{
		key: key, covers: covers, sb: sb,
		stdin: inW, out: outR, stdout: bufio.NewReaderSize(outR, 64<<10),
		stderr: &tailWriter{max: 4 << 10},
		exited: make(chan struct{}),
		mounts: ids,
		shape:  dirTree{},
		pool:   &dirPool{dir: filepath.Join(dir, "ws", "spare"), own: l.own},
		net:    wnet,
	}
	w.cmd = &osexec.Cmd{
		Path:       argv[0],
		Args:       argv,
		Env:        []string{runnerEnv + "=1"},
		Stdin:      inR,
		Stdout:     outW,
		Stderr:     w.stderr,
		ExtraFiles: c.files,
		// A process group to kill whole (bubblewrap and the runner; the
		// runner's death takes its PID namespace down with it).
		SysProcAttr: l.root.sysProcAttr(),
	}
	err = wnet.start(w.cmd) // runnernet: in the private network, if any
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		w.cmd.Wait()
		close(w.exited)
	}()
	hello := make(chan error, 1)
	go func() {
		typ, _, err := readFrame(w.stdout, nil)
		if err == nil && typ != frameHello {
			err = fmt.Errorf("unexpected frame %q", typ)
		}
		hello <- err
	}()
	t := time.NewTimer(workerStartTimeout)
	defer t.Stop()
	select {
	case err = <-hello:
	case <-t.C:
		err = errors.New("no answer")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		w.tmpKeep, err = dirsIn(sb.tmp)
	}
	if err != nil {
		w.kill()
		if msg := w.stderr.line(); msg != "" {
			return nil, fmt.Errorf("starting a sandbox worker: %s", msg)
		}
		return nil, fmt.Errorf("starting a sandbox worker: %w", err)
	}
	return w, nil
}

// alive reports whether bubblewrap still runs and the worker may be used.
func (w *worker) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return !w.broken
	}
}

// mountID identifies a cache mount directory on the host.
type mountID struct {
	path     string
	dev, ino uint64
}

func statMount(p string) (mountID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return mountID{}, false
	}
	return mountID{path: p, dev: uint64(st.Dev), ino: st.Ino}, true
}

// mountsCurrent reports whether the cache mount directories the worker
// sees are still those on the host. A missing one is made first, as a
// stage's cache mount would be.
func (w *worker) mountsCurrent() bool {
	for _, m := range w.mounts {
		if err := os.MkdirAll(m.path, 0o755); err != nil {
			return false
		}
		if id, ok := statMount(m.path); !ok || id != m {
			return false
		}
	}
	return true
}

// canHide reports whether the worker hides every path of covers.
func (w *worker) canHide(covers []string) bool {
	for _, c := range covers {
		found := false
		for _, wc := range w.covers {
			if wc == c {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// workerRun is how a stage run on a worker ended.
type workerRun struct {
	exit     runExit
	started  bool // the runner started the stage's shell
	timedOut bool
	err      error // errWorkerLost, ctx's error, or writing the output failed
}

// frameEnd is what the reader of a stage's frames ends with.
type frameEnd struct {
	exit    runExit
	started bool
	lost    bool  // the stream ended before the exit frame
	werr    error // the first error writing the output
}

// run runs req on the worker, streaming its output to out, until the stage
// is over: it ended, or it was killed on timeout or ctx's end. out is only
// written to before run returns.
func (w *worker) run(ctx context.Context, req *runRequest, out io.Writer, timeout time.Duration) workerRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	var r workerRun
	if err := writeFrame(w.stdin, frameRun, req.encode(nil)); err != nil {
		w.broken = true
		r.err = errWorkerLost
		return r
	}
	done := make(chan frameEnd, 1)
	go func() { done <- w.readFrames(out) }()

	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	var e frameEnd
	select {
	case e = <-done:
	case <-ctx.Done():
		e = w.stop(done)
		r.err = ctx.Err()
	case <-timer:
		r.timedOut = true
		e = w.stop(done)
	}
	r.exit, r.started = e.exit, e.started
	if e.lost || e.exit.Broken {
		w.broken = true
	}
	switch {
	case r.err != nil:
	case e.lost:
		r.err = errWorkerLost
	case e.werr != nil:
		r.err = e.werr
	}
	return r
}

// readFrames reads the frames of one stage up to its exit frame, writing
// its output to out. It reads on after out fails: the runner must never
// block on a full pipe.
func (w *worker) readFrames(out io.Writer) frameEnd {
	var e frameEnd
	for {
		typ, p, err := readFrame(w.stdout, w.buf)
		if err != nil {
			e.lost = true
			return e
		}
		w.buf = p[:0]
		switch typ {
		case frameStarted:
			e.started = true
		case frameOutput:
			if e.werr == nil {
				_, e.werr = out.Write(p)
			}
		case frameExit:
			if err := e.exit.decode(p); err != nil {
				e.lost = true
			}
			return e
		}
	}
}

// stop kills the running stage: the runner is asked to, and when it does
// not report the stage over in time, the worker is killed instead.
func (w *worker) stop(done <-chan frameEnd) frameEnd {
	if err := writeFrame(w.stdin, frameKill, nil); err == nil {
		t := time.NewTimer(killGrace)
		defer t.Stop()
		select {
		case e := <-done:
			return e
		case <-t.C:
		}
	}
	w.broken = true
	w.kill()
	e := <-done
	e.lost = true
	return e
}

// kill kills the worker, bubblewrap and everything in its sandbox, and
// waits for bubblewrap to be reaped.
func (w *worker) kill() {
	w.killGroup()
	w.closeFiles()
}

// killGroup kills bubblewrap's process group unless bubblewrap is reaped
// already (its id might then be another's), and waits for it.
func (w *worker) killGroup() {
	select {
	case <-w.exited:
	default:
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.exited
	}
}

func (w *worker) closeFiles() {
	w.closeOnce.Do(func() {
		w.stdin.Close()
		w.out.Close()
		w.net.close() // runnernet
	})
}

// close ends the worker: the runner, told by the end of its input, kills
// what is left in the sandbox and exits; a runner that does not in time is
// killed. The worker's directory is removed.
func (w *worker) close() error {
	w.stdin.Close()
	t := time.NewTimer(killGrace)
	select {
	case <-w.exited:
		t.Stop()
	case <-t.C:
		w.killGroup()
	}
	w.closeFiles()
	return removeAll(w.sb.dir)
}

// discard kills the worker and removes its directory.
func (w *worker) discard() error {
	w.kill()
	return removeAll(w.sb.dir)
}

// tailWriter keeps the last max bytes written to it: a worker's stderr,
// for the message of a worker that fails.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// line returns the last line written, trimmed.
func (t *tailWriter) line() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
