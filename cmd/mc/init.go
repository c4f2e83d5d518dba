package main

import (
	"context"
	"path/filepath"

	"github.com/mc-build/mc/scaffold"
)

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
	return scaffold.Init(e.dir, name, *force, e.stdout)
}
