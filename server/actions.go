package server

import (
	"fmt"
	"net/http"
)

// runActions is what the "run-actions" partial (web/runactions.html) needs:
// the buttons a viewer may press on a run, on the runs list and in the run
// page's header.
type runActions struct {
	Run       *Run
	CSRF      string // "" when not signed in: no buttons
	Back      string // the page to return to after cancelling
	CanCancel bool
	CanRerun  bool
}

// actionsFor is the viewer's actions on r (ss nil: signed out).
func actionsFor(ss *session, r *Run, back string) runActions {
	a := runActions{Run: r, Back: back}
	if !ss.signedIn() {
		return a
	}
	a.CSRF = ss.CSRF
	// Runs reported by the CLI have no process here and nothing to fetch.
	a.CanCancel = !r.Done() && r.Trigger != TriggerCLI
	a.CanRerun = r.Done() && r.Trigger != TriggerCLI && r.CloneURL != ""
	return a
}

// runActions is the viewer's actions on r, for the run page: its
// template calls {{template "run-actions" .Actions}}.
func (s *Server) runActions(req *http.Request, r *Run) runActions {
	return actionsFor(s.sessionOf(req), r, req.URL.RequestURI())
}

// pageCancel is the cancel button: a signed-in session, its CSRF token,
// a request from this server's pages.
func (s *Server) pageCancel(w http.ResponseWriter, req *http.Request) {
	ss := s.checkPost(w, req)
	if ss == nil {
		return
	}
	if !ss.signedIn() {
		s.refuse(w, req, "sign in to cancel runs")
		return
	}
	r, ok := s.runID(w, req)
	if !ok {
		return
	}
	if r.Trigger == TriggerCLI || !s.cancel(req.Context(), r.ID, fmt.Errorf("cancelled by %s", ss.User)) {
		http.Error(w, "the run is not queued or running here", http.StatusConflict)
		return
	}
	back := req.PostFormValue("back")
	if back == "" {
		back = fmt.Sprintf("/runs/%d", r.ID)
	}
	http.Redirect(w, req, localPath(back), http.StatusSeeOther)
}

// pageRerun is the rerun button: a new run of the same commit, linked to
// the original. It keeps the original's trigger, so a pull request's
// rerun builds untrusted as the pull request did; the list shows it as a
// manual rerun.
func (s *Server) pageRerun(w http.ResponseWriter, req *http.Request) {
	ss := s.checkPost(w, req)
	if ss == nil {
		return
	}
	if !ss.signedIn() {
		s.refuse(w, req, "sign in to rerun runs")
		return
	}
	orig, ok := s.runID(w, req)
	if !ok {
		return
	}
	if !rerunnable(orig) {
		http.Error(w, "only a finished run of a push or pull request can be rerun", http.StatusConflict)
		return
	}
	r := rerunOf(orig)
	if err := s.enqueue(req.Context(), r); err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.logf("run %d: a rerun of run %d by %s", r.ID, orig.ID, ss.User)
	http.Redirect(w, req, fmt.Sprintf("/runs/%d", r.ID), http.StatusSeeOther)
}

// rerunnable reports whether orig can be run again: a finished run of a
// push or a pull request.
func rerunnable(orig *Run) bool {
	return orig.Done() && orig.Trigger != TriggerCLI && orig.CloneURL != ""
}

// rerunOf is a new run of orig's commit, linked to it. It keeps orig's
// trigger, so a pull request's rerun builds untrusted as the pull request
// did, and a push's deploys only if its commit is still the branch's head.
func rerunOf(orig *Run) *Run {
	r := &Run{Trigger: orig.Trigger, Repo: orig.Repo, CloneURL: orig.CloneURL, BaseURL: orig.BaseURL,
		Commit: orig.Commit, BaseSHA: orig.BaseSHA, Branch: orig.Branch, PR: orig.PR, Deploy: orig.Deploy,
		Message: orig.Message, Author: orig.Author, PRTitle: orig.PRTitle, RerunOf: orig.ID}
	if r.Deploy {
		// Deploys still follow the branch: only its head deploys (run.go).
		r.DeployState = DeployWaiting
		r.DeployNote = "the deploy stages run after the build, if " + shortSHA(r.Commit) + " is still the head of " + r.Branch
	}
	return r
}
