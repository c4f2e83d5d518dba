package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mc-build/mc/ghapi"
)

// statusContext is the context of mc's commit statuses (SPEC §6), and
// checkName the name of its check runs.
const (
	statusContext = "mc"
	checkName     = "mc"
)

// statusClient reports runs to GitHub: one check run per run (created when
// it is queued, in progress when it starts, completed with a summary and
// annotations at its end), or commit statuses on the repositories where
// GitHub refuses the credential check runs (a personal access token: only
// Apps may write them). nil without credentials.
type statusClient struct {
	api *ghapi.Client

	mu           sync.Mutex
	checkRuns    map[int64]int64 // run id -> its check run, while the run is not done
	statusesOnly map[string]bool // repositories where check runs were refused (403)
}

func newStatusClient(cfg Config) (*statusClient, error) {
	if cfg.GitHubToken == "" && cfg.GitHubAppID == 0 && cfg.GitHubAppKey == nil {
		return nil, nil
	}
	api, err := ghapi.New(cfg.GitHubAPI, ghapi.Options{Token: cfg.GitHubToken, AppID: cfg.GitHubAppID,
		AppKey: cfg.GitHubAppKey, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &statusClient{api: api, checkRuns: map[int64]int64{}, statusesOnly: map[string]bool{}}, nil
}

// noteInstallation records the GitHub App installation a webhook payload
// names (installation.id), so that the run's check run needs no lookup.
func (s *Server) noteInstallation(repo string, body []byte) {
	if s.gh == nil || repo == "" {
		return
	}
	var p struct {
		Installation struct {
			ID int64 `json:"id"`
		} `json:"installation"`
	}
	if json.Unmarshal(body, &p) == nil {
		s.gh.api.SetInstallation(repo, p.Installation.ID)
	}
}

// githubState maps a run's status to a commit status state.
func githubState(r *Run) (state, desc string) {
	switch r.Status {
	case StatusQueued:
		return "pending", "queued"
	case StatusRunning:
		return "pending", "building"
	case StatusSuccess:
		return "success", fmt.Sprintf("%d built, %d cached in %s", r.Built, r.Cached, fmtDuration(r.Duration()))
	case StatusFailure:
		return "failure", fmt.Sprintf("%d failed, %d built, %d cached", r.Failed, r.Built, r.Cached)
	case StatusCancelled:
		return "error", "cancelled: " + r.Reason
	case StatusInterrupted:
		return "error", "interrupted: " + r.Reason
	default:
		return "error", r.Reason
	}
}

// postStatus queues r's state for GitHub (a check run, or a commit
// status), with a link to the run page. One goroutine posts them in order
// (a slow or unreachable GitHub delays neither webhook replies nor builds,
// and an update never overtakes an earlier one).
func (s *Server) postStatus(ctx context.Context, r *Run) {
	if s.gh == nil || r.Trigger == TriggerCLI || r.Repo == "" || r.Commit == "" {
		return
	}
	cp := *r
	select {
	case s.statuses <- &cp:
	default:
		s.logf("run %d: GitHub update dropped: too many waiting", r.ID)
	}
}

// statusLoop posts the queued updates until the queue is closed.
func (s *Server) statusLoop() {
	defer close(s.statusDone)
	for r := range s.statuses {
		s.sendStatus(context.Background(), r)
	}
}

// sendStatus reports r as a check run, or as a commit status where
// GitHub refused check runs: a 403 on a repository makes it statuses from
// then on (logged once). Failures are logged: GitHub being unreachable
// must not fail a build.
func (s *Server) sendStatus(ctx context.Context, r *Run) {
	s.gh.mu.Lock()
	statusesOnly := s.gh.statusesOnly[r.Repo]
	s.gh.mu.Unlock()
	if !statusesOnly {
		err := s.sendCheck(ctx, r)
		if err == nil {
			return
		}
		if !ghapi.IsForbidden(err) {
			s.logf("run %d: check run: %v", r.ID, err)
			return
		}
		s.gh.mu.Lock()
		s.gh.statusesOnly[r.Repo] = true
		s.gh.mu.Unlock()
		s.logf("GitHub refused check runs on %s (%v): commit statuses from now on for it "+
			"(a GitHub App with the Checks permission gets check runs)", r.Repo, err)
	}
	state, desc := githubState(r)
	st := ghapi.Status{State: state, Description: desc, TargetURL: s.runURL(r), Context: statusContext}
	if err := retry(ctx, func(ctx context.Context) error { return s.gh.api.CreateStatus(ctx, r.Repo, r.Commit, st) }); err != nil {
		s.logf("run %d: commit status %s: %v", r.ID, state, err)
	}
}

func (s *Server) runURL(r *Run) string { return fmt.Sprintf("%s/runs/%d", s.cfg.PublicURL, r.ID) }

// retry makes up to 3 attempts of f, except after a refusal (4xx), which
// another attempt would not change.
func retry(ctx context.Context, f func(context.Context) error) error {
	var err error
	for attempt := range 3 {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = f(actx)
		cancel()
		var ge *ghapi.Error
		if err == nil || (errors.As(err, &ge) && ge.StatusCode/100 == 4 && !ge.RateLimited) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return err
}

// checkConclusion maps a finished run's status to a check run conclusion.
func checkConclusion(r *Run) string {
	switch r.Status {
	case StatusSuccess:
		return "success"
	case StatusCancelled, StatusInterrupted:
		return "cancelled"
	default: // failure, error
		return "failure"
	}
}

// sendCheck creates or updates r's check run to say r's state.
func (s *Server) sendCheck(ctx context.Context, r *Run) error {
	ext := strconv.FormatInt(r.ID, 10)
	s.gh.mu.Lock()
	id := s.gh.checkRuns[r.ID]
	s.gh.mu.Unlock()
	if id == 0 && r.Status != StatusQueued {
		// Created by this server before a restart?
		err := retry(ctx, func(ctx context.Context) (err error) {
			id, err = s.gh.api.FindCheckRun(ctx, r.Repo, r.Commit, checkName, ext)
			return err
		})
		if err != nil {
			return err
		}
	}
	cr := ghapi.CheckRun{DetailsURL: s.runURL(r), ExternalID: ext}
	_, desc := githubState(r)
	switch r.Status {
	case StatusQueued:
		cr.Status = "queued"
		cr.Output = &ghapi.Output{Title: "queued", Summary: fmt.Sprintf("Run %d waits for a worker: %s", r.ID, s.runURL(r))}
	case StatusRunning:
		started := r.Started.UTC()
		cr.Status, cr.StartedAt = "in_progress", &started
		cr.Output = &ghapi.Output{Title: "building", Summary: fmt.Sprintf("Run %d is building: %s", r.ID, s.runURL(r))}
	default:
		out, err := s.checkOutput(ctx, r, desc)
		if err != nil {
			return err
		}
		finished := r.Finished.UTC()
		if finished.IsZero() {
			finished = s.cfg.Now().UTC()
		}
		cr.Status, cr.Conclusion, cr.CompletedAt, cr.Output = "completed", checkConclusion(r), &finished, out
	}
	if id == 0 {
		create := cr
		create.Name, create.HeadSHA = checkName, r.Commit
		if create.Status == "completed" {
			// Its annotations may need several requests: they go in
			// updates, the completion with the last.
			create.Status, create.Conclusion, create.CompletedAt, create.Output = "in_progress", "", nil, nil
		}
		if err := retry(ctx, func(ctx context.Context) (err error) {
			id, err = s.gh.api.CreateCheckRun(ctx, r.Repo, create)
			return err
		}); err != nil {
			return err
		}
		if cr.Status != "completed" {
			s.gh.mu.Lock()
			s.gh.checkRuns[r.ID] = id
			s.gh.mu.Unlock()
			return nil
		}
	}
	update := func(ctx context.Context) error { return s.gh.api.UpdateCheckRun(ctx, r.Repo, id, cr) }
	var err error
	if cr.Output != nil && len(cr.Output.Annotations) > ghapi.MaxAnnotations {
		// Sent over several requests: GitHub appends each one's
		// annotations, so a retry would repeat those already taken.
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		err = update(actx)
		cancel()
	} else {
		err = retry(ctx, update)
	}
	s.gh.mu.Lock()
	if cr.Status == "completed" {
		delete(s.gh.checkRuns, r.ID)
	} else {
		s.gh.checkRuns[r.ID] = id
	}
	s.gh.mu.Unlock()
	return err
}

// CheckGitHub verifies the GitHub App's id and key by asking GitHub who the
// App is (GET /app): an error means GitHub refused them (ghapi.IsUnauthorized)
// — mc serve stops rather than run without reporting. GitHub unreachable
// is only logged: the reports wait for it, the builds do not.
func (s *Server) CheckGitHub(ctx context.Context) error {
	if s.gh == nil || !s.gh.api.IsApp() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	app, err := s.gh.api.GetApp(ctx)
	var ge *ghapi.Error
	switch {
	case err == nil:
		s.logf("GitHub App %q (id %d): check runs with annotations", app.Slug, app.ID)
		return nil
	case errors.As(err, &ge) && ge.StatusCode/100 == 4:
		return fmt.Errorf("GitHub refused the App's credentials (is --github-app-id %d the App whose private key --github-app-key holds?): %w",
			s.cfg.GitHubAppID, err)
	default:
		s.logf("warning: GitHub could not be asked about the App (%v); reports to GitHub wait for it", err)
		return nil
	}
}
