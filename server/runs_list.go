package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runsPerPage is the length of a page of the runs list.
const runsPerPage = 50

// annotateRun adds what the webhook payload says of r besides the build:
// a push's head commit message and author, a pull request's title and
// author. Payloads without them leave the fields empty.
func annotateRun(r *Run, event string, body []byte) {
	if r == nil {
		return
	}
	switch event {
	case "push":
		var p struct {
			HeadCommit struct {
				Message string `json:"message"`
				Author  struct {
					Name     string `json:"name"`
					Username string `json:"username"`
				} `json:"author"`
			} `json:"head_commit"`
			Sender struct {
				Login string `json:"login"`
			} `json:"sender"`
		}
		if json.Unmarshal(body, &p) != nil {
			return
		}
		r.Message = firstLine(p.HeadCommit.Message)
		r.Author = p.HeadCommit.Author.Name
		if r.Author == "" {
			r.Author = p.HeadCommit.Author.Username
		}
		if r.Author == "" {
			r.Author = p.Sender.Login
		}
	case "pull_request":
		var p struct {
			PullRequest struct {
				Title string `json:"title"`
				User  struct {
					Login string `json:"login"`
				} `json:"user"`
			} `json:"pull_request"`
		}
		if json.Unmarshal(body, &p) != nil {
			return
		}
		r.PRTitle = firstLine(p.PullRequest.Title)
		r.Author = p.PullRequest.User.Login
	}
}

// firstLine is the first line of a message, at most 200 characters.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:199]) + "…"
	}
	return s
}

// parseRunFilter reads the list's query parameters: repo, branch, status,
// before or after (run ids).
func parseRunFilter(q url.Values) (runFilter, error) {
	f := runFilter{Repo: q.Get("repo"), Branch: q.Get("branch"), Status: q.Get("status"), Limit: runsPerPage}
	if f.Status != "" && !slices.Contains(runStatuses, f.Status) {
		return f, fmt.Errorf("unknown status %q (one of %s)", f.Status, strings.Join(runStatuses, ", "))
	}
	for _, p := range []struct {
		name string
		v    *int64
	}{{"before", &f.Before}, {"after", &f.After}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return f, fmt.Errorf("%s=%q: not a run id", p.name, s)
			}
			*p.v = n
		}
	}
	if f.Before > 0 && f.After > 0 {
		return f, fmt.Errorf("before and after: one at a time")
	}
	return f, nil
}

// link is the list's URL with the filter f (and a page key).
func (f runFilter) link(before, after int64) string {
	q := url.Values{}
	for k, v := range map[string]string{"repo": f.Repo, "branch": f.Branch, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if len(q) == 0 {
		return "/"
	}
	return "/?" + q.Encode()
}

// with is f with one filter set (or cleared with ""), from the first page.
func (f runFilter) with(key, v string) runFilter {
	g := runFilter{Repo: f.Repo, Branch: f.Branch, Status: f.Status}
	switch key {
	case "repo":
		g.Repo = v
	case "branch":
		g.Branch = v
	case "status":
		g.Status = v
	}
	return g
}

// listRow is a run as the list shows it.
type listRow struct {
	*Run
	Trigger    string // push, pull request, manual rerun, CLI report
	Ago        string // relative start time
	At         string // absolute, for the title
	Hit        string
	RepoLink   string
	BranchLink string
	StatusLink string
	Actions    runActions
}

// activeFilter is a filter in force, with the link that drops it.
type activeFilter struct{ Name, Value, Clear string }

func triggerLabel(r *Run) string {
	switch {
	case r.RerunOf != 0:
		return "manual rerun"
	case r.Trigger == TriggerPullRequest:
		return "pull request"
	case r.Trigger == TriggerCLI:
		return "CLI report"
	}
	return r.Trigger
}

// ago says how long before now t was, as a person would.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "not started"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 45*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return t.UTC().Format("2 Jan 2006")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// pageRuns is GET /: the runs, newest first, filtered and paged.
func (s *Server) pageRuns(w http.ResponseWriter, req *http.Request) {
	f, err := parseRunFilter(req.URL.Query())
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := req.Context()
	page, err := s.st.listRunsPage(ctx, f)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	repoChoices, err := s.st.filterValues(ctx, "repo", 100)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	branchChoices, err := s.st.filterValues(ctx, "branch", 200)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ss := s.sessionOf(req)
	now := s.cfg.Now()
	self := f.link(f.Before, f.After)
	rows := make([]listRow, 0, len(page.Runs))
	for _, r := range page.Runs {
		row := listRow{Run: r, Trigger: triggerLabel(r), Ago: ago(now, r.Started), Hit: "–",
			RepoLink: f.with("repo", r.Repo).link(0, 0), BranchLink: f.with("branch", r.Branch).link(0, 0),
			StatusLink: f.with("status", r.Status).link(0, 0), Actions: actionsFor(ss, r, self)}
		if r.Started.IsZero() {
			row.Ago = "queued " + ago(now, r.Created)
		}
		if t := r.Started; !t.IsZero() {
			row.At = t.UTC().Format("2006-01-02 15:04:05 UTC")
		} else {
			row.At = "queued " + r.Created.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		if p := r.CacheHitPercent(); p >= 0 {
			row.Hit = strconv.Itoa(p) + "%"
		}
		rows = append(rows, row)
	}
	var active []activeFilter
	for _, a := range []activeFilter{{"repository", f.Repo, "repo"}, {"branch", f.Branch, "branch"}, {"status", f.Status, "status"}} {
		if a.Value != "" {
			active = append(active, activeFilter{a.Name, a.Value, f.with(a.Clear, "").link(0, 0)})
		}
	}
	data := map[string]any{
		"Rows": rows, "Filter": f, "Active": active, "Repos": repoChoices, "Branches": branchChoices,
		"Statuses": runStatuses, "Session": ss, "SignIn": s.cfg.AuthToken != "" || s.auth.oauth.ClientID != "",
		"Self": self,
	}
	if page.Older && len(page.Runs) > 0 {
		data["Older"] = f.link(page.Runs[len(page.Runs)-1].ID, 0)
	} else if page.Older {
		data["Older"] = f.link(0, 0)
	}
	if page.Newer && len(page.Runs) > 0 {
		data["Newer"] = f.link(0, page.Runs[0].ID)
	} else if page.Newer {
		data["Newer"] = f.link(0, 0)
	}
	// The page differs per viewer (buttons, their CSRF token): no cache
	// may keep it.
	w.Header().Set("Cache-Control", "private, no-store")
	s.render(w, "runs.html", data)
}
