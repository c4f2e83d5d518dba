package stagelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/session"
)

// Show is `mc log LABEL`: the log of the stage's last run in the workspace
// of s, written to stdout (what it is, to stderr). A built or cached
// stage's log is the one stored with its result; a failed stage's is the
// one the build stored when it failed (Store).
func Show(ctx context.Context, s *session.Session, stdout, stderr io.Writer, arg string) error {
	e := out{stdout, stderr}
	p, err := graph.ParsePattern(arg, s.RelDir)
	if err != nil {
		return err
	}
	if p.Kind != graph.PatternTarget {
		return errkind.Usagef("log: %s is a pattern: give one stage label", arg)
	}
	label := p.Label.String()
	hist, err := history.StageHistory(ctx, s.DB, s.Scope, label, 1)
	if err != nil {
		return errkind.Infra(err)
	}
	f, err := LastFailure(ctx, s.DB, s.Root, label)
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
		return errkind.Usagef("log: no recorded run of %s in this workspace (run mc build %s first)", label, arg)
	}
	h := hist[0]
	res, err := s.DB.GetAction(ctx, h.Key)
	if err != nil {
		return errkind.Infra(err)
	}
	if res == nil {
		return errkind.Usagef("log: the result of %s's last run (%s) is no longer in the cache (mc cache gc or purge removed it)", label, h.Key.Short())
	}
	when := "built"
	if h.Status == history.StageCached {
		when = "cached, built"
	}
	fmt.Fprintf(e.stderr, "mc: %s %s at %s (key %s)\n", label, when, h.Time.Local().Format("2006-01-02 15:04:05"), h.Key.Short())
	return printBlob(e, s, res.Log, label)
}

// out are the streams Show writes to.
type out struct{ stdout, stderr io.Writer }

func printBlob(e out, s *session.Session, d cas.Digest, label string) error {
	if d.IsZero() || d == cas.Empty {
		fmt.Fprintln(e.stderr, "(no output)")
		return nil
	}
	b, err := s.Store.ReadBytes(d)
	if errors.Is(err, os.ErrNotExist) {
		return errkind.Usagef("log: the log of %s is no longer in the cache (mc cache gc removed it)", label)
	}
	if err != nil {
		return errkind.Infra(fmt.Errorf("reading the log of %s: %w", label, err))
	}
	_, err = e.stdout.Write(b)
	return err
}

// ShowFailed is `mc log --failed`: the logs of the stages that failed in
// the last build of the workspace of s.
func ShowFailed(ctx context.Context, s *session.Session, stdout, stderr io.Writer) error {
	e := out{stdout, stderr}
	run, err := LastRun(ctx, s.DB, s.Root)
	if err != nil {
		return err
	}
	if run == nil {
		return errkind.Usagef("log --failed: no build of this workspace recorded yet")
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
