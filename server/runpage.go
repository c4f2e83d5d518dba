package server

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mc-build/mc/event"
)

// runPages serves the run page and what it loads: the live events, the
// timeline while the run goes, and logs as text. It holds the graph
// layouts of the runs shown.
type runPages struct {
	s       *Server
	layouts *layouts
}

func newRunPages(s *Server) *runPages {
	if _, err := exec.LookPath("dot"); err != nil {
		s.logf("warning: %v", errNoDot) // said on each run page too
	}
	return &runPages{s: s, layouts: newLayouts()}
}

// tailLines is how many of a failed stage's last log lines the failure
// summary shows.
const tailLines = 20

// logLine is one line of a log on the page: its number (1 is the first
// line the stage printed, also when older lines were dropped), its time
// and its text with ANSI colours rendered.
type logLine struct {
	N    int
	ID   string // the HTML id: ANCHOR-LN
	Time string // HH:MM:SS.mmm UTC
	HTML template.HTML
}

// logSection is one stage's log on the run page.
type logSection struct {
	Label  string
	Anchor string
	Title  string
	Status string
	Open   bool
	Lines  []logLine
}

// failedStage is one entry of the failure summary.
type failedStage struct {
	Label    string
	Anchor   string
	ExitCode int
	Error    string
	Lines    []logLine // the last tailLines
	Total    int       // lines of its log
}

// TailID is the anchor of those lines in the full log: ANCHOR-LN-LM (a
// range, marked by run.js), or the one line's.
func (f failedStage) TailID() string {
	switch len(f.Lines) {
	case 0:
		return f.Anchor
	case 1:
		return f.Lines[0].ID
	}
	return fmt.Sprintf("%s-L%d", f.Lines[0].ID, f.Lines[len(f.Lines)-1].N)
}

// evalError is an error in a BUILD file (mc's exit 2), found in the run's
// own log.
type evalError struct {
	File              string
	Line, Col         int
	Message           string
	LineID            string // the log line that says it
	Lines             []logLine
	Anchor, LineCount string
}

// failureSummary is what the run page shows first when a run did not
// succeed: its failed stages, or the evaluation error, or why it ended.
type failureSummary struct {
	Status  string
	Reason  string
	Stages  []failedStage
	Eval    *evalError
	RunTail []logLine // the run's own last lines, when no stage failed
}

// stageCounts are the header's counters: the stage table's rows by state.
type stageCounts struct {
	Total, Running, Built, Cached, Failed, Skipped, Interrupted int
}

// HitPercent is cached over built, cached and failed; -1 when none.
func (c stageCounts) HitPercent() int {
	n := c.Built + c.Cached + c.Failed
	if n == 0 {
		return -1
	}
	return c.Cached * 100 / n
}

func countStages(stages []*Stage) stageCounts {
	c := stageCounts{Total: len(stages)}
	for _, s := range stages {
		switch s.Status {
		case StageRunning:
			c.Running++
		case StageBuilt:
			c.Built++
		case StageCached:
			c.Cached++
		case StageFailed:
			c.Failed++
		case StageSkipped:
			c.Skipped++
		case StageInterrupted:
			c.Interrupted++
		}
	}
	return c
}

// runPage is the data of run.html.
type runPage struct {
	Run        *Run
	Failure    *failureSummary
	Counts     stageCounts
	Graph      template.HTML
	GraphError string
	Timeline   template.HTML
	Critical   map[string]bool
	Stages     []*Stage
	Logs       []logSection
	Seq        int64
	EdgeKinds  []string
	// Actions is for the "actions" template (web/actions.html): the
	// buttons of the run page's header (cancel, rerun), filled by their
	// handlers' code.
	Actions runActions
}

