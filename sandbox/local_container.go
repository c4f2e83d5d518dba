package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sandbox/runc"
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
	// With PrivateNetwork a container with network = True joins a private
	// stage network of its own (stage_net.go), never the host's.
	snet, err := s.l.privateNet(s.job.Network, true)
	if err != nil {
		return 0, nil, err
	}
	defer snet.close()
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
		NetNS:   snet.nsPath(),
	}
	for _, m := range mounts {
		spec.Mounts = append(spec.Mounts, runc.Mount{Source: m.host, Dest: m.inside})
	}
	if err := s.giveToContainer(rt, mounts); err != nil {
		return 0, nil, err
	}

	rctx := ctx
	if s.job.Timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, s.job.Timeout)
		defer cancel()
	}
	code, rerr := rt.Run(rctx, spec, filepath.Join(s.l.opts.SandboxDir, runcStateDir), mw)
	if err := s.takeOutputsBack(); err != nil {
		return 0, nil, err
	}
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

// giveToContainer gives the directories mc made for the stage (the
// workspace's, HOME, /tmp, its cache mounts) to the host ids that are
// root in the container's user namespace: owned by mc they are nobody's
// in there, and the stage could not write to them. The files in them,
// the inputs (links to the store's blobs), stay mc's: read-only to the
// stage whatever it does. Nothing to do when runc runs rootless, as mc's
// own user.
func (s *stage) giveToContainer(rt *runc.Runtime, mounts []cacheMount) error {
	uid, gid, err := rt.HostRoot()
	if err != nil {
		return err
	}
	if uid == os.Geteuid() {
		return nil
	}
	dirs := []string{s.sb.home, s.sb.tmp}
	for rel := range s.made {
		dirs = append(dirs, filepath.Join(s.sb.ws, filepath.FromSlash(rel)))
	}
	for _, d := range dirs {
		if err := os.Lchown(d, uid, gid); err != nil {
			return fmt.Errorf("giving %s to the container: %w", d, err)
		}
	}
	for _, m := range mounts {
		if err := giveTree(m.host, uid, gid); err != nil {
			return fmt.Errorf("giving the cache mount %s to the container: %w", m.host, err)
		}
	}
	return nil
}

// giveTree gives the cache mount directory dir and everything in it to
// uid and gid, unless dir is theirs already: a cache mount filled by
// stages run before they had a user namespace is given over whole, once
// (dir last, so that its owner says the whole was done).
func giveTree(dir string, uid, gid int) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return err
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return err
	}
	return os.Lchown(dir, uid, gid)
}

// takeOutputsBack gives the stage's outputs, made by the container's
// root, back to mc before they are stored: a blob adopted with the
// container's owner could be changed by the next stage that has it as an
// input (they are the same ids in every container).
func (s *stage) takeOutputsBack() error {
	uid, gid := os.Geteuid(), os.Getegid()
	for _, o := range s.job.Outs {
		root := filepath.Join(s.sb.ws, filepath.FromSlash(strings.TrimSuffix(o, "/")))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != uid || int(st.Gid) != gid) {
				return os.Lchown(p, uid, gid)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("output %s: %w", o, err)
		}
	}
	return nil
}
