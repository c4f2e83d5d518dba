package server

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mc-build/mc/event"
)

//go:embed web
var webFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"short":    shortSHA,
	"duration": fmtDuration,
	"ms":       func(n int64) string { return fmtDuration(time.Duration(n) * time.Millisecond) },
	"ansi":     ansiHTML,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"anchor": stageAnchor,
}).ParseFS(webFS, "web/*.html"))

func shortSHA(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// stageAnchor is the HTML id of a stage's log section.
func stageAnchor(label string) string {
	if label == "" {
		return "log-run"
	}
	var b strings.Builder
	b.WriteString("log-")
	for _, c := range label {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, ".%x", c)
		}
	}
	return b.String()
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.pageRuns)
	m.HandleFunc("GET /runs/{id}", s.pageRun)
	m.HandleFunc("GET /runs/{id}/events", s.liveEvents)
	m.HandleFunc("GET /runs/{id}/log", s.plainLog)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFS())))
	m.HandleFunc("POST /hooks/github", s.handleGitHub)
	m.HandleFunc("GET /api/runs", s.apiRuns)
	m.HandleFunc("GET /api/runs/{id}", s.apiRun)
	m.HandleFunc("POST /api/runs", s.apiCreate)
	m.HandleFunc("POST /api/runs/{id}/events", s.apiEvents)
	m.HandleFunc("POST /api/runs/{id}/cancel", s.apiCancel)
	s.authRoutes(m) // sign-in, cancel and rerun buttons (auth.go, actions.go)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return m
}

// securityHeaders: logs are untrusted text (escaped anyway); scripts and
// styles come from /static only.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := templates.ExecuteTemplate(w, name, data); err != nil {
		s.logf("template %s: %v", name, err)
	}
}

func (s *Server) runID(w http.ResponseWriter, req *http.Request) (*Run, bool) {
	id, err := strconv.ParseInt(req.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "no such run", http.StatusNotFound)
		return nil, false
	}
	r, err := s.st.getRun(req.Context(), id)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, false
	}
	if r == nil {
		http.Error(w, "no such run", http.StatusNotFound)
		return nil, false
	}
	return r, true
}

// logSection is one stage's log on the run page.
type logSection struct {
	Label  string
	Title  string
	Status string
	Open   bool
	Lines  []template.HTML
	Kept   int // lines kept of LogLines
}

func (s *Server) pageRun(w http.ResponseWriter, req *http.Request) {
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
	states := map[string]string{}
	for _, st := range stages {
		states[st.Label] = st.Status
	}
	sections := []logSection{{Label: "", Title: "run", Status: r.Status, Open: !r.Done() || r.Status != StatusSuccess}}
	for _, st := range stages {
		sections = append(sections, logSection{Label: st.Label, Title: st.Label, Status: st.Status,
			Open: st.Status == StageFailed || st.Status == StageRunning})
	}
	for i := range sections {
		for _, e := range logs[sections[i].Label] {
			sections[i].Lines = append(sections[i].Lines, ansiHTML(e.Line))
		}
	}
	crit := map[string]bool{}
	for _, l := range r.CriticalPath {
		crit[l] = true
	}
	s.render(w, "run.html", map[string]any{
		"Run":      r,
		"Actions":  s.runActionsHTML(req, r), // cancel/rerun buttons (actions.go)
		"Stages":   stages,
		"Graph":    graphSVG(r.Graph, states),
		"Timeline": timelineSVG(r, stages, s.cfg.Now()),
		"Critical": crit,
		"Logs":     sections,
		"Seq":      r.NextSeq - 1,
	})
}

// plainLog is GET /runs/{id}/log?stage=LABEL: one stage's log as text
// (no stage: the run's own log).
func (s *Server) plainLog(w http.ResponseWriter, req *http.Request) {
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	logs, err := s.st.logLines(req.Context(), r.ID, r.NextSeq)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	securityHeaders(w)
	for _, e := range logs[req.URL.Query().Get("stage")] {
		fmt.Fprintln(w, e.Line)
	}
}

// liveEvent is one event as the run page's script receives it.
type liveEvent struct {
	Seq    int64  `json:"seq"`
	Type   string `json:"type"`
	Label  string `json:"label,omitempty"`
	HTML   string `json:"html,omitempty"`   // log: the line, ANSI colours rendered
	State  string `json:"state,omitempty"`  // stage events: the stage's new state
	Status string `json:"status,omitempty"` // run_status
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
	switch {
	case e.Type == event.Log:
		var ev event.Event
		_ = json.Unmarshal([]byte(e.Data), &ev)
		le.HTML = string(ansiHTML(ev.Line))
	case e.Type == eventRunStatus:
		var se statusEvent
		_ = json.Unmarshal([]byte(e.Data), &se)
		le.Status = se.Status
	default:
		le.State = stageStates[e.Type]
	}
	return le
}

// liveEvents is GET /runs/{id}/events: Server-Sent Events of the run from
// ?after=SEQ (or Last-Event-ID) on, ending with an "end" event once the run
// has ended and everything was sent. The database is the one source: a
// client that reconnects misses nothing.
func (s *Server) liveEvents(w http.ResponseWriter, req *http.Request) {
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
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-wake:
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		}
	}
}

// sortedStages orders stages for the JSON API.
func sortedStages(st []*Stage) []*Stage {
	sort.SliceStable(st, func(i, j int) bool { return st[i].Label < st[j].Label })
	return st
}

// staticFS is web/static: the style sheet and the run page's script.
func staticFS() fs.FS {
	f, _ := fs.Sub(webFS, "web/static") // a constant, embedded directory
	return f
}
