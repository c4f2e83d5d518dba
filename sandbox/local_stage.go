package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/sched"
)

// stage is one job being run by Local.
type stage struct {
	l        *Local
	job      *sched.Job
	sb       *sandboxDirs
	isolated bool
	// w is the sandbox worker running the stage; nil when the stage has a
	// sandbox of its own.
	w      *worker
	linked []linkedInput
	made   map[string]bool // workspace directories known to exist ("." too)
	logf   *stageLog
}

// cacheMount is one cache_mounts directory bound into a stage.
type cacheMount struct {
	env    string
	host   string // MountsDir/<name>
	inside string // where the stage sees it
}

// run prepares the sandbox, runs the commands and collects the result.
// A stage failure is returned in the Result; the error is for the
// infrastructure (and cancellation).
func (s *stage) run(ctx context.Context) (*sched.Result, error) {
	var phases []sched.Phase
	mark := func(name string, start time.Time) {
		phases = append(phases, sched.Phase{Name: name, Start: start, End: time.Now()})
	}
	t0 := time.Now()
	if err := s.prepare(); err != nil {
		if isStageError(err) {
			return &sched.Result{ExitCode: -1, Err: err}, nil
		}
		return nil, err
	}
	mark("restoring", t0)
	mounts, err := s.cacheMounts()
	if err != nil {
		return nil, err
	}
	run := s.exec
	switch {
	case s.w != nil:
		run = s.execWorker
	case s.job.Build != nil:
		run = s.buildImage // image_build.go
	case s.job.Image != "":
		run = s.execContainer // local_container.go
	}
	t1 := time.Now()
	code, runErr, err := run(ctx, mounts)
	mark("running", t1)
	t2 := time.Now()
	// Checked even after a failure or a kill: a modified blob must leave
	// the store whatever became of the stage.
	modErr := s.checkInputs()
	if err == nil && modErr != nil && !isStageError(modErr) {
		err = modErr
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res := &sched.Result{ExitCode: code, Err: runErr}
	defer func() { mark("storing", t2); res.Phases = phases }()
	if res.Log, err = s.storeLog(); err != nil {
		return nil, err
	}
	if modErr != nil {
		res.Err = modErr
		return res, nil
	}
	if res.Err != nil {
		return res, nil
	}
	outs, err := s.collectOutputs()
	if isStageError(err) {
		res.Err = err
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Outputs = outs
	return res, nil
}

// prepare materializes the inputs and creates the directories the stage
// expects: its package directory and the parents of its outputs.
func (s *stage) prepare() error {
	st := s.l.opts.Store
	if s.made == nil {
		s.made = map[string]bool{".": true}
	}
	for _, in := range s.job.Inputs {
		dst := filepath.Join(s.sb.ws, filepath.FromSlash(in.Path))
		if err := s.mkdirs(path.Dir(in.Path)); err != nil {
			return err
		}
		if in.Source != "" {
			// The blob is missing when the stat cache digested a source
			// that no stage used before: store it, checking that the file
			// still holds what the key was computed from.
			if err := st.PutFileExpect(in.Source, in.Digest); err != nil {
				if errors.Is(err, cas.ErrCorrupt) {
					return stageErrorf("source %s changed during the build; run mc again", in.Path)
				}
				return fmt.Errorf("input %s: %w", in.Path, err)
			}
		}
		if in.IsTree {
			if err := st.MaterializeTree(in.Digest, dst, true); err != nil {
				return fmt.Errorf("input %s: %w", in.Path, err)
			}
			if err := s.recordTree(in.Path, dst, in.Digest); err != nil {
				return err
			}
			continue
		}
		if err := s.materialize(in, dst); err != nil {
			return fmt.Errorf("input %s: %w", in.Path, err)
		}
		if !in.Exec {
			if err := s.record(in.Path, dst, in.Digest); err != nil {
				return err
			}
		}
	}
	if err := s.mkdirs(s.job.Pkg); err != nil {
		return err
	}
	for _, o := range s.job.Outs {
		if err := s.mkdirs(path.Dir(strings.TrimSuffix(o, "/"))); err != nil {
			return err
		}
	}
	return nil
}

// mkdirs creates the workspace directory rel (slash-separated) and its
// parents, unless they were made already (or kept by the worker: Mkdir
// then finds them).
func (s *stage) mkdirs(rel string) error {
	if rel == "" || s.made[rel] {
		return nil
	}
	if err := s.mkdirs(path.Dir(rel)); err != nil {
		return err
	}
	p := filepath.Join(s.sb.ws, filepath.FromSlash(rel))
	err := os.Mkdir(p, 0o755)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", rel, err)
	}
	// One found there may be a directory input's, which is mc's.
	if s.bwrapIDs() {
		if err := s.l.own(p); err != nil {
			return err
		}
	}
	s.made[rel] = true
	return nil
}

// materialize places one file input. A read-only input is linked straight
// to its blob: the sandbox is fresh, nothing is at dst to replace
// atomically. Anything unusual (a missing blob, a filesystem refusing
// links, a path taken) is left to the store's Materialize. link(2) fails
// with ENOENT when the blob is replaced at that instant by a concurrent
// writer of the same content (rename over it): that is retried.
func (s *stage) materialize(in sched.Input, dst string) error {
	st := s.l.opts.Store
	if !in.Exec {
		// Only a blob known to hold its digest's bytes is linked in (a
		// stat, and a hash only if it changed since it was last found
		// good); a bad one is removed, and the scheduler runs its
		// producer again.
		if err := st.CheckUse(in.Digest); err != nil {
			return err
		}
		if os.Link(st.Path(in.Digest), dst) == nil {
			return nil
		}
	}
	var err error
	for try := 0; try < 3; try++ {
		err = st.Materialize(in.Digest, dst, in.Exec, true)
		if err == nil || errors.Is(err, cas.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) || !st.Has(in.Digest) {
			return err
		}
	}
	return err
}

// bwrapIDs reports whether the stage runs under bubblewrap, as the stages'
// ids (confine), which must own what it writes. A stage in an image runs
// in runc, as it always did (local_container.go).
func (s *stage) bwrapIDs() bool { return s.isolated && s.job.Image == "" }

// cacheMounts creates (once, then keeps) the directories of the job's
// cache_mounts.
func (s *stage) cacheMounts() ([]cacheMount, error) {
	if len(s.job.CacheMounts) == 0 {
		return nil, nil
	}
	ms := make([]cacheMount, 0, len(s.job.CacheMounts))
	for env, name := range s.job.CacheMounts {
		if err := s.l.seedFromTrusted(name); err != nil {
			return nil, err
		}
		host := filepath.Join(s.l.opts.MountsDir, name)
		mkdir := func(p string) error { return os.MkdirAll(p, 0o755) }
		if s.bwrapIDs() {
			mkdir = s.l.ownMount
		}
		if err := mkdir(host); err != nil {
			return nil, fmt.Errorf("cache mount %s: %w", name, err)
		}
		inside := host
		if s.isolated {
			inside = sandboxCache + "/" + name
		}
		ms = append(ms, cacheMount{env: env, host: host, inside: inside})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].env < ms[j].env })
	return ms, nil
}

