package main

import (
	"context"

	"github.com/mc-build/mc/stagelog"
)

// runLog is `mc log LABEL` (the log of the stage's last run) and
// `mc log --failed` (those of the last build's failures). A built or cached
// stage's log is the one stored with its result; a failed stage's is the
// one the build stored when it failed (failures.go).
func runLog(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "log", "[FLAGS] LABEL | --failed")
	cacheDir := fs.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	failed := fs.Bool("failed", false, "the logs of every stage that failed in the last build of this workspace")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *failed && fs.NArg() > 0:
		return usagef("log: give a LABEL or --failed, not both")
	case !*failed && fs.NArg() != 1:
		return usagef("log: give one stage label (e.g. //app:server), or --failed")
	}
	s, err := openSession(ctx, e, *cacheDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	if *failed {
		return stagelog.ShowFailed(ctx, s, e.stdout, e.stderr)
	}
	return stagelog.Show(ctx, s, e.stdout, e.stderr, fs.Arg(0))
}