func (p *runPages) page(w http.ResponseWriter, req *http.Request) {
	s := p.s
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	ctx := req.Context()
	stages, err := s.st.stages(ctx, r.ID)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	logs, err := s.st.logLines(ctx, r.ID, r.NextSeq)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	runLogLines, err := s.st.runLogLines(ctx, r.ID)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	states := map[string]string{}
	var labels []string
	for _, st := range stages {
		states[st.Label] = st.Status
		labels = append(labels, st.Label)
	}
	sections := []logSection{{Label: "", Anchor: stageAnchor(""), Title: "run", Status: r.Status,
		Open: !r.Done() || r.Status != StatusSuccess}}
	sections[0].Lines = pageLines(sections[0].Anchor, logs[""], runLogLines)
	for _, st := range stages {
		a := stageAnchor(st.Label)
		sections = append(sections, logSection{Label: st.Label, Anchor: a, Title: st.Label, Status: st.Status,
			Open:  st.Status == StageFailed || st.Status == StageRunning,
			Lines: pageLines(a, logs[st.Label], st.LogLines)})
	}
	crit := map[string]bool{}
	for _, l := range r.CriticalPath {
		crit[l] = true
	}
	data := &runPage{Run: r, Counts: countStages(stages), Timeline: timelineSVG(r, stages, s.cfg.Now()),
		Critical: crit, Stages: stages, Logs: sections, Seq: r.NextSeq - 1, EdgeKinds: edgeKinds,
		Failure: summarize(r, stages, sections), Actions: s.runActions(req, r)}
	if v := view(r.Graph, labels); len(v.Nodes) > 0 {
		l, err := p.layouts.layout(ctx, r.ID, v)
		if err != nil {
			s.logf("run %d: %v", r.ID, err)
			data.GraphError = err.Error()
		} else {
			data.Graph = graphSVG(v, l, states)
		}
	}
	s.render(w, "run.html", data)
}

// pageLines numbers the kept lines of a log whose stage printed total
// lines (the oldest beyond logLimit were dropped).
func pageLines(anchor string, evs []event.Event, total int) []logLine {
	first := total - len(evs) + 1
	if first < 1 {
		first = 1
	}
	out := make([]logLine, len(evs))
	for i, e := range evs {
		n := first + i
		out[i] = logLine{N: n, ID: fmt.Sprintf("%s-L%d", anchor, n), Time: clock(e.Time), HTML: ansiHTML(e.Line)}
	}
	return out
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05.000")
}

// summarize is the failure summary of r, nil when there is nothing to
// say: the failed stages with their last lines; without any, the error in
// a BUILD file, or the reason and the last lines of the run's own log.
func summarize(r *Run, stages []*Stage, sections []logSection) *failureSummary {
	f := &failureSummary{Status: r.Status, Reason: r.Reason}
	byLabel := map[string]logSection{}
	for _, sec := range sections {
		byLabel[sec.Label] = sec
	}
	for _, st := range stages {
		if st.Status != StageFailed {
			continue
		}
		sec := byLabel[st.Label]
		fs := failedStage{Label: st.Label, Anchor: sec.Anchor, ExitCode: st.ExitCode, Error: st.Error, Lines: tail(sec.Lines)}
		if n := len(sec.Lines); n > 0 {
			fs.Total = sec.Lines[n-1].N
		}
		f.Stages = append(f.Stages, fs)
	}
	if len(f.Stages) > 0 {
		return f
	}
	if !r.Done() || r.Status == StatusSuccess {
		return nil
	}
	run := byLabel[""]
	for i := len(run.Lines) - 1; i >= 0; i-- {
		text := html.UnescapeString(stripTags(string(run.Lines[i].HTML)))
		m := evalErrorRE.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		f.Eval = &evalError{File: m[1], Line: line, Col: col, Message: m[4], LineID: run.Lines[i].ID}
		break
	}
	if f.Eval == nil {
		f.RunTail = tail(run.Lines)
	}
	return f
}

func tail(l []logLine) []logLine {
	if len(l) > tailLines {
		return l[len(l)-tailLines:]
	}
	return l
}

// stripTags removes the spans ansiHTML writes.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, c := range s {
		switch {
		case c == '<':
			in = true
		case c == '>':
			in = false
		case !in:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// ansiPlain is a log line without its escape sequences.
func ansiPlain(line string) string { return html.UnescapeString(stripTags(string(ansiHTML(line)))) }

// timeline is GET /runs/{id}/timeline: the timeline's SVG as the page
// shows it, which the page's script fetches while the run goes.
func (p *runPages) timeline(w http.ResponseWriter, req *http.Request) {
	s := p.s
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	stages, err := s.st.stages(req.Context(), r.ID)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	svg := timelineSVG(r, stages, s.cfg.Now())
	if svg == "" {
		svg = `<p class="note">No stage has run yet.</p>`
	}
	fmt.Fprint(w, svg)
}

// plainLog is GET /runs/{id}/log?stage=LABEL: one stage's log as plain
// text (no stage: the run's own log), escape sequences removed;
// &timestamps=1 starts each line with its time, &download=1 makes it a
// file to save.
func (p *runPages) plainLog(w http.ResponseWriter, req *http.Request) {
	s := p.s
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	logs, err := s.st.logLines(req.Context(), r.ID, r.NextSeq)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	q := req.URL.Query()
	stage := q.Get("stage")
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if q.Get("download") == "1" {
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, logFileName(r.ID, stage)))
	}
	stamps := q.Get("timestamps") == "1"
	for _, e := range logs[stage] {
		if stamps {
			fmt.Fprintf(w, "%s ", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		fmt.Fprintln(w, ansiPlain(e.Line))
	}
}

// logFileName is the download name of a log: run-12-b_b_test.log.
func logFileName(id int64, stage string) string {
	name := "run"
	if stage != "" {
		name = strings.Map(func(c rune) rune {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
				return c
			}
			return '_'
		}, strings.TrimPrefix(stage, "//"))
	}
	return fmt.Sprintf("run-%d-%s.log", id, name)
}