// env is the stage's whole environment: nothing of mc's own leaks in.
// Later entries win (os/exec keeps the last of duplicates), so env may
// override PATH and HOME but not the MC_ variables.
func (s *stage) env(mounts []cacheMount) []string {
	ws, home := s.sb.ws, s.sb.home
	if s.isolated {
		ws, home = sandboxWS, sandboxHome
	}
	env := make([]string, 0, 5+len(s.job.Env)+len(s.job.Secrets)+len(mounts))
	env = append(env, "PATH="+s.l.path, "HOME="+home)
	env = appendSorted(env, s.job.Env)
	env = appendSorted(env, s.job.Secrets)
	for _, m := range mounts {
		env = append(env, m.env+"="+m.inside)
	}
	return append(env,
		"MC_WORKSPACE="+ws,
		"MC_PACKAGE="+s.job.Pkg,
		"MC_TARGET="+s.job.Label.String(),
	)
}

func appendSorted(env []string, m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+m[k])
	}
	return env
}

// shellArgs runs cmds in order with /bin/sh, stopping at the first failure
// with its status, all in one process tree (one sandbox start per stage).
// One command runs directly; several each get their own shell, so that one
// command's `exit` or `set -e` does not leak into the next.
func shellArgs(cmds []string) []string {
	switch len(cmds) {
	case 0:
		return []string{"/bin/sh", "-c", ":"}
	case 1:
		return []string{"/bin/sh", "-c", cmds[0]}
	}
	script := `for c in "$@"; do /bin/sh -c "$c" || exit; done`
	return append([]string{"/bin/sh", "-c", script, "mc"}, cmds...)
}

// storeLog puts the finished log into the store.
func (s *stage) storeLog() (cas.Digest, error) {
	return s.logf.store(s.l.opts.Store, !s.l.opts.KeepSandbox)
}

// liveWriter passes the log on to Job.Log, ignoring its errors: a broken
// display must not fail the stage or stop its log being stored.
type liveWriter struct {
	w      io.Writer
	failed bool
}

func (w *liveWriter) Write(p []byte) (int, error) {
	if !w.failed {
		if _, err := w.w.Write(p); err != nil {
			w.failed = true
		}
	}
	return len(p), nil
}
