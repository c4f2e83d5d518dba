// Package scaffold starts a workspace: the WORKSPACE.mc (and a first
// BUILD.mc) that `mc init` writes.
package scaffold

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/starfmt"
)

var nonName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Init writes WORKSPACE.mc in dir for a workspace named name (made a valid
// name), and a first BUILD.mc when there is none, saying what it wrote on
// stdout. It refuses to overwrite anything, and to start a workspace inside
// another unless force.
func Init(dir, name string, force bool, stdout io.Writer) error {
	name = strings.Trim(nonName.ReplaceAllString(name, "-"), "-")
	if name == "" {
		name = "workspace"
	}
	wsPath := filepath.Join(dir, "WORKSPACE.mc")
	if _, err := os.Stat(wsPath); err == nil {
		return errkind.Usagef("%s already exists", wsPath)
	} else if !errors.Is(err, os.ErrNotExist) {
		return errkind.Infra(err)
	}
	// A workspace inside another silently takes its directory away from
	// the outer one (whose //... no longer reaches it).
	if outer, err := lang.FindWorkspace(filepath.Dir(dir)); err == nil && !force {
		return errkind.Usagef("%s is inside the workspace %s: a nested workspace would take this directory's packages from it; run mc init --force to start one anyway", dir, outer)
	}
	ws, err := starfmt.Format(wsPath, fmt.Appendf(nil, "workspace(\n    name = %q,\n    ignore = [\"node_modules\"],\n)\n", name))
	if err != nil {
		return err // a bug: the name was sanitized above
	}
	if err := os.WriteFile(wsPath, ws, 0o644); err != nil {
		return errkind.Infra(err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", wsPath)
	buildPath := filepath.Join(dir, "BUILD.mc")
	if _, err := os.Stat(buildPath); errors.Is(err, os.ErrNotExist) {
		// mc init writes what mc fmt would (its formatter orders arguments).
		b, err := starfmt.Format(buildPath, []byte(`stage(
    name = "hello",
    cmd = "echo hello from mc > out/hello.txt",
    outs = ["out/hello.txt"],
)
`))
		if err != nil {
			return err
		}
		if err := os.WriteFile(buildPath, b, 0o644); err != nil {
			return errkind.Infra(err)
		}
		fmt.Fprintf(stdout, "wrote %s\nTry: mc build //:hello\n", buildPath)
	}
	return nil
}