// liveEvent is one event as the run page's script receives it.
type liveEvent struct {
	Seq    int64  `json:"seq"`
	Type   string `json:"type"`
	Label  string `json:"label,omitempty"`
	Time   string `json:"time,omitempty"`   // HH:MM:SS.mmm UTC
	HTML   string `json:"html,omitempty"`   // log: the line, ANSI colours rendered
	State  string `json:"state,omitempty"`  // stage events: the stage's new state
	Status string `json:"status,omitempty"` // run_status
	// Stage events: what the stage table shows.
	Key        string `json:"key,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	ExitCode   int    `json:"exit_code,omitempty"`
	Error      string `json:"error,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

var stageStates = map[string]string{
	event.StageStarted:  StageRunning,
	event.StageCached:   StageCached,
	event.StageFinished: StageBuilt,
	event.StageFailed:   StageFailed,
	event.StageSkipped:  StageSkipped,
}

func toLive(e storedEvent) liveEvent {
	le := liveEvent{Seq: e.Seq, Type: e.Type, Label: e.Label}
	if e.Type == eventRunStatus {
		var se statusEvent
		_ = json.Unmarshal([]byte(e.Data), &se)
		le.Status = se.Status
		return le
	}
	var ev event.Event
	_ = json.Unmarshal([]byte(e.Data), &ev) // written by the store
	le.Time = clock(ev.Time)
	if e.Type == event.Log {
		le.HTML = string(ansiHTML(ev.Line))
		return le
	}
	le.State = stageStates[e.Type]
	if le.State != "" || e.Type == eventStageExplained {
		le.Key, le.DurationMS, le.ExitCode, le.Error, le.Reason = ev.Key, ev.DurationMS, ev.ExitCode, ev.Error, ev.Reason
	}
	return le
}

// liveEvents is GET /runs/{id}/events: Server-Sent Events of the run from
// ?after=SEQ (or Last-Event-ID) on, ending with an "end" event once the run
// has ended and everything was sent. The database is the one source: a
// client that reconnects misses nothing.
func (p *runPages) liveEvents(w http.ResponseWriter, req *http.Request) {
	s := p.s
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	after, _ := strconv.ParseInt(req.URL.Query().Get("after"), 10, 64)
	if id := req.Header.Get("Last-Event-ID"); id != "" {
		after, _ = strconv.ParseInt(id, 10, 64)
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	ctx := req.Context()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		wake := s.watch(r.ID) // before reading: no event is missed
		cur, err := s.st.getRun(ctx, r.ID)
		if err != nil || cur == nil {
			return
		}
		evs, err := s.st.eventsAfter(ctx, r.ID, after, 500)
		if err != nil {
			return
		}
		for _, e := range evs {
			b, _ := json.Marshal(toLive(e))
			fmt.Fprintf(w, "id: %d\nevent: mc\ndata: %s\n\n", e.Seq, b)
			after = e.Seq
		}
		flusher.Flush()
		if len(evs) == 500 {
			continue
		}
		if cur.Done() && after >= cur.NextSeq-1 {
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", cur.Status)
			flusher.Flush()
			return
		}
		if !wait(ctx, s.closed, wake, keepalive.C, w) {
			return
		}
	}
}

// wait blocks until the run has news (true), or the client or the server
// went away (false), keeping the connection alive meanwhile.
func wait(ctx context.Context, closed, wake <-chan struct{}, keepalive <-chan time.Time, w http.ResponseWriter) bool {
	select {
	case <-ctx.Done():
		return false
	case <-closed:
		return false
	case <-wake:
		return true
	case <-keepalive:
		fmt.Fprint(w, ": keepalive\n\n")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return true
	}
}
