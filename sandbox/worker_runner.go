package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/internal/fdio"
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
//	if sandbox.RunnerMain() { return }
//
// This is the one place of package sandbox that calls os.Exit: the runner is
// a program of its own that happens to live in the same binary.
func RunnerMain() (ran bool) {
	switch os.Getenv(runnerEnv) {
	case "1":
	case runnerExec:
		os.Exit(execAsRoot(os.Args[1:], os.Stderr))
	case runnerHold:
		os.Exit(holdSetupNS(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case runnerHold2:
		os.Exit(holdUserNS(os.Stdin))
	default:
		return false
	}
	// Root of the stage's user namespace (sandbox_confine.go).
	if err := becomeRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "mc sandbox runner: %v\n", err)
		os.Exit(2)
	}
	// One P: the runner is one goroutine, mostly blocked in poll(2)
	// between short bursts.
	runtime.GOMAXPROCS(1)
	os.Exit(serveRunner(os.Stdin, os.Stdout, os.Stderr))
	return true
}

// runner is the state of a worker's PID 1. It is a single goroutine
// working on descriptors directly: waiting for a request, then for the
// stage's output, its exit (its pidfd) or a kill request, all in one
// poll(2), so that a stage costs no goroutine or thread handoffs, which
// take CPU time from the stages.
type runner struct {
	reqs    frameReader // requests, from the host (blocking)
	out     int         // replies, to the host (blocking)
	proc    *os.File    // the PID namespace's /proc, opened before any stage ran
	devnull *os.File
	// The sandbox as it was before the first stage: what a stage may
	// have changed outside the directories the host empties.
	snap *sandboxSnapshot
	buf  []byte // the stage's output, read and forwarded
	wbuf []byte // a frame being written
}

