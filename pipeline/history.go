package pipeline

import (
	"context"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/sched"
)

// DefaultHistory is how many entries of each stage's run history the
// store keeps (--history): an entry is written when a stage's key or
// outcome changes, so this is the last ten changes, not the last ten builds.
const DefaultHistory = 10

// RecordHistory stores, in one transaction, every stage of the build that
// was built, cached or failed with its key and key preimage (history.RecordRun),
// keeping keep entries of each stage's history. command names the run:
// "build //...".
func (p *Pipeline) RecordHistory(ctx context.Context, command string, keep int, ag *graph.ActionGraph, rep *sched.Report) (*history.RecordedRun, error) {
	s := p.s
	stages := make([]history.StageRecord, 0, len(ag.Actions))
	for _, a := range ag.Actions {
		o := rep.Outcomes[a]
		if o == nil || o.Parts == nil {
			continue // skipped, or failed before its key was known
		}
		parts := o.Parts
		r := history.StageRecord{Label: a.Label().String(), Key: o.Key,
			Parts: func() ([]byte, error) { return parts.JSON(), nil }}
		switch o.Status {
		case sched.StatusBuilt:
			r.Status, r.Time = history.StageBuilt, o.End
			if o.Result != nil {
				r.Outputs = o.Result.Outputs
			}
		case sched.StatusCached:
			r.Status = history.StageCached
		case sched.StatusFailed:
			r.Status, r.Time = history.StageFailed, o.End
		default:
			continue
		}
		stages = append(stages, r)
	}
	if err := s.SeedHistory(ctx); err != nil {
		return nil, err
	}
	rec, err := history.RecordRun(ctx, s.DB, s.Scope, command, keep, stages)
	if err != nil || rec == nil {
		return rec, err
	}
	// Exact counts for `mc cache stats` (a null build has no entries).
	counts := history.RunCounts{Built: rep.Built, Cached: rep.Cached, Failed: rep.Failed}
	if err := history.SetRunCounts(ctx, s.DB, rec.ID, counts); err != nil {
		return rec, err
	}
	return rec, nil
}
