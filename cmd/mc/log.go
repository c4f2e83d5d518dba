package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
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
	defer s.close(ctx)
	if *failed {
		return printFailedRun(ctx, e, s)
	}
	arg := fs.Arg(0)
	p, err := graph.ParsePattern(arg, s.relDir)
	if err != nil {
		return err
	}
	if p.Kind != graph.PatternTarget {
		return usagef("log: %s is a pattern: give one stage label", arg)
	}
	label := p.Label.String()
	hist, err := history.StageHistory(ctx, s.db, s.root, label, 1)
	if err != nil {
		return &infraError{err}
	}
	f, err := lastFailure(ctx, s, label)
	if err != nil {
		return err
	}
	// The newest of the two: the history's entry (built, cached or failed
	// with a known key) and the stored failure (also failures before the
	// key was known, such as a missing input).
	if f != nil && (len(hist) == 0 || !f.Time.Before(hist[0].Time) || hist[0].Status == history.StageFailed) {
		fmt.Fprintf(e.stderr, "mc: %s failed at %s: %s\n", label, f.Time.Local().Format("2006-01-02 15:04:05"), f.Error)
		return printBlob(e, s, f.Log, label)
	}
	if len(hist) == 0 {
		return usagef("log: no recorded run of %s in this workspace (run mc build %s first)", label, arg)
	}
	h := hist[0]
	res, err := s.db.GetAction(ctx, h.Key)
	if err != nil {
		return &infraError{err}
	}
	if res == nil {
		return usagef("log: the result of %s's last run (%s) is no longer in the cache (mc cache gc or purge removed it)", label, h.Key.Short())
	}
	when := "built"
	if h.Status == history.StageCached {
		when = "cached, built"
	}
	fmt.Fprintf(e.stderr, "mc: %s %s at %s (key %s)\n", label, when, h.Time.Local().Format("2006-01-02 15:04:05"), h.Key.Short())
	return printBlob(e, s, res.Log, label)
}

// lastFailure is the stored last failure of label, or nil.
func lastFailure(ctx context.Context, s *session, label string) (*failedStage, error) {
	b, err := s.db.GetKV(ctx, kvFailedLog, s.root+"\x00"+label)
	if err != nil {
		return nil, &infraError{err}
	}
	if b == nil {
		return nil, nil
	}
	var f failedStage
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &infraError{fmt.Errorf("reading the stored failure of %s: %w", label, err)}
	}
	return &f, nil
}

func printBlob(e *env, s *session, d cas.Digest, label string) error {
	if d.IsZero() || d == cas.Empty {
		fmt.Fprintln(e.stderr, "(no output)")
		return nil
	}
	b, err := s.store.ReadBytes(d)
	if errors.Is(err, os.ErrNotExist) {
		return usagef("log: the log of %s is no longer in the cache (mc cache gc removed it)", label)
	}
	if err != nil {
		return &infraError{fmt.Errorf("reading the log of %s: %w", label, err)}
	}
	_, err = e.stdout.Write(b)
	return err
}

func printFailedRun(ctx context.Context, e *env, s *session) error {
	b, err := s.db.GetKV(ctx, kvFailedRun, s.root)
	if err != nil {
		return &infraError{err}
	}
	if b == nil {
		return usagef("log --failed: no build of this workspace recorded yet")
	}
	var run failedRun
	if err := json.Unmarshal(b, &run); err != nil {
		return &infraError{fmt.Errorf("reading the last build's failures: %w", err)}
	}
	if len(run.Stages) == 0 {
		fmt.Fprintln(e.stderr, "mc: no stage failed in the last build")
		return nil
	}
	for i, f := range run.Stages {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "==> %s: %s <==\n", f.Label, f.Error)
		if f.Cmd != "" {
			fmt.Fprintf(e.stdout, "command: %s\n", f.Cmd)
		}
		if err := printBlob(e, s, f.Log, f.Label); err != nil {
			return err
		}
	}
	return nil
}
