package server

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v84/github"
)

// statusContext is the context of mc's commit statuses (SPEC §6).
const statusContext = "mc"

// statusClient posts commit statuses; nil without a token.
type statusClient struct{ gh *github.Client }

func newStatusClient(api, token string) (*statusClient, error) {
	if token == "" {
		return nil, nil
	}
	c := github.NewClient(nil).WithAuthToken(token)
	if api != "" {
		if !strings.HasSuffix(api, "/") {
			api += "/"
		}
		u, err := url.Parse(api)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("server: GitHub API URL %q: want http(s)://HOST/PATH", api)
		}
		c.BaseURL = u
	}
	return &statusClient{gh: c}, nil
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

// postStatus queues r's state as a commit status on its repository, with a
// link to the run page. One goroutine posts them in order (a slow or
// unreachable GitHub delays neither webhook replies nor builds, and a
// status never overtakes an earlier one).
func (s *Server) postStatus(ctx context.Context, r *Run) {
	if s.gh == nil || r.Trigger == TriggerCLI || r.Repo == "" || r.Commit == "" {
		return
	}
	cp := *r
	select {
	case s.statuses <- &cp:
	default:
		s.logf("run %d: commit status dropped: too many waiting", r.ID)
	}
}

// statusLoop posts the queued statuses until the queue is closed.
func (s *Server) statusLoop() {
	defer close(s.statusDone)
	for r := range s.statuses {
		s.sendStatus(context.Background(), r)
	}
}

// sendStatus posts one status. A failure is logged (GitHub being
// unreachable must not fail a build) after a few attempts.
func (s *Server) sendStatus(ctx context.Context, r *Run) {
	owner, repo, ok := strings.Cut(r.Repo, "/")
	if !ok {
		return
	}
	state, desc := githubState(r)
	if len(desc) > 140 { // GitHub's limit
		desc = desc[:139] + "…"
	}
	target := fmt.Sprintf("%s/runs/%d", s.cfg.PublicURL, r.ID)
	st := github.RepoStatus{State: &state, Description: &desc, TargetURL: &target, Context: github.Ptr(statusContext)}
	var err error
	for attempt := range 3 {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, err = s.gh.gh.Repositories.CreateStatus(actx, owner, repo, r.Commit, st)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	s.logf("run %d: commit status %s: %v", r.ID, state, err)
}
