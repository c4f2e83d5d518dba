package pipeline

import (
	"context"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/exec"
	"github.com/mc-build/mc/graph"
)

// DefaultHistory is how many entries of each stage's run history the
// store keeps (--history): an entry is written when a stage's key or
// outcome changes, so this is the last ten changes, not the last ten builds.
const DefaultHistory = 10

// RecordHistory stores, in one transaction, every stage of the build that
// was built, cached or failed with its key and key preimage (cas.RecordRun),
// keeping keep entries of each stage's history. command names the run:
// "build //...".
func (p *Pipeline) RecordHistory(ctx context.Context, command string, keep int, ag *graph.ActionGraph, rep *exec.Report) (*cas.RecordedRun, error) {
	s := p.s
	stages := make([]cas.StageRecord, 0, len(ag.Actions))
	for _, a := range ag.Actions {
		o := rep.Outcomes[a]
		if o == nil || o.Parts == nil {
			continue // skipped, or failed before its key was known
		}
		parts := o.Parts
		r := cas.StageRecord{Label: a.Label().String(), Key: o.Key,
			Parts: func() ([]byte, error) { return parts.JSON(), nil }}
		switch o.Status {
		case exec.StatusBuilt:
			r.Status, r.Time = cas.StageBuilt, o.End
			if o.Result != nil {
				r.Outputs = o.Result.Outputs
			}
		case exec.StatusCached:
			r.Status = cas.StageCached
		case exec.StatusFailed:
			r.Status, r.Time = cas.StageFailed, o.End
		default:
			continue
		}
		stages = append(stages, r)
	}
	if err := s.SeedHistory(ctx); err != nil {
		return nil, err
	}
	rec, err := s.DB.RecordRun(ctx, s.Scope, command, keep, stages)
	if err != nil || rec == nil {
		return rec, err
	}
	// Exact counts for `mc cache stats` (a null build has no entries).
	counts := cas.RunCounts{Built: rep.Built, Cached: rep.Cached, Failed: rep.Failed}
	if err := s.DB.SetRunCounts(ctx, rec.ID, counts); err != nil {
		return rec, err
	}
	return rec, nil
}
