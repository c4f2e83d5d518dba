// Package profile records a build's event stream and writes it as a Chrome
// trace (the Trace Event Format that chrome://tracing, Perfetto and
// speedscope load): one track per worker slot with a slice per stage run,
// a track of cache hits, a track repeating the critical path, and the
// phases of the command (evaluation, execution, ...) on a track of their own.
package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mc-build/mc/event"
)

// Track ids (tid) of the trace. Workers are workerTid0, workerTid0+1, ...
const (
	tidPhases   = 1
	tidCache    = 2
	tidCritical = 3
	tidQueue    = 4
	workerTid0  = 10
)

// cachedSliceDur is the width given to a cache hit on the cache track: the
// event stream says when a hit was found, not how long finding it took.
const cachedSliceDur = time.Microsecond

// Recorder is an event.Sink that remembers what a profile needs and passes
// every event on to the next sink. It is safe for concurrent use.
type Recorder struct {
	next event.Sink

	mu        sync.Mutex
	slotEnd   []time.Time // per worker slot: when its last stage ended
	slotBusy  []bool
	open      map[string]*slice // running stages by label
	slices    []*slice          // finished stage runs
	cached    []*slice
	queued    []*slice // waits for a -j slot, drawn as async slices
	phases    []*slice
	critical  map[string]bool
	critPath  []string
	critMS    int64
	lastEvent time.Time
}

type slice struct {
	name       string
	cat        string
	tid        int
	start, end time.Time
	args       map[string]any
	phases     []*slice // restoring, running, storing: nested in a stage
}

// New returns a Recorder passing events on to next (nil: to nothing).
func New(next event.Sink) *Recorder {
	return &Recorder{next: next, open: map[string]*slice{}}
}

// Event implements event.Sink.
func (r *Recorder) Event(e event.Event) {
	r.record(e)
	if r.next != nil {
		r.next.Event(e)
	}
}

func (r *Recorder) record(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Time.After(r.lastEvent) {
		r.lastEvent = e.Time
	}
	switch e.Type {
	case event.StageStarted:
		slot, start := r.takeSlot(e.Time)
		s := &slice{name: e.Label, cat: "stage", tid: workerTid0 + slot, start: start,
			args: map[string]any{"label": e.Label, "key": e.Key}}
		r.open[e.Label] = s
		if e.QueuedMS > 0 {
			// Waiting stages overlap one another: async slices, one row each.
			s.args["queued_ms"] = e.QueuedMS
			r.queued = append(r.queued, &slice{name: e.Label, cat: "queued",
				start: e.Time.Add(-time.Duration(e.QueuedMS) * time.Millisecond), end: e.Time})
		}
	case event.StageFinished, event.StageFailed:
		s := r.open[e.Label]
		if s == nil {
			return // failed before it started (a missing secret, an unreadable source)
		}
		delete(r.open, e.Label)
		s.end = e.Time
		if s.end.Before(s.start) {
			s.end = s.start
		}
		for _, p := range e.Phases {
			// Nested in the stage's slice on its worker's track.
			end := p.Start.Add(time.Duration(p.DurationUS) * time.Microsecond)
			if p.Start.Before(s.start) || end.After(s.end) {
				continue // clock skew would break the nesting: leave it out
			}
			s.phases = append(s.phases, &slice{name: p.Name, cat: "phase", tid: s.tid, start: p.Start, end: end})
		}
		if e.Type == event.StageFinished {
			s.args["status"] = "built"
		} else {
			s.args["status"] = "failed"
			s.args["error"] = e.Error
		}
		r.slices = append(r.slices, s)
		r.releaseSlot(s.tid-workerTid0, e.Time)
	case event.StageCached:
		start := e.Time
		if n := len(r.cached); n > 0 && r.cached[n-1].end.After(start) {
			start = r.cached[n-1].end // keep the track's slices apart
		}
		r.cached = append(r.cached, &slice{name: e.Label, cat: "cached", tid: tidCache, start: start,
			end: start.Add(cachedSliceDur), args: map[string]any{"label": e.Label, "key": e.Key,
				"stored_duration_ms": e.DurationMS}})
	case event.BuildFinished:
		if e.Summary != nil {
			r.critPath = append([]string(nil), e.Summary.CriticalPath...)
			r.critMS = e.Summary.CriticalPathMS
			r.critical = map[string]bool{}
			for _, l := range r.critPath {
				r.critical[l] = true
			}
		}
	}
}

// takeSlot returns the lowest free worker slot for a stage starting at t,
// and the start to draw: t, or the end of the slot's last stage when
// timestamps taken on different goroutines arrive a little out of order, so
// that slices of one track never overlap and there are never more tracks
// than stages running at once.
func (r *Recorder) takeSlot(t time.Time) (int, time.Time) {
	best := -1
	for i := range r.slotBusy {
		if r.slotBusy[i] {
			continue
		}
		if !r.slotEnd[i].After(t) {
			best = i
			break
		}
		if best < 0 || r.slotEnd[i].Before(r.slotEnd[best]) {
			best = i
		}
	}
	if best < 0 {
		r.slotBusy = append(r.slotBusy, true)
		r.slotEnd = append(r.slotEnd, time.Time{})
		return len(r.slotBusy) - 1, t
	}
	r.slotBusy[best] = true
	if r.slotEnd[best].After(t) {
		t = r.slotEnd[best]
	}
	return best, t
}

