package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/explain"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/profile"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
)

// eventStageExplained carries a stage's --explain reason in the JSON event
// stream (in Event.Reason); it comes before build_finished.
const eventStageExplained = "stage_explained"

// observeFlags are the build flags about looking at a build rather than
// running it: --explain, --profile, --history.
type observeFlags struct {
	explain bool
	profile string
	history int
}

// observer is what build() needs for --explain, --profile and the run
// history: a sink in front of the display, the phase timer, and the
// history record. Its methods are the hooks build() calls.
type observer struct {
	flags observeFlags
	json  bool
	next  event.Sink // the display, behind the profile recorder if any
	prof  *profile.Recorder

	mu      sync.Mutex
	held    *event.Event // build_finished, held back until the reasons are out
	phase   string
	started time.Time
	reasons []explain.Reason
	warn    string
}

// newObserver puts the observer in front of sink and returns it with the
// sink the build must use.
func newObserver(f observeFlags, json bool, sink event.Sink) (*observer, event.Sink, error) {
	if f.history < 1 {
		return nil, nil, errkind.Usagef("--history must be at least 1")
	}
	o := &observer{flags: f, json: json, next: sink}
	if f.profile != "" {
		o.prof = profile.New(sink)
		o.next = o.prof
	}
	return o, o, nil
}

// Event implements event.Sink.
func (o *observer) Event(e event.Event) {
	if e.Type == event.BuildFinished && o.flags.explain && o.json {
		o.mu.Lock()
		o.held = &e
		o.mu.Unlock()
		return
	}
	o.next.Event(e)
}

// flush passes on a held build_finished event (a build that stopped before
// finish); idempotent.
func (o *observer) flush() {
	o.mu.Lock()
	held := o.held
	o.held = nil
	o.mu.Unlock()
	if held != nil {
		o.next.Event(*held)
	}
}

// startPhase ends the current phase of the command and starts name ("":
// none). Phases end up on the profile's phase track.
func (o *observer) startPhase(name string) {
	now := time.Now()
	if o.phase != "" && o.prof != nil {
		o.prof.Phase(o.phase, o.started, now)
	}
	o.phase, o.started = name, now
}

// record stores the run's history (history.RecordRun) and works out the
// --explain reasons, which need the entries the run replaces. A failure to
// record is a warning: the build itself went fine.
func (o *observer) record(ctx context.Context, p *Pipeline, command string, noCache bool, ag *graph.ActionGraph, rep *sched.Report) {
	o.startPhase("record history")
	defer o.startPhase("")
	rec, err := p.RecordHistory(ctx, command, o.flags.history, ag, rep)
	if err != nil {
		o.warn = fmt.Sprintf("recording the run history: %v", err)
	}
	if o.flags.explain {
		o.reasons = explain.Ran(ctx, session.HistoryParts{S: p.s}, ag, rep, rec, noCache)
	}
}

// finish shows the --explain reasons (text: after the summary; JSON: as
// stage_explained events before build_finished) and writes the profile.
func (o *observer) finish(e Env) error {
	o.startPhase("")
	if o.warn != "" {
		if o.json {
			o.next.Event(event.Event{Type: event.Log, Time: time.Now(), Line: "warning: " + o.warn})
		} else {
			fmt.Fprintf(e.Stderr, "mc: warning: %s\n", o.warn)
		}
	}
	for _, r := range o.reasons {
		if o.json {
			o.next.Event(event.Event{Type: eventStageExplained, Time: time.Now(), Label: r.Label, Key: r.Key, Reason: r.Reason})
		} else {
			fmt.Fprintf(e.Stderr, "%s: %s\n", r.Label, r.Reason)
		}
	}
	o.flush()
	if o.prof != nil {
		// Relative to the directory mc runs in (-C included), like patterns.
		p := o.flags.profile
		if !filepath.IsAbs(p) {
			p = filepath.Join(e.Dir, p)
		}
		if err := o.prof.WriteFile(p); err != nil {
			return errkind.Infra(err)
		}
	}
	return nil
}

// historyCommand is how a run is named in the history: "build //...".
func historyCommand(name string, args []string) string {
	c := name
	for _, a := range args {
		c += " " + a
	}
	return c
}
