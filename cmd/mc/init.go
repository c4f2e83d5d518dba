package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/starfmt"
)

var nonName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// runInit writes WORKSPACE.mc (and a first BUILD.mc when there is none) in
// the current directory. It refuses to overwrite anything.
func runInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "init", "[--force] [NAME]")
	force := fs.Bool("force", false, "start a workspace even inside another one (its packages hide from the outer one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("init: one NAME at most")
	}
	name := filepath.Base(e.dir)
	if fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	name = strings.Trim(nonName.ReplaceAllString(name, "-"), "-")
	if name == "" {
		name = "workspace"
	}
	wsPath := filepath.Join(e.dir, "WORKSPACE.mc")
	if _, err := os.Stat(wsPath); err == nil {
		return usagef("%s already exists", wsPath)
	} else if !errors.Is(err, os.ErrNotExist) {
		return errkind.Infra(err)
	}
	// A workspace inside another silently takes its directory away from
	// the outer one (whose //... no longer reaches it).
	if outer, err := lang.FindWorkspace(filepath.Dir(e.dir)); err == nil && !*force {
		return usagef("%s is inside the workspace %s: a nested workspace would take this directory's packages from it; run mc init --force to start one anyway", e.dir, outer)
	}
	ws, err := starfmt.Format(wsPath, fmt.Appendf(nil, "workspace(\n    name = %q,\n    ignore = [\"node_modules\"],\n)\n", name))
	if err != nil {
		return err // a bug: the name was sanitized above
	}
	if err := os.WriteFile(wsPath, ws, 0o644); err != nil {
		return errkind.Infra(err)
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", wsPath)
	buildPath := filepath.Join(e.dir, "BUILD.mc")
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
		fmt.Fprintf(e.stdout, "wrote %s\nTry: mc build //:hello\n", buildPath)
	}
	return nil
}
