package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runnerEnv, set to "1", makes the mc binary (or a test binary whose
// TestMain calls RunnerMain) the runner of a sandbox worker.
const runnerEnv = "MC_SANDBOX_RUNNER"

// RunnerMain turns this process into the runner of a sandbox worker when
// the executor started it as one (MC_SANDBOX_RUNNER=1 in its environment):
// it serves stage requests on stdin and stdout until stdin is closed, then
// exits the process; it never returns in that case. Otherwise it returns
// false at once. Every main (and every TestMain of a binary that runs
// stages, since the executor starts os.Executable() as the runner) must
// begin with:
//
//	if exec.RunnerMain() { return }
//
// This is the one place of package exec that calls os.Exit: the runner is
// a program of its own that happens to live in the same binary.
func RunnerMain() (ran bool) {
	if os.Getenv(runnerEnv) != "1" {
		return false
	}
	// One P, and pipes in the netpoller rather than threads blocked in
	// read(2): the runner is mostly idle between short bursts, and each
	// thread handoff and sysmon wake-up costs the stages CPU time.
	runtime.GOMAXPROCS(1)
	in, out := os.Stdin, os.Stdout
	if unix.SetNonblock(0, true) == nil && unix.SetNonblock(1, true) == nil {
		in, out = os.NewFile(0, "stdin"), os.NewFile(1, "stdout")
	}
	os.Exit(serveRunner(in, out, os.Stderr))
	return true
}

// runner is the state of a worker's PID 1.
type runner struct {
	out     io.Writer
	outMu   sync.Mutex
	proc    *os.File // the PID namespace's /proc, opened before any stage ran
	devnull *os.File
	sigchld chan os.Signal // a child exited (coalesced)
	// The sandbox as it was before the first stage: what a stage may
	// have changed outside the directories the host empties.
	snap *sandboxSnapshot
}

type frame struct {
	typ     byte
	payload []byte
}

// serveRunner is the runner's main loop; it returns the exit status.
func serveRunner(in io.Reader, out, errw io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(errw, "mc sandbox runner: %v\n", err)
		return 2
	}
	// Killing every other process it can see is only right for the init
	// of a sandbox's own PID namespace.
	if os.Getpid() != 1 {
		return fail(errors.New("not PID 1 of a PID namespace; refusing to run"))
	}
	closeInheritedSelf()
	// PID 1 only receives the signals it handles from inside its
	// namespace; handling them all keeps a stage's `kill -TERM 1` (or
	// kill -TERM -1) from ending the worker. Children get the default
	// dispositions back at exec.
	signal.Notify(make(chan os.Signal, 1))
	r := &runner{out: out, sigchld: make(chan os.Signal, 1)}
	signal.Notify(r.sigchld, syscall.SIGCHLD)
	var err error
	if r.proc, err = os.Open("/proc"); err != nil {
		return fail(err)
	}
	if r.devnull, err = os.Open("/dev/null"); err != nil {
		return fail(err)
	}
	if r.snap, err = r.snapshot(); err != nil {
		return fail(err)
	}
	reqs := make(chan frame, 4)
	go func() {
		defer close(reqs)
		var buf []byte
		for {
			typ, p, err := readFrame(in, buf)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fmt.Fprintf(errw, "mc sandbox runner: reading requests: %v\n", err)
				}
				return
			}
			reqs <- frame{typ, bytes.Clone(p)}
			buf = p
		}
	}()
	if err := r.send(frameHello, nil); err != nil {
		return fail(err)
	}
	// dirty is what the last stage left that cannot be undone: the next
	// request is then refused, unstarted, and the runner exits.
	var dirty error
	for f := range reqs {
		if f.typ != frameRun {
			continue // a kill that came after its stage ended
		}
		if dirty != nil {
			r.sendJSON(frameExit, runExit{Err: dirty.Error(), Broken: true})
			fmt.Fprintf(errw, "mc sandbox runner: %v\n", dirty)
			return 1
		}
		var req runRequest
		if err := json.Unmarshal(f.payload, &req); err != nil {
			return fail(fmt.Errorf("bad request: %w", err))
		}
		ex, hostGone := r.run(&req, reqs)
		if hostGone {
			break
		}
		if err := r.sendJSON(frameExit, ex); err != nil {
			return fail(err)
		}
		if ex.Broken {
			fmt.Fprintf(errw, "mc sandbox runner: %s\n", ex.Err)
			return 1
		}
		// After the exit frame: the host collects the outputs meanwhile.
		// No process of the stage is left to change anything.
		dirty = r.restore()
	}
	if err := r.killAll(); err != nil {
		return fail(err)
	}
	return 0
}

