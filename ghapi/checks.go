package ghapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// MaxAnnotations is how many annotations GitHub takes in one request; more
// are sent over further updates of the check run (GitHub appends them).
const MaxAnnotations = 50

// Limits of GitHub's check run fields (characters).
const (
	maxOutputText     = 65535
	maxAnnotationText = 64 << 10
)

// CheckRun is what is sent to create or update a check run. Empty fields
// are left out (an update changes only what it names).
type CheckRun struct {
	Name        string     `json:"name,omitempty"`
	HeadSHA     string     `json:"head_sha,omitempty"`
	DetailsURL  string     `json:"details_url,omitempty"`
	ExternalID  string     `json:"external_id,omitempty"`
	Status      string     `json:"status,omitempty"`     // queued, in_progress, completed
	Conclusion  string     `json:"conclusion,omitempty"` // with completed: success, failure, cancelled, neutral, ...
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Output      *Output    `json:"output,omitempty"`
}

// Output is a check run's report. Title and Summary are required whenever
// an output is sent.
type Output struct {
	Title       string       `json:"title"`
	Summary     string       `json:"summary"`
	Text        string       `json:"text,omitempty"`
	Annotations []Annotation `json:"annotations,omitempty"`
}

// Annotation points at lines of a file of the repository.
type Annotation struct {
	Path      string `json:"path"` // relative to the repository's root
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	// StartColumn and EndColumn only when on one line.
	StartColumn int    `json:"start_column,omitempty"`
	EndColumn   int    `json:"end_column,omitempty"`
	Level       string `json:"annotation_level"` // notice, warning, failure
	Message     string `json:"message"`
	Title       string `json:"title,omitempty"`
	RawDetails  string `json:"raw_details,omitempty"`
}

// CreateCheckRun creates a check run on repo and returns its id. At most
// MaxAnnotations annotations go with it; use UpdateCheckRun for more.
func (c *Client) CreateCheckRun(ctx context.Context, repo string, cr CheckRun) (int64, error) {
	p, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	if cr.Name == "" || cr.HeadSHA == "" {
		return 0, fmt.Errorf("ghapi: a check run needs a name and a head SHA")
	}
	first, rest := splitAnnotations(cr.Output)
	if len(rest) > 0 {
		return 0, fmt.Errorf("ghapi: %d annotations: create with at most %d, then update", len(first)+len(rest), MaxAnnotations)
	}
	cr.Output = clampOutput(cr.Output)
	var got struct {
		ID int64 `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "repos/"+p+"/check-runs", credRepo, repo, cr, &got); err != nil {
		return 0, err
	}
	if got.ID == 0 {
		return 0, fmt.Errorf("ghapi: POST check-runs: no id in the reply")
	}
	return got.ID, nil
}

// UpdateCheckRun updates check run id of repo. Annotations beyond
// MaxAnnotations go in further updates (each repeating the output's title
// and summary, which GitHub requires), the status and conclusion with the
// last of them, so the run reads completed only with all its annotations.
func (c *Client) UpdateCheckRun(ctx context.Context, repo string, id int64, cr CheckRun) error {
	p, err := splitRepo(repo)
	if err != nil {
		return err
	}
	path := "repos/" + p + "/check-runs/" + strconv.FormatInt(id, 10)
	if cr.Output == nil || len(cr.Output.Annotations) <= MaxAnnotations {
		cr.Output = clampOutput(cr.Output)
		return c.do(ctx, http.MethodPatch, path, credRepo, repo, cr, nil)
	}
	all := cr.Output.Annotations
	for i := 0; i < len(all); i += MaxAnnotations {
		out := *cr.Output
		out.Annotations = all[i:min(i+MaxAnnotations, len(all))]
		part := CheckRun{Output: clampOutput(&out)}
		if i+MaxAnnotations >= len(all) {
			part = cr
			part.Output = clampOutput(&out)
		}
		if err := c.do(ctx, http.MethodPatch, path, credRepo, repo, part, nil); err != nil {
			return fmt.Errorf("ghapi: annotations %d-%d of %d: %w", i+1, i+len(out.Annotations), len(all), err)
		}
	}
	return nil
}

// FindCheckRun returns the id of the check run named name on sha of repo
// whose external id is externalID, or 0 if there is none (a server
// restarted during a run finds the check run it had created).
func (c *Client) FindCheckRun(ctx context.Context, repo, sha, name, externalID string) (int64, error) {
	p, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	q := url.Values{"check_name": {name}, "filter": {"all"}, "per_page": {"100"}}
	var got struct {
		CheckRuns []struct {
			ID         int64  `json:"id"`
			ExternalID string `json:"external_id"`
		} `json:"check_runs"`
	}
	if err := c.do(ctx, http.MethodGet, "repos/"+p+"/commits/"+url.PathEscape(sha)+"/check-runs?"+q.Encode(), credRepo, repo, nil, &got); err != nil {
		return 0, err
	}
	for _, r := range got.CheckRuns {
		if r.ExternalID == externalID {
			return r.ID, nil
		}
	}
	return 0, nil
}

func splitAnnotations(o *Output) (first, rest []Annotation) {
	if o == nil {
		return nil, nil
	}
	if len(o.Annotations) <= MaxAnnotations {
		return o.Annotations, nil
	}
	return o.Annotations[:MaxAnnotations], o.Annotations[MaxAnnotations:]
}

// clampOutput cuts the texts to GitHub's limits (a longer one is refused
// as a whole).
func clampOutput(o *Output) *Output {
	if o == nil {
		return nil
	}
	c := *o
	c.Summary, c.Text = clamp(c.Summary, maxOutputText), clamp(c.Text, maxOutputText)
	c.Annotations = make([]Annotation, len(o.Annotations))
	for i, a := range o.Annotations {
		a.Message, a.RawDetails = clamp(a.Message, maxAnnotationText), clamp(a.RawDetails, maxAnnotationText)
		if a.EndLine < a.StartLine {
			a.EndLine = a.StartLine
		}
		if a.StartLine != a.EndLine {
			a.StartColumn, a.EndColumn = 0, 0
		}
		c.Annotations[i] = a
	}
	return &c
}

// clamp keeps the end of s (where a log's failure is) within n runes.
func clamp(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