// serveRunner is the runner's main loop; it returns the exit status. in
// and out must be files (the worker's pipes).
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
	inF, ok1 := in.(*os.File)
	outF, ok2 := out.(*os.File)
	if !ok1 || !ok2 {
		return fail(errors.New("requests and replies must be pipes"))
	}
	closeInheritedSelf()
	// PID 1 only receives the signals it handles from inside its
	// namespace; handling them all keeps a stage's `kill -TERM 1` (or
	// kill -TERM -1) from ending the worker. Children get the default
	// dispositions back at exec. SIGCHLD is left to the runtime, which
	// ignores it (without reaping: that is the runner's job): a stage's
	// end is seen on its pidfd, and relaying the signal would wake a
	// goroutine for nothing.
	signal.Notify(make(chan os.Signal, 1))
	signal.Reset(syscall.SIGCHLD)
	// Fd makes the descriptors blocking: the runner waits in poll(2).
	r := &runner{
		reqs: frameReader{fd: int(inF.Fd())},
		out:  int(outF.Fd()),
		buf:  make([]byte, 32<<10),
	}
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
	if err := r.send(frameHello, nil); err != nil {
		return fail(err)
	}
	// dirty is what the last stage left that cannot be undone: the next
	// request is then refused, unstarted, and the runner exits.
	var dirty error
	for {
		typ, payload, err := r.reqs.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("reading requests: %w", err))
		}
		if typ != frameRun {
			continue // a kill that came after its stage ended
		}
		if dirty != nil {
			r.sendExit(runExit{Err: dirty.Error(), Broken: true})
			fmt.Fprintf(errw, "mc sandbox runner: %v\n", dirty)
			return 1
		}
		var req runRequest
		if err := req.decode(payload); err != nil {
			return fail(err)
		}
		ex, hostGone := r.run(&req)
		if hostGone {
			break
		}
		if err := r.sendExit(ex); err != nil {
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

// send writes one frame to the host, in one write.
func (r *runner) send(typ byte, p []byte) error {
	r.wbuf = append(r.wbuf[:0], typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(r.wbuf[1:5], uint32(len(p)))
	r.wbuf = append(r.wbuf, p...)
	return fdio.WriteAll(r.out, r.wbuf)
}

func (r *runner) sendExit(ex runExit) error {
	return r.send(frameExit, ex.encode(nil))
}

// run runs one stage and returns how it ended, once nothing of it runs any
// more. hostGone reports that the host closed the request stream (the
// stage was then killed).
func (r *runner) run(req *runRequest) (ex runExit, hostGone bool) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return runExit{Err: fmt.Sprintf("creating the output pipe: %v", err)}, false
	}
	pr, pw := p[0], p[1]
	defer unix.Close(pr)
	argv := shellArgs(req.Cmds)
	pidfd := -1
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir:   req.Dir,
		Env:   req.Env,
		Files: []uintptr{r.devnull.Fd(), uintptr(pw), uintptr(pw)},
		// A process group of its own, to kill whole; a pidfd to wait for
		// it in poll(2).
		Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	})
	unix.Close(pw)
	if err != nil {
		return runExit{Err: fmt.Sprintf("starting %s in %s: %v", argv[0], req.Dir, err)}, false
	}
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	if err := r.send(frameStarted, nil); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	var (
		ws       syscall.WaitStatus
		exited   bool
		pipeOpen = true
		ferr     error // forwarding the output failed
		hostOpen = true
		// Without a pidfd (before Linux 5.3) the stage is polled for.
		poll = time.Millisecond
	)
	kill := func() {
		// Everything goes, not only the group: whatever left it too.
		syscall.Kill(-pid, syscall.SIGKILL)
		r.killOthers()
	}
	for !exited {
		fds := []unix.PollFd{{Fd: int32(pr), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(r.reqs.fd), Events: unix.POLLIN}}
		if !pipeOpen {
			fds[0].Fd = -1 // ignored by poll(2)
		}
		if !hostOpen {
			fds[2].Fd = -1
		}
		timeout := time.Duration(-1)
		if pidfd < 0 {
			timeout = poll
			poll = min(2*poll, 50*time.Millisecond)
		}
		if err := waitFDs(fds, timeout); err != nil {
			// Not expected: the stage goes, and is waited for the plain way.
			kill()
			ferr = errors.Join(ferr, fmt.Errorf("waiting for the stage: %w", err))
			for {
				_, werr := syscall.Wait4(pid, &ws, 0, nil)
				if werr == nil {
					break
				}
				if werr != syscall.EINTR {
					ws = syscall.WaitStatus(syscall.SIGKILL)
					break
				}
			}
			break
		}
		if fds[0].Revents != 0 {
			pipeOpen, err = r.forward(pr, ferr != nil)
			if err != nil && ferr == nil {
				ferr = err
			}
		}
		if fds[2].Revents != 0 {
			kills, err := r.reqs.fill()
			if err != nil {
				hostOpen, hostGone = false, true
				kill()
			} else if kills {
				kill()
			}
		}
		if pidfd < 0 || fds[1].Revents != 0 {
			exited = reap(pid, &ws)
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
	deadline := time.Now().Add(drainTimeout)
	for pipeOpen {
		left := time.Until(deadline)
		if left <= 0 {
			ferr = errors.Join(ferr, errors.New("the output pipe stays open"))
			break
		}
		fds := []unix.PollFd{{Fd: int32(pr), Events: unix.POLLIN}}
		if err := waitFDs(fds, left); err != nil {
			ferr = errors.Join(ferr, err)
			break
		}
		if fds[0].Revents != 0 {
			pipeOpen, err = r.forward(pr, ferr != nil)
			if err != nil && ferr == nil {
				ferr = err
			}
		}
	}
	switch {
	case cleanErr != nil:
		ex.Broken, ex.Err = true, cleanErr.Error()
	case ferr != nil:
		ex.Broken, ex.Err = true, fmt.Sprintf("forwarding the output: %v", ferr)
	}
	return ex, hostGone
}

// forward sends what the stage wrote to the output pipe to the host, or
// drops it (after the host could not be written to: the stage must never
// block on a full pipe before it is killed); open is false at the end of
// the pipe.
func (r *runner) forward(pr int, drop bool) (open bool, err error) {
	n, rerr := unix.Read(pr, r.buf)
	switch {
	case rerr == unix.EINTR || rerr == unix.EAGAIN:
		return true, nil
	case rerr != nil:
		return false, rerr
	case n == 0:
		return false, nil
	case drop:
		return true, nil
	}
	return true, r.send(frameOutput, r.buf[:n])
}

// reap reaps pid if it has exited, with its status in ws. Other children
// (orphans of the namespace, inherited by PID 1) are reaped by killAll.
func reap(pid int, ws *syscall.WaitStatus) bool {
	for {
		wpid, err := syscall.Wait4(pid, ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// ECHILD: cannot happen while pid is unreaped; report a kill.
			*ws = syscall.WaitStatus(syscall.SIGKILL)
			return true
		}
		return wpid == pid
	}
}

// frameReader reads the host's frames from a blocking descriptor.
type frameReader struct {
	fd  int
	buf []byte // read, not yet consumed
	off int    // start of what is not consumed
	eof bool
}

// next returns the next frame, reading as much as it takes. io.EOF is the
// end of the requests between frames.
func (f *frameReader) next() (typ byte, payload []byte, err error) {
	for {
		if typ, p, ok, err := f.parse(); err != nil || ok {
			return typ, p, err
		}
		if f.eof {
			if f.off == len(f.buf) {
				return 0, nil, io.EOF
			}
			return 0, nil, io.ErrUnexpectedEOF
		}
		fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
		if err := waitFDs(fds, -1); err != nil {
			return 0, nil, err
		}
		if fds[0].Revents == 0 {
			continue
		}
		if err := f.read(); err != nil {
			return 0, nil, err
		}
	}
}

// fill reads what is there (the descriptor polled readable) and reports
// whether a kill request came; other frames are dropped. An error is the
// host gone.
func (f *frameReader) fill() (kill bool, err error) {
	if err := f.read(); err != nil {
		return false, err
	}
	for {
		typ, _, ok, err := f.parse()
		if err != nil {
			return kill, err
		}
		if !ok {
			if f.eof {
				return kill, io.EOF
			}
			return kill, nil
		}
		kill = kill || typ == frameKill
	}
}

// parse consumes one whole frame from the buffer, if there is one.
func (f *frameReader) parse() (typ byte, payload []byte, ok bool, err error) {
	b := f.buf[f.off:]
	if len(b) < 5 {
		return 0, nil, false, nil
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n > maxFrame {
		return 0, nil, false, fmt.Errorf("frame of %d bytes: broken stream", n)
	}
	if len(b) < 5+int(n) {
		return 0, nil, false, nil
	}
	f.off += 5 + int(n)
	return b[0], b[5 : 5+n], true, nil
}

// read appends one read(2) to the buffer, dropping what was consumed.
func (f *frameReader) read() error {
	if f.off > 0 {
		f.buf = append(f.buf[:0], f.buf[f.off:]...)
		f.off = 0
	}
	if cap(f.buf)-len(f.buf) < 4<<10 {
		f.buf = append(f.buf, make([]byte, 64<<10)...)[:len(f.buf)]
	}
	for {
		n, err := unix.Read(f.fd, f.buf[len(f.buf):cap(f.buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			f.eof = true
		}
		f.buf = f.buf[:len(f.buf)+n]
		return nil
	}
}

// quietWait is how long the runner waits for a descriptor with a system
// call the Go scheduler does not see (see waitFDs).
const quietWait = 20 * time.Millisecond

// waitFDs is ppoll(2) on fds, for up to timeout (negative: no limit); it
// returns early, with no event, when a signal interrupts it. The runner
// waits between two requests and while a stage runs, a millisecond or
// so each in a build of small stages. A blocking system call made the
// usual way makes the Go scheduler hand the runner's one P to a new
// thread when it lasts, which finds nothing to do: a few context switches
// per stage, CPU time taken from the stages. So the first quietWait of a
// wait is a raw system call. A longer wait (a long stage, an idle worker)
// then goes through the scheduler, which lets the runtime sleep.
func waitFDs(fds []unix.PollFd, timeout time.Duration) error {
	first := quietWait
	if timeout >= 0 && timeout < first {
		first = timeout
	}
	start := time.Now()
	for {
		left := first - time.Since(start)
		if left <= 0 {
			break
		}
		ts := unix.NsecToTimespec(int64(left))
		n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			// The runtime's preemption signal, or another: on, for
			// what is left of the quiet wait.
			continue
		case errno != 0:
			return errno
		case n > 0:
			return nil
		}
	}
	if timeout >= 0 && timeout <= first {
		return nil
	}
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout - first))
		ts = &t
	}
	if _, err := unix.Ppoll(fds, ts, nil); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}

// killAll kills every process of the namespace but the runner and reaps
// them, until none is left. Every process of the namespace descends from
// its PID 1 (orphans are handed to it), so none is left once the runner
// has no child: most stages leave none, and that costs one wait4(2).
func (r *runner) killAll() error {
	deadline := time.Now().Add(5 * time.Second)
	pause := 50 * time.Microsecond
	for {
		left, err := reapAll()
		if err != nil {
			// Not expected; /proc tells instead.
			pids, perr := r.others()
			if perr != nil {
				return perr
			}
			left = len(pids) > 0
		}
		if !left {
			return nil
		}
		r.killOthers()
		if time.Now().After(deadline) {
			pids, _ := r.others()
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		// The killed die, and their orphans come to PID 1, in a moment.
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// killOthers sends SIGKILL to every process of the namespace but the
// runner: kill(2) of -1 by the PID 1 of a namespace reaches exactly those.
func (r *runner) killOthers() {
	syscall.Kill(-1, syscall.SIGKILL)
}

// reapAll reaps every child that has exited, and reports whether any is
// left (running).
func reapAll() (left bool, err error) {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ECHILD:
			return false, nil
		case err != nil:
			return true, err
		case wpid == 0:
			return true, nil
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
