package main

import (
	"context"

	"github.com/mc-build/mc/explain"
	"github.com/mc-build/mc/pipeline"
)

// runExplain is `mc explain LABEL`: the parts of a stage's current key,
// computed without running anything, and what changed since the last run
// of the stage recorded in the store.
func runExplain(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "explain", "[FLAGS] LABEL")
	cacheDir := fs.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("explain: give exactly one stage label (e.g. //app:build)")
	}
	s, err := openSession(ctx, e, *cacheDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	return explain.Stage(ctx, s, e.stdout, fs.Arg(0), pipeline.ResolveImage)
}
