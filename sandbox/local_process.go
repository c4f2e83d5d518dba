package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// drainTimeout bounds the wait for the end of a stage's output after its
// process group is gone: only a process that left the group (setsid, when
// not under bubblewrap) can still hold the pipe open.
const drainTimeout = 2 * time.Second

// exec runs the job's commands in the prepared sandbox, writing the masked
// log to the sandbox's log file and Job.Log. It returns the exit code and
// the stage's failure (runErr), or an infrastructure error, or ctx's error
// when the stage was cancelled. The process group is gone when it returns.
func (s *stage) exec(ctx context.Context, mounts []cacheMount) (code int, runErr, err error) {
	shell := shellArgs(s.job.Cmds)
	argv, dir := shell, filepath.Join(s.sb.ws, filepath.FromSlash(s.job.Pkg))
	attr := &syscall.SysProcAttr{
		// A session of its own: a process group to kill whole, and no
		// controlling terminal to read from or inject input into.
		Setsid: true,
		// Dies with mc even when mc is killed without a chance to clean up.
		Pdeathsig: syscall.SIGKILL,
	}
	var files []*os.File
	env := s.env(mounts)
	if s.isolated {
		// Every workspace seen is hidden, not only the job's: a job
		// without sources does not tell which is its own.
		cover := coverArgs(s.l.knownCovers(coverPaths(s.l.wsCover(s.job))))
		c, err := s.l.root.bwrapArgs(s.l.bwrap, s.sb, s.job, mounts, cover, shell)
		if err != nil {
			return 0, nil, err
		}
		defer c.close()
		argv, dir, files, attr = c.args, "", c.files, s.l.root.sysProcAttr()
		env = append(env, c.env...)
	}
	// runnernet: with PrivateNetwork, a stage with network runs in a
	// network namespace of its own, or not at all (stage_net.go).
	snet, err := s.l.privateNet(s.job.Network, s.isolated)
	if err != nil {
		return 0, nil, err
	}
	defer snet.close()
	logf, mw, err := s.openLog()
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()

	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("creating the log pipe: %w", err)
	}
	defer pr.Close()
	cmd := &osexec.Cmd{
		Path:        argv[0],
		Args:        argv,
		Env:         env,
		Dir:         dir,
		Stdout:      pw, // one pipe for both: the log keeps their interleaving
		Stderr:      pw,
		ExtraFiles:  files,
		SysProcAttr: attr,
	}
	if err := ctx.Err(); err != nil {
		pw.Close()
		return 0, nil, err
	}
	// runnernet: started in the private network, if any.
	err = snet.start(cmd)
	pw.Close() // the child has its copy; EOF comes when the last writer exits
	if err != nil {
		return 0, nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	copied := make(chan error, 1)
	go func() { copied <- drain(pr, mw) }()
	exited := make(chan struct{})
	go func() {
		waitExited(pid)
		close(exited)
	}()

	var timeout <-chan time.Time
	if s.job.Timeout > 0 {
		t := time.NewTimer(s.job.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	timedOut := false
	select {
	case <-exited:
	case <-ctx.Done():
		killGroup(pid)
		<-exited
	case <-timeout:
		timedOut = true
		killGroup(pid)
		<-exited
	}
	// Whatever the stage left running in its group goes too. The leader is
	// not reaped yet, so the group's id cannot belong to anyone else.
	killGroup(pid)
	werr := cmd.Wait()

	pr.SetReadDeadline(time.Now().Add(drainTimeout))
	cerr := <-copied
	if errors.Is(cerr, os.ErrDeadlineExceeded) {
		fmt.Fprintf(mw, "\nmc: stopped reading the output of a process that outlived the stage\n")
		cerr = nil
	}
	if cerr = closeLog(mw, logf, cerr); cerr != nil {
		return 0, nil, cerr
	}

	switch {
	case ctx.Err() != nil && !timedOut:
		return 0, nil, ctx.Err()
	case timedOut:
		return -1, fmt.Errorf("timed out after %s", graph.FormatTimeout(s.job.Timeout)), nil
	}
	var exitErr *osexec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return 0, nil, fmt.Errorf("waiting for the stage: %w", werr)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		code, runErr = signalFailure(ws.Signal())
	} else {
		code, runErr = exitFailure(ws.ExitStatus())
	}
	return code, runErr, nil
}

// signalFailure and exitFailure are the exit code and failure of a stage
// whose shell was killed by sig, or exited with code.
func signalFailure(sig syscall.Signal) (int, error) {
	return 128 + int(sig), fmt.Errorf("killed by signal %d (%v)", int(sig), sig)
}

func exitFailure(code int) (int, error) {
	if code != 0 {
		return code, fmt.Errorf("exit status %d", code)
	}
	return 0, nil
}

// openLog starts the stage's log and returns it with the writer the
// stage's output goes through: secrets masked, to the log and Job.Log. A
// kept sandbox keeps its log as a file.
func (s *stage) openLog() (*stageLog, io.Writer, error) {
	logf := &stageLog{path: s.sb.log, limit: logSpill}
	if s.l.opts.KeepSandbox {
		logf.limit = -1
		if _, err := logf.Write(nil); err != nil {
			return nil, nil, fmt.Errorf("creating the log: %w", err)
		}
	}
	s.logf = logf
	var sink io.Writer = logf
	if s.job.Log != nil {
		sink = io.MultiWriter(logf, &liveWriter{w: s.job.Log})
	}
	return logf, newMaskWriter(sink, s.job.Secrets), nil
}

// closeLog flushes what the mask holds back and closes the log file,
// unless copying the output failed already (err).
func closeLog(mw io.Writer, logf *stageLog, err error) error {
	if m, ok := mw.(*maskWriter); ok && err == nil {
		err = m.Flush()
	}
	if err == nil {
		err = logf.Close()
	}
	if err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	return nil
}

// drain copies r to w until r ends. It keeps reading after w fails, so
// that a stage is never blocked on a full pipe; the first error is returned.
func drain(r io.Reader, w io.Writer) error {
	buf := make([]byte, 32<<10)
	var werr error
	for {
		n, err := r.Read(buf)
		if n > 0 && werr == nil {
			_, werr = w.Write(buf[:n])
		}
		if err != nil {
			if werr != nil {
				return werr
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// waitExited blocks until process pid has exited, without reaping it.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// killGroup kills the process group pgid: the stage's shell, everything it
// started, and under bubblewrap bwrap itself, whose PID namespace takes
// down any process that left the group.
func killGroup(pgid int) {
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// wsCover returns the arguments hiding the workspace of job (found from an
// input's Source) when a directory bound into the sandbox holds it.
func (l *Local) wsCover(job *sched.Job) []string {
	for _, in := range job.Inputs {
		if in.Source == "" {
			continue
		}
		suffix := string(filepath.Separator) + filepath.FromSlash(in.Path)
		root, ok := strings.CutSuffix(in.Source, suffix)
		if !ok || root == "" {
			return nil
		}
		if v, ok := l.covers.Load(root); ok {
			return v.([]string)
		}
		c := l.root.cover(root)
		l.covers.Store(root, c)
		return c
	}
	return nil
}
