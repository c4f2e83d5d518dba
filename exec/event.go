package exec

import (
	"bytes"
	"sync"
	"time"
)

// Event types of the build event stream. `mc build --output=json` prints
// one Event per line; the CI server (a later issue) consumes the same stream.
const (
	EventBuildStarted  = "build_started"
	EventStageStarted  = "stage_started"
	EventStageCached   = "stage_cached"
	EventStageFinished = "stage_finished"
	EventStageFailed   = "stage_failed"
	EventStageSkipped  = "stage_skipped"
	EventLog           = "log"
	EventBuildFinished = "build_finished"
)

// Event is one entry of the build event stream.
type Event struct {
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	Label string    `json:"label,omitempty"`
	// Key is the action digest (stage events).
	Key string `json:"key,omitempty"`
	// DurationMS is the stage's run time (finished, failed) or, for
	// build_finished, the wall time of the build.
	DurationMS int64  `json:"duration_ms,omitempty"`
	ExitCode   int    `json:"exit_code,omitempty"`
	Error      string `json:"error,omitempty"`
	Line       string `json:"line,omitempty"`   // log
	Cached     bool   `json:"cached,omitempty"` // log: replayed from the cache
	// Remote (stage_cached) is set when the result came from the shared cache.
	Remote  bool           `json:"remote,omitempty"`
	Outputs []EventOutput  `json:"outputs,omitempty"`
	Total   int            `json:"total,omitempty"` // build_started: stages in the graph
	Summary *SummaryCounts `json:"summary,omitempty"`
	Reason  string         `json:"reason,omitempty"` // stage_skipped: why
	// QueuedMS (stage_started) is how long the stage waited, ready to run,
	// for a free -j slot.
	QueuedMS int64 `json:"queued_ms,omitempty"`
	// Phases (stage_finished, stage_failed) say where its time went.
	Phases []EventPhase `json:"phases,omitempty"`
}

// EventPhase is one timed part of a stage: restoring, running, storing.
type EventPhase struct {
	Name       string    `json:"name"`
	Start      time.Time `json:"start"`
	DurationUS int64     `json:"duration_us"`
}

func eventPhases(ps []Phase) []EventPhase {
	var out []EventPhase
	for _, p := range ps {
		out = append(out, EventPhase{Name: p.Name, Start: p.Start, DurationUS: p.End.Sub(p.Start).Microseconds()})
	}
	return out
}

// EventOutput is one output of a finished or cached stage.
type EventOutput struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// SummaryCounts is the tally carried by build_finished.
type SummaryCounts struct {
	Built          int      `json:"built"`
	Cached         int      `json:"cached"`
	Failed         int      `json:"failed"`
	Skipped        int      `json:"skipped"`
	CriticalPath   []string `json:"critical_path,omitempty"`
	CriticalPathMS int64    `json:"critical_path_ms"`
	// Remote is what the shared cache did (absent without one).
	Remote *RemoteStats `json:"remote,omitempty"`
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Event(e Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Event calls f(e).
func (f SinkFunc) Event(e Event) { f(e) }

// lineWriter turns a stage's output stream into one log event per line.
type lineWriter struct {
	mu     sync.Mutex
	sink   Sink
	label  string
	buf    []byte
	cached bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(bytes.TrimSuffix(w.buf[:i], []byte("\r"))))
		w.buf = w.buf[i+1:]
	}
	// Keep memory bounded for output that never ends a line.
	if len(w.buf) > 64<<10 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line string) {
	w.sink.Event(Event{Type: EventLog, Time: time.Now(), Label: w.label, Line: line, Cached: w.cached})
}

// Close flushes a last unterminated line.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return nil
}
