package main

import (
	"context"

	"github.com/mc-build/mc/starfmt"
)

// runFmt is `mc fmt [--check] [FILE|DIR|PATTERN]...`: BUILD.mc,
// WORKSPACE.mc and .star files formatted as buildifier formats BUILD files.
func runFmt(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fmt", "[--check] [FILE|DIR|PATTERN]...")
	check := fs.Bool("check", false, "list the files that are not formatted and exit 1; change nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return starfmt.Run(ctx, e.dir, e.stdout, e.stderr, fs.Args(), *check)
}
