package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/sched"
)

// defaultHistory is how many entries of each stage's run history the
// store keeps (--history): an entry is written when a stage's key or
// outcome changes, so this is the last ten changes, not the last ten builds.
const defaultHistory = 10

// recordHistory stores, in one transaction, every stage of the build that
// was built, cached or failed with its key and key preimage (history.RecordRun).
func recordHistory(ctx context.Context, s *session, command string, keep int, ag *graph.ActionGraph, rep *sched.Report) (*history.RecordedRun, error) {
	stages := make([]history.StageRecord, 0, len(ag.Actions))
	for _, a := range ag.Actions {
		o := rep.Outcomes[a]
		if o == nil || o.Parts == nil {
			continue // skipped, or failed before its key was known
		}
		parts := o.Parts
		r := history.StageRecord{Label: a.Label().String(), Key: o.Key,
			Parts: func() ([]byte, error) { return keyPartsJSON(parts), nil }}
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
	rec, err := history.RecordRun(ctx, s.db, s.root, command, keep, stages)
	if err != nil || rec == nil {
		return rec, err
	}
	// Exact counts for `mc cache stats` (a null build has no entries).
	counts := history.RunCounts{Built: rep.Built, Cached: rep.Cached, Failed: rep.Failed}
	if err := history.SetRunCounts(ctx, s.db, rec.ID, counts); err != nil {
		return rec, err
	}
	return rec, nil
}

// stageReason is why one stage ran, for `mc build --explain`.
type stageReason struct {
	label, key, reason string
}

// ranReasons explains every stage of rep that ran (built or failed), from
// the entry its label had before this run (rec.Previous) and the preimage
// stored for that entry's key.
func ranReasons(ctx context.Context, db *cas.DB, ag *graph.ActionGraph, rep *sched.Report, rec *history.RecordedRun, noCache bool) []stageReason {
	var out []stageReason
	for _, a := range ag.Actions {
		o := rep.Outcomes[a]
		if o == nil || (o.Status != sched.StatusBuilt && o.Status != sched.StatusFailed) || o.Parts == nil {
			continue
		}
		label := a.Label().String()
		out = append(out, stageReason{label: label, key: o.Key.String(), reason: whyRan(ctx, db, a, o, rec, noCache)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	return out
}

func whyRan(ctx context.Context, db *cas.DB, a *graph.Action, o *sched.Outcome, rec *history.RecordedRun, noCache bool) string {
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
	b, err := history.KeyParts(ctx, db, prev.Key)
	var parts graph.KeyParts
	if err == nil && b != nil {
		err = json.Unmarshal(b, &parts)
	}
	if err != nil || b == nil {
		return fmt.Sprintf("ran because its key changed since run %d (that run's key parts are not stored)", prev.Run)
	}
	return "ran because " + summarizeChanges(diffParts(&parts, o.Parts, inputOwner(a)))
}

// keyPartsJSON is json.Marshal(p), byte for byte, written without
// reflection: the first build that records history encodes every stage's
// preimage, and for ten thousand stages the reflective encoder alone would
// take a good part of the time budget of recording.
func keyPartsJSON(p *graph.KeyParts) []byte {
	b := make([]byte, 0, 256+len(p.Inputs)*120)
	b = append(b, `{"package":`...)
	b = appendJSONString(b, p.Package)
	b = append(b, `,"cmds":`...)
	b = appendJSONStrings(b, p.Cmds)
	if len(p.Env) > 0 {
		b = append(b, `,"env":{`...)
		for i, k := range sortedEnv(p.Env) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, p.Env[k])
		}
		b = append(b, '}')
	}
	if len(p.Secrets) > 0 {
		b = append(b, `,"secrets":`...)
		b = appendJSONStrings(b, p.Secrets)
	}
	if p.Image != "" {
		b = append(b, `,"image":`...)
		b = appendJSONString(b, p.Image)
	}
	b = append(b, `,"platform":`...)
	b = appendJSONString(b, p.Platform)
	b = append(b, `,"outs":`...)
	b = appendJSONStrings(b, p.Outs)
	b = append(b, `,"network":`...)
	b = strconv.AppendBool(b, p.Network)
	b = append(b, `,"inputs":`...)
	if p.Inputs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, in := range p.Inputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = appendJSONString(b, in.Path)
			b = append(b, `,"digest":"sha256:`...)
			b = hex.AppendEncode(b, in.Digest[:])
			b = append(b, '"')
			if in.Exec {
				b = append(b, `,"exec":true`...)
			}
			if in.Tree {
				b = append(b, `,"tree":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json writes it; strings needing
// more than plain copying (escapes, HTML characters, invalid UTF-8) are
// left to encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
