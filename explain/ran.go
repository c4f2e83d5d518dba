package explain

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/sched"
)

// Reason is why one stage ran, for `mc build --explain`.
type Reason struct {
	Label, Key, Reason string
}

// KeyPartsReader finds the stored key preimage of a history entry
// (session.HistoryParts: the session's tier, then the trusted one).
type KeyPartsReader interface {
	KeyParts(ctx context.Context, key cas.Digest) ([]byte, error)
}

// Ran explains every stage of rep that ran (built or failed), from the
// entry its label had before this run (rec.Previous) and the preimage
// stored for that entry's key. noCache is whether the build ignored the
// cache (--nocache).
func Ran(ctx context.Context, db KeyPartsReader, ag *graph.ActionGraph, rep *sched.Report, rec *history.RecordedRun, noCache bool) []Reason {
	var out []Reason
	for _, a := range ag.Actions {
		o := rep.Outcomes[a]
		if o == nil || (o.Status != sched.StatusBuilt && o.Status != sched.StatusFailed) || o.Parts == nil {
			continue
		}
		label := a.Label().String()
		out = append(out, Reason{Label: label, Key: o.Key.String(), Reason: whyRan(ctx, db, a, o, rec, noCache)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

func whyRan(ctx context.Context, db KeyPartsReader, a *graph.Action, o *sched.Outcome, rec *history.RecordedRun, noCache bool) string {
	t := a.Target
	switch {
	case t.Deploy:
		return "deploy stages always run"
	case !t.Cache:
		return "cache = False"
	case noCache:
		return "--nocache"
	case rec == nil:
		return "ran (its run history could not be read)"
	}
	prev := rec.Previous[a.Label().String()]
	if prev == nil {
		return "no previous run"
	}
	if prev.Key == o.Key {
		if prev.Status == history.StageFailed {
			return fmt.Sprintf("ran because run %d failed with the same key (failures are not cached)", prev.Run)
		}
		return fmt.Sprintf("ran because the result of run %d is no longer in the cache", prev.Run)
	}
	b, err := db.KeyParts(ctx, prev.Key)
	var parts graph.KeyParts
	if err == nil && b != nil {
		err = json.Unmarshal(b, &parts)
	}
	if err != nil || b == nil {
		return fmt.Sprintf("ran because its key changed since run %d (that run's key parts are not stored)", prev.Run)
	}
	return "ran because " + summarizeChanges(diffParts(&parts, o.Parts, inputOwner(a)))
}
