package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mc-build/mc/event"
)

// bearer is the token of req's Authorization: Bearer header.
func bearer(req *http.Request) (string, bool) {
	return strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
}

// authorized checks Authorization: Bearer <AuthToken> in constant time.
// Without a configured token nothing is authorized: the server is then
// read-only (webhooks, which carry their own signature, still start runs).
func (s *Server) authorized(w http.ResponseWriter, req *http.Request) bool {
	if s.cfg.AuthToken == "" {
		http.Error(w, "this server is read-only: start it with --auth-token to allow starting and cancelling runs", http.StatusForbidden)
		return false
	}
	tok, _ := bearer(req)
	switch err := s.checkToken(w, req, tok); {
	case errors.Is(err, errGuessing):
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return false
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mc"`)
		http.Error(w, "a valid token is required (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
		return false
	}
	return true
}

// APIRun is a run in the JSON API.
type APIRun struct {
	ID              int64       `json:"id"`
	URL             string      `json:"url"`
	Trigger         string      `json:"trigger"`
	Repo            string      `json:"repo,omitempty"`
	Commit          string      `json:"commit,omitempty"`
	Branch          string      `json:"branch,omitempty"`
	PR              int         `json:"pr,omitempty"`
	Deploy          bool        `json:"deploy,omitempty"`
	DeployState     string      `json:"deploy_state,omitempty"` // waiting, deploying, deployed, failed, not deployed, unconfirmed
	DeployNote      string      `json:"deploy_note,omitempty"`  // why
	Command         string      `json:"command,omitempty"`
	Status          string      `json:"status"`
	Reason          string      `json:"reason,omitempty"`
	Created         time.Time   `json:"created"`
	Started         *time.Time  `json:"started,omitempty"`
	Finished        *time.Time  `json:"finished,omitempty"`
	DurationMS      int64       `json:"duration_ms"`
	Built           int         `json:"built"`
	Cached          int         `json:"cached"`
	Failed          int         `json:"failed"`
	Skipped         int         `json:"skipped"`
	CacheHitPercent int         `json:"cache_hit_percent"` // -1: nothing ran
	CriticalPath    []string    `json:"critical_path,omitempty"`
	CriticalPathMS  int64       `json:"critical_path_ms,omitempty"`
	Stages          []*APIStage `json:"stages,omitempty"`
	// What the runs list shows (runs_list.go).
	Message string `json:"message,omitempty"`  // the commit message's first line
	Author  string `json:"author,omitempty"`   // of the commit, or of the pull request
	PRTitle string `json:"pr_title,omitempty"` // the pull request's title
	RerunOf int64  `json:"rerun_of,omitempty"` // the run this one repeats
}

// APIStage is a stage of a run in the JSON API.
type APIStage struct {
	Label      string         `json:"label"`
	Status     string         `json:"status"`
	Key        string         `json:"key,omitempty"`
	DurationMS int64          `json:"duration_ms,omitempty"`
	QueuedMS   int64          `json:"queued_ms,omitempty"`
	ExitCode   int            `json:"exit_code,omitempty"`
	Error      string         `json:"error,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Remote     bool           `json:"remote,omitempty"`
	Outputs    []event.Output `json:"outputs,omitempty"`
	LogLines   int            `json:"log_lines"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) apiRunOf(r *Run) *APIRun {
	return &APIRun{ID: r.ID, URL: fmt.Sprintf("%s/runs/%d", s.cfg.PublicURL, r.ID), Trigger: r.Trigger, Repo: r.Repo,
		Commit: r.Commit, Branch: r.Branch, PR: r.PR, Deploy: r.Deploy,
		DeployState: r.DeployState, DeployNote: r.DeployNote, Command: r.Command, Status: r.Status,
		Reason: r.Reason, Created: r.Created, Started: timePtr(r.Started), Finished: timePtr(r.Finished),
		DurationMS: r.Duration().Milliseconds(), Built: r.Built, Cached: r.Cached, Failed: r.Failed, Skipped: r.Skipped,
		CacheHitPercent: r.CacheHitPercent(), CriticalPath: r.CriticalPath, CriticalPathMS: r.CriticalMS,
		Message: r.Message, Author: r.Author, PRTitle: r.PRTitle, RerunOf: r.RerunOf}
}

// apiRuns is GET /api/runs: the newest 200 runs, filtered and paged as
// the list is (?repo=, ?branch=, ?status=, ?before=ID, ?after=ID).
func (s *Server) apiRuns(w http.ResponseWriter, req *http.Request) {
	f, err := parseRunFilter(req.URL.Query())
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.Limit = 200
	page, err := s.st.listRunsPage(req.Context(), f)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	out := []*APIRun{}
	for _, r := range page.Runs {
		out = append(out, s.apiRunOf(r))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiRun(w http.ResponseWriter, req *http.Request) {
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
	out := s.apiRunOf(r)
	for _, st := range sortedStages(stages) {
		out.Stages = append(out.Stages, &APIStage{Label: st.Label, Status: st.Status, Key: st.Key, DurationMS: st.DurationMS,
			QueuedMS: st.QueuedMS, ExitCode: st.ExitCode, Error: st.Error, Reason: st.Reason, Remote: st.Remote,
			Outputs: st.Outputs, LogLines: st.LogLines})
	}
	writeJSON(w, http.StatusOK, out)
}

// NewRunRequest is the body of POST /api/runs: a build run elsewhere (mc
// build --report) that will post its events.
type NewRunRequest struct {
	Command string `json:"command"`
	Commit  string `json:"commit,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Repo    string `json:"repo,omitempty"`
}

// apiCreate is POST /api/runs: a run reported by the CLI (trigger cli),
// running from now on.
func (s *Server) apiCreate(w http.ResponseWriter, req *http.Request) {
	if !s.authorized(w, req) {
		return
	}
	var nr NewRunRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&nr); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := s.cfg.Now()
	r := &Run{Trigger: TriggerCLI, Command: nr.Command, Commit: nr.Commit, Branch: nr.Branch, Repo: nr.Repo,
		Status: StatusRunning, Created: now, Started: now}
	if err := s.st.createRun(req.Context(), r); err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.logf("run %d reported by the CLI: %s", r.ID, r.Command)
	writeJSON(w, http.StatusCreated, map[string]any{"id": r.ID, "url": fmt.Sprintf("%s/runs/%d", s.cfg.PublicURL, r.ID)})
}

// apiEvents is POST /api/runs/{id}/events: NDJSON exec events of a run
// reported by the CLI. A build_finished ends the run. Events for a run the
// server marked interrupted (it restarted meanwhile) are still accepted:
// the CLI build went on.
func (s *Server) apiEvents(w http.ResponseWriter, req *http.Request) {
	if !s.authorized(w, req) {
		return
	}
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	if r.Trigger != TriggerCLI || (r.Done() && r.Status != StatusInterrupted) {
		http.Error(w, "this run does not take events", http.StatusConflict)
		return
	}
	var evs []event.Event
	sc := bufio.NewScanner(http.MaxBytesReader(w, req.Body, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e event.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Type == "" {
			http.Error(w, "bad event line", http.StatusBadRequest)
			return
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.st.appendEvents(req.Context(), r.ID, evs, true); err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.wakeWatchers(r.ID)
	w.WriteHeader(http.StatusNoContent)
}

// apiCancel is POST /api/runs/{id}/cancel.
func (s *Server) apiCancel(w http.ResponseWriter, req *http.Request) {
	if !s.authorized(w, req) {
		return
	}
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	if r.Trigger == TriggerCLI || !s.cancel(req.Context(), r.ID, fmt.Errorf("cancelled through the API")) {
		http.Error(w, "the run is not queued or running here", http.StatusConflict)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": r.ID, "status": "cancelling"})
}