func (r *Recorder) releaseSlot(i int, t time.Time) {
	r.slotBusy[i] = false
	if t.After(r.slotEnd[i]) {
		r.slotEnd[i] = t
	}
}

// Phase records a phase of the command on the phase track. Phases should
// not overlap: the track shows them one after the other.
func (r *Recorder) Phase(name string, start, end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phases = append(r.phases, &slice{name: name, cat: "phase", tid: tidPhases, start: start, end: end})
}

// traceEvent is one entry of the Trace Event Format's traceEvents array.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"` // microseconds since the first slice
	Dur  *float64       `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Args map[string]any `json:"args,omitempty"`
	ID   int            `json:"id,omitempty"` // async (b/e) events
}

// Trace is the JSON object written by Write.
type Trace struct {
	TraceEvents     []traceEvent   `json:"traceEvents"`
	DisplayTimeUnit string         `json:"displayTimeUnit"`
	OtherData       map[string]any `json:"otherData"`
}

// Trace returns the profile recorded so far. Stages still running (an
// interrupted build) end at the last event seen.
func (r *Recorder) Trace() *Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	stages := append([]*slice(nil), r.slices...)
	for _, s := range r.open {
		c := *s
		c.end = r.lastEvent
		if c.end.Before(c.start) {
			c.end = c.start
		}
		c.args = map[string]any{"label": s.args["label"], "key": s.args["key"], "status": "unfinished"}
		stages = append(stages, &c)
	}
	sort.Slice(stages, func(i, j int) bool { return stages[i].start.Before(stages[j].start) })

	var zero time.Time
	for _, group := range [][]*slice{stages, r.cached, r.phases} {
		for _, s := range group {
			if zero.IsZero() || s.start.Before(zero) {
				zero = s.start
			}
		}
	}
	// Whole microseconds, start and end rounded alike: slices that touch
	// still touch (ts+dur of one is exactly ts of the next), with no float
	// rounding making them overlap.
	us := func(t time.Time) float64 { return float64(t.Sub(zero).Round(time.Microsecond).Microseconds()) }
	x := func(s *slice) traceEvent {
		start := us(s.start)
		d := us(s.end) - start
		return traceEvent{Name: s.name, Cat: s.cat, Ph: "X", Ts: start, Dur: &d, Pid: 1, Tid: s.tid, Args: s.args}
	}
	meta := func(name string, tid int, args map[string]any) traceEvent {
		return traceEvent{Name: name, Ph: "M", Pid: 1, Tid: tid, Args: args}
	}
	t := &Trace{DisplayTimeUnit: "ms", OtherData: map[string]any{
		"critical_path": append([]string{}, r.critPath...), "critical_path_ms": r.critMS,
	}}
	ev := []traceEvent{meta("process_name", 0, map[string]any{"name": "mc"})}
	tracks := []struct {
		tid  int
		name string
	}{{tidPhases, "mc"}, {tidCritical, "critical path"}, {tidCache, "cache"}, {tidQueue, "queued"}}
	for i := range r.slotBusy {
		tracks = append(tracks, struct {
			tid  int
			name string
		}{workerTid0 + i, fmt.Sprintf("worker %d", i+1)})
	}
	for i, tr := range tracks {
		ev = append(ev, meta("thread_name", tr.tid, map[string]any{"name": tr.name}),
			meta("thread_sort_index", tr.tid, map[string]any{"sort_index": i}))
	}
	for _, s := range r.phases {
		ev = append(ev, x(s))
	}
	for _, s := range stages {
		crit := r.critical[s.name]
		s.args["critical_path"] = crit
		ev = append(ev, x(s))
		if crit {
			c := *s
			c.tid, c.cat = tidCritical, "critical_path"
			ev = append(ev, x(&c))
		}
	}
	for _, s := range r.cached {
		ev = append(ev, x(s))
	}
	for _, s := range stages {
		for _, p := range s.phases {
			ev = append(ev, x(p))
		}
	}
	for i, q := range r.queued {
		b := traceEvent{Name: "queued", Cat: "queued", Ph: "b", Ts: us(q.start), Pid: 1, Tid: tidQueue, ID: i + 1,
			Args: map[string]any{"label": q.name}}
		e := b
		e.Ph, e.Ts, e.Args = "e", us(q.end), nil
		ev = append(ev, b, e)
	}
	t.TraceEvents = ev
	return t
}

// Write writes the trace as JSON to w.
func (r *Recorder) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(r.Trace()); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}

// WriteFile writes the trace to path, atomically (a temporary file in the
// same directory, renamed over path).
func (r *Recorder) WriteFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if err := r.Write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}
