package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path"
	"syscall"

	"github.com/mc-build/mc/graph"
)

// errWorkerNotStarted is a worker lost before it started the stage: the
// stage can run again on another.
var errWorkerNotStarted = errors.New("the sandbox worker died before starting the stage")

// execWorker is exec for a stage run on a sandbox worker: the same log,
// results and errors, with the runner starting the shell.
func (s *stage) execWorker(ctx context.Context, mounts []cacheMount) (code int, runErr, err error) {
	logf, mw, err := s.openLog()
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	req := &runRequest{
		Cmds: s.job.Cmds,
		Env:  s.env(mounts),
		Dir:  path.Join(sandboxWS, s.job.Pkg),
	}
	r := s.w.run(ctx, req, mw, s.job.Timeout)
	var werr error
	if r.err != nil && !errors.Is(r.err, errWorkerLost) && r.err != ctx.Err() {
		werr = r.err // writing the output failed
	}
	if err := closeLog(mw, logf, werr); err != nil {
		return 0, nil, err
	}
	switch {
	case r.err == nil && !r.started && r.exit.Broken:
		// The runner refused the stage: the last one spoilt its sandbox.
		return 0, nil, errWorkerNotStarted
	case r.timedOut:
		return -1, fmt.Errorf("timed out after %s", graph.FormatTimeout(s.job.Timeout)), nil
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case errors.Is(r.err, errWorkerLost) && !r.started:
		return 0, nil, errWorkerNotStarted
	case errors.Is(r.err, errWorkerLost):
		msg := ""
		if line := s.w.stderr.line(); line != "" {
			msg = " (" + line + ")"
		}
		return -1, fmt.Errorf("the sandbox worker died while the stage ran%s", msg), nil
	case r.exit.Err != "":
		if r.exit.Broken {
			// The stage ran; only cleaning up after it failed.
			break
		}
		return 0, nil, fmt.Errorf("sandbox worker: %s", r.exit.Err)
	}
	if r.exit.Signal != 0 {
		code, runErr = signalFailure(syscall.Signal(r.exit.Signal))
	} else {
		code, runErr = exitFailure(r.exit.Code)
	}
	return code, runErr, nil
}
