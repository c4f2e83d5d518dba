package exec

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/mc-build/mc/exec/runc"
	"github.com/mc-build/mc/graph"
)

// defaultImagePath is the PATH of a stage in an image whose config sets
// none (what container runtimes use).
const defaultImagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runcStateDir is where, under SandboxDir, runc keeps its state and the
// bundles of running containers.
const runcStateDir = "runc"

// execContainer runs the job's commands in a container over its image's
// filesystem, with runc. The container sees the image read-only, and what
// a stage under bubblewrap sees of mc: the sandbox's workspace at /mc/ws,
// an empty HOME at /mc/home, its cache mounts under /mc/cache, a private
// /tmp, and no network unless the stage asks for it. It returns like exec.
func (s *stage) execContainer(ctx context.Context, mounts []cacheMount) (code int, runErr, err error) {
	logf, mw, err := s.openLog()
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	rt, err := s.l.runtime()
	if err != nil {
		return 0, nil, err
	}
	// The image's problems are the stage's failure; the log is then empty.
	failed := func(err error) (int, error, error) {
		if isStageError(err) {
			return -1, err, closeLog(mw, logf, nil)
		}
		return 0, nil, err
	}
	// runnernet: no private network for containers yet; never the host's instead.
	if err := s.l.refuseContainerNet(s.job); err != nil {
		return failed(err)
	}
	layout := ""
	if s.job.ImageLayout != "" {
		layout = filepath.Join(s.sb.ws, filepath.FromSlash(s.job.ImageLayout))
	} else if layout, err = s.l.pulled(ctx, s.job.Image); err != nil {
		return failed(err)
	}
	rootfs, cfg, err := s.l.rootfs(ctx, layout)
	if err != nil {
		return failed(err)
	}
	spec := runc.Spec{
		ID:     filepath.Base(s.sb.dir),
		Rootfs: rootfs,
		Args:   shellArgs(s.job.Cmds),
		Env:    containerEnv(cfg.Env, s.env(mounts)),
		Cwd:    path.Join(sandboxWS, s.job.Pkg),
		Mounts: []runc.Mount{
			{Source: s.sb.ws, Dest: sandboxWS},
			{Source: s.sb.home, Dest: sandboxHome},
			{Source: s.sb.tmp, Dest: "/tmp"},
		},
		Network: s.job.Network,
	}
	for _, m := range mounts {
		spec.Mounts = append(spec.Mounts, runc.Mount{Source: m.host, Dest: m.inside})
	}

	rctx := ctx
	if s.job.Timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, s.job.Timeout)
		defer cancel()
	}
	code, rerr := rt.Run(rctx, spec, filepath.Join(s.l.opts.SandboxDir, runcStateDir), mw)
	cerr := closeLog(mw, logf, nil)
	switch {
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case rerr != nil && errors.Is(rctx.Err(), context.DeadlineExceeded):
		return -1, fmt.Errorf("timed out after %s", graph.FormatTimeout(s.job.Timeout)), cerr
	case rerr != nil:
		return 0, nil, fmt.Errorf("running the container: %w", rerr)
	case cerr != nil:
		return 0, nil, cerr
	}
	code, runErr = exitFailure(code)
	return code, runErr, nil
}

// containerEnv is a container's environment: the image's (its PATH above
// all), then the stage's own without the host's PATH, later entries
// replacing earlier ones of the same name. A variable appears once: which
// of two a program sees is otherwise up to its C library.
func containerEnv(image, stage []string) []string {
	var env []string
	at := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			env[i] = kv
			return
		}
		at[k] = len(env)
		env = append(env, kv)
	}
	set("PATH=" + defaultImagePath)
	for _, kv := range image {
		set(kv)
	}
	for i, kv := range stage {
		if i == 0 && strings.HasPrefix(kv, "PATH=") {
			continue // the host's, which means nothing in the image
		}
		set(kv)
	}
	return env
}
