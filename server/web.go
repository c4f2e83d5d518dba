package server

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
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
	rp := newRunPages(s) // runpage.go
	m.HandleFunc("GET /runs/{id}", rp.page)
	m.HandleFunc("GET /runs/{id}/events", rp.liveEvents)
	m.HandleFunc("GET /runs/{id}/log", rp.plainLog)
	m.HandleFunc("GET /runs/{id}/timeline", rp.timeline)
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
