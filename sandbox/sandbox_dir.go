package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mc-build/mc/sched"
)

// sandboxDirs is the on-disk layout of one job's sandbox.
type sandboxDirs struct {
	dir  string // the sandbox itself, removed afterwards
	ws   string // the workspace root as the stage sees it
	home string // an empty HOME
	tmp  string // /tmp under bubblewrap
	log  string // the stage's log, written while it runs
}

// newSandbox creates a fresh sandbox under parent, named prefix*. tmp is
// only needed under bubblewrap; without it the stage uses the host's /tmp.
func newSandbox(parent, prefix string, tmp bool) (*sandboxDirs, error) {
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("creating a sandbox: %w", err)
	}
	sb := &sandboxDirs{
		dir:  dir,
		ws:   filepath.Join(dir, "ws"),
		home: filepath.Join(dir, "home"),
		tmp:  filepath.Join(dir, "tmp"),
		log:  filepath.Join(dir, "log"),
	}
	dirs := []string{sb.ws, sb.home}
	if tmp {
		dirs = append(dirs, sb.tmp)
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			removeAll(dir)
			return nil, fmt.Errorf("creating a sandbox: %w", err)
		}
	}
	return sb, nil
}

// removeAll removes a sandbox. A stage may have left directories it made
// read-only, which stop the removal for a non-root user: those are made
// writable (directories only: files may be hard links to store blobs,
// whose mode must not change) and the removal retried.
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// checkJobPaths rejects paths that would reach outside the sandbox.
func checkJobPaths(job *sched.Job) error {
	if job.Pkg != "" && !isLocalSlash(job.Pkg) {
		return fmt.Errorf("invalid package path %q", job.Pkg)
	}
	for _, in := range job.Inputs {
		if !isLocalSlash(in.Path) {
			return fmt.Errorf("invalid input path %q", in.Path)
		}
	}
	for _, o := range job.Outs {
		if !isLocalSlash(strings.TrimSuffix(o, "/")) {
			return fmt.Errorf("invalid output path %q", o)
		}
	}
	for env, name := range job.CacheMounts {
		if env == "" || strings.ContainsAny(env, "=\x00") {
			return fmt.Errorf("invalid cache mount variable %q", env)
		}
		if !isLocalSlash(name) || strings.Contains(name, "/") {
			return fmt.Errorf("invalid cache mount name %q: want one path element", name)
		}
	}
	return nil
}

// isLocalSlash reports whether p is a clean, relative, slash-separated path
// that stays inside its root.
func isLocalSlash(p string) bool {
	return p != "" && path.Clean(p) == p && filepath.IsLocal(filepath.FromSlash(p))
}

// stageError marks a failure of the stage itself (reported in Result.Err)
// found while preparing or checking it, as opposed to an infrastructure
// failure.
type stageError struct{ err error }

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stageErrorf(format string, args ...any) error {
	return &stageError{fmt.Errorf(format, args...)}
}

func isStageError(err error) bool {
	var se *stageError
	return errors.As(err, &se)
}