// closeInheritedSelf closes descriptor 3 when it is this program's own
// file, which the executor passes to bubblewrap to run the runner from
// (/proc/self/fd/3): a stage must not inherit it.
func closeInheritedSelf() {
	var fd, self unix.Stat_t
	if unix.Fstat(3, &fd) != nil || unix.Stat("/proc/self/exe", &self) != nil {
		return
	}
	if fd.Dev == self.Dev && fd.Ino == self.Ino {
		unix.Close(3)
	}
}

func (r *runner) send(typ byte, p []byte) error {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	return writeFrame(r.out, typ, p)
}

func (r *runner) sendJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.send(typ, b)
}

// run runs one stage and returns how it ended, once nothing of it runs any
// more. hostGone reports that the host closed the request stream (the
// stage was then killed).
func (r *runner) run(req *runRequest, reqs <-chan frame) (ex runExit, hostGone bool) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return runExit{Err: fmt.Sprintf("creating the output pipe: %v", err)}, false
	}
	argv := shellArgs(req.Cmds)
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir:   req.Dir,
		Env:   req.Env,
		Files: []uintptr{r.devnull.Fd(), pw.Fd(), pw.Fd()},
		// A process group of its own, to kill whole.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	pw.Close()
	if err != nil {
		pr.Close()
		return runExit{Err: fmt.Sprintf("starting %s in %s: %v", argv[0], req.Dir, err)}, false
	}
	if err := r.send(frameStarted, nil); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	forwarded := make(chan error, 1)
	go func() { forwarded <- r.forward(pr) }()
	exited := make(chan syscall.WaitStatus, 1)
	go func() { exited <- r.waitChild(pid) }()

	var ws syscall.WaitStatus
wait:
	for {
		select {
		case ws = <-exited:
			break wait
		case f, ok := <-reqs:
			if !ok {
				hostGone, reqs = true, nil
			} else if f.typ != frameKill {
				continue
			}
			// Everything goes, not only the group: whatever left it too.
			syscall.Kill(-pid, syscall.SIGKILL)
			r.killOthers()
		}
	}
	if ws.Signaled() {
		ex.Signal = int(ws.Signal())
	} else {
		ex.Code = ws.ExitStatus()
	}
	cleanErr := r.killAll()
	// Every process that could hold the pipe is dead now; the deadline is
	// for one that somehow is not.
	pr.SetReadDeadline(time.Now().Add(drainTimeout))
	ferr := <-forwarded
	pr.Close()
	switch {
	case cleanErr != nil:
		ex.Broken, ex.Err = true, cleanErr.Error()
	case ferr != nil:
		ex.Broken, ex.Err = true, fmt.Sprintf("forwarding the output: %v", ferr)
	}
	return ex, hostGone
}

// forward sends the stage's output to the host as it comes.
func (r *runner) forward(pr *os.File) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			if werr := r.send(frameOutput, buf[:n]); werr != nil {
				// The host is gone: keep draining so the stage never
				// blocks on a full pipe before it is killed.
				io.Copy(io.Discard, pr)
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// waitChild reaps children until pid has exited, and returns its status.
// As PID 1 the runner inherits every orphan of the namespace; they are
// reaped on the way. It waits for SIGCHLD rather than in wait4(2), which
// would hold a thread.
func (r *runner) waitChild(pid int) syscall.WaitStatus {
	for {
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				// ECHILD: cannot happen while pid is unreaped; report a kill.
				return syscall.WaitStatus(syscall.SIGKILL)
			}
			if wpid == pid {
				return ws
			}
			if wpid <= 0 {
				break
			}
		}
		<-r.sigchld
	}
}

// killAll kills every process of the namespace but the runner and reaps
// them, until none is left.
func (r *runner) killAll() error {
	deadline := time.Now().Add(5 * time.Second)
	pause := 50 * time.Microsecond
	for {
		reapAll()
		pids, err := r.others()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		// The killed die, and their orphans come to PID 1, in a moment.
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// killOthers sends SIGKILL to every process of the namespace but the runner.
func (r *runner) killOthers() {
	pids, _ := r.others()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// reapAll reaps every child that has exited.
func reapAll() {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || wpid <= 0 {
			return
		}
	}
}

// others lists the processes of the namespace but the runner, through the
// /proc opened at start: a stage cannot hide one by mounting over /proc.
func (r *runner) others() ([]int, error) {
	if _, err := r.proc.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	names, err := r.proc.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid != 1 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
