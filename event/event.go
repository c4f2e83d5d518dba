// Package event is the build event stream: what a build reports as it goes
// (stages started, cached, finished, failed, their logs, the summary), as
// plain JSON-able values. The scheduler emits it; the terminal display, the
// profile, mc serve and --output=json consume it, and need nothing else of
// the build to do so.
package event

import "time"

// Types of the build event stream. `mc build --output=json` prints one
// Event per line; mc serve and the profile consume the same stream.
const (
	BuildStarted  = "build_started"
	StageStarted  = "stage_started"
	StageCached   = "stage_cached"
	StageFinished = "stage_finished"
	StageFailed   = "stage_failed"
	StageSkipped  = "stage_skipped"
	Log           = "log"
	BuildFinished = "build_finished"
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
	Remote  bool     `json:"remote,omitempty"`
	Outputs []Output `json:"outputs,omitempty"`
	Total   int      `json:"total,omitempty"` // build_started: stages in the graph
	// Graph (build_started, when the build was asked for it: --output=json,
	// --report) is the action graph: what a run page draws.
	Graph   []GraphNode `json:"graph,omitempty"`
	Summary *Summary    `json:"summary,omitempty"`
	Reason  string      `json:"reason,omitempty"` // stage_skipped: why
	// QueuedMS (stage_started) is how long the stage waited, ready to run,
	// for a free -j slot.
	QueuedMS int64 `json:"queued_ms,omitempty"`
	// Phases (stage_finished, stage_failed) say where its time went.
	Phases []Phase `json:"phases,omitempty"`
	// Pos (stage_failed) is where the stage is declared, FILE:LINE:COL
	// with FILE relative to the workspace root ("a/BUILD.mc:3:1"): CI
	// annotates that line with the failure.
	Pos string `json:"pos,omitempty"`
}

// GraphNode is one stage or image of the build and what it reads from
// other stages and images, by attribute.
type GraphNode struct {
	Label string      `json:"label"`
	Kind  string      `json:"kind"` // stage, image
	Deps  []GraphEdge `json:"deps,omitempty"`
}

// GraphEdge is one dependency of a GraphNode: Label is the stage or image
// depended on, Attr the attribute that names it (Edge* constants).
type GraphEdge struct {
	Label string `json:"label"`
	Attr  string `json:"attr"`
}

// Kinds of GraphEdge: the attribute naming the dependency. EdgeFilegroup
// is a dependency reached through a filegroup.
const (
	EdgeDeps      = "deps"
	EdgeSrcs      = "srcs"
	EdgeImage     = "image"
	EdgeBase      = "base"
	EdgeFiles     = "files"
	EdgeFilegroup = "filegroup"
)

// Phase is one timed part of a stage: restoring, running, storing.
type Phase struct {
	Name       string    `json:"name"`
	Start      time.Time `json:"start"`
	DurationUS int64     `json:"duration_us"`
}

// Output is one output of a finished or cached stage.
type Output struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Summary is the tally carried by build_finished.
type Summary struct {
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

// RemoteStats is what the shared cache did during one build; the summary
// prints it, loudly when something failed.
type RemoteStats struct {
	URL string `json:"url"`
	// Hits are results found remotely (and verified); Misses are lookups
	// that found nothing usable.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// Uploaded results; Downloaded blobs and their bytes.
	Uploaded        int64 `json:"uploaded"`
	Downloaded      int64 `json:"downloaded"`
	DownloadedBytes int64 `json:"downloaded_bytes"`
	// Failures of lookups, downloads and uploads (the remote unreachable,
	// refusing, or serving corrupt data); FirstError says why.
	LookupFailures   int64  `json:"lookup_failures,omitempty"`
	DownloadFailures int64  `json:"download_failures,omitempty"`
	UploadFailures   int64  `json:"upload_failures,omitempty"`
	Corrupt          int64  `json:"corrupt,omitempty"` // objects that did not match their digest
	FirstError       string `json:"first_error,omitempty"`
	// Disabled is set when repeated failures made the build stop using the
	// shared cache (fail open).
	Disabled bool `json:"disabled,omitempty"`
	ReadOnly bool `json:"read_only,omitempty"`
}

// Failed is the number of operations that failed.
func (s *RemoteStats) Failed() int64 {
	return s.LookupFailures + s.DownloadFailures + s.UploadFailures
}
