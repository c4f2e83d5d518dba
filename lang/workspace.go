package lang

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File and directory names with a meaning to mc.
const (
	WorkspaceFile = "WORKSPACE.mc" // marks the workspace root
	BuildFile     = "BUILD.mc"     // marks a package
	OutDir        = "mc-out"       // outputs, at the workspace root; never a source
)

// ErrNoWorkspace means no directory from the starting one up to the file
// system root holds a WORKSPACE.mc.
var ErrNoWorkspace = errors.New("no " + WorkspaceFile + " found in this directory or any parent; run `mc init` to start a workspace here")

// FindWorkspace returns the absolute path of the nearest ancestor of dir
// (dir included) that holds a WORKSPACE.mc file.
func FindWorkspace(dir string) (root string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("finding workspace: %w", err)
	}
	for d := abs; ; {
		fi, err := os.Stat(filepath.Join(d, WorkspaceFile))
		if err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) && !isNotDir(err) {
			return "", fmt.Errorf("finding workspace: %w", err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%w (searched from %s)", ErrNoWorkspace, abs)
		}
		d = parent
	}
}
