package githubdouble_test

// Tests of the TEST DOUBLE of GitHub's REST API itself: its check runs
// have the shape of GitHub's, as the community's webhook samples show them.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/ghapi"
	"github.com/mc-build/mc/internal/githubdouble"
)

// sampleCheckRuns are the check_run objects of the vendored samples.
func sampleCheckRuns(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "octokit-webhooks-examples", "api.github.com-check_run.json"))
	if err != nil {
		t.Fatalf("the vendored samples: %v", err)
	}
	var payloads []map[string]any
	if err := json.Unmarshal(b, &payloads); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, p := range payloads {
		cr, ok := p["check_run"].(map[string]any)
		if !ok {
			t.Fatalf("a check_run sample without check_run: %v", p["action"])
		}
		out = append(out, cr)
	}
	if len(out) != 9 { // the package's count (7.6.1): all were read
		t.Fatalf("%d check_run samples, want 9", len(out))
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The fields mc sends to create and update a check run (ghapi.CheckRun,
// all set) are fields of GitHub's check runs in every sample (annotations
// excepted: GitHub takes them in output but shows only their count), and
// the double's replies use GitHub's field names and nesting
// (annotations_count inside output).
func TestCheckRunShapeOfSamples(t *testing.T) {
	samples := sampleCheckRuns(t)
	now := time.Now().UTC().Truncate(time.Second)
	full := ghapi.CheckRun{Name: "mc", HeadSHA: strings.Repeat("a", 40), DetailsURL: "http://ci/runs/1", ExternalID: "1",
		Status: "completed", Conclusion: "failure", StartedAt: &now, CompletedAt: &now,
		Output: &ghapi.Output{Title: "t", Summary: "s", Text: "x",
			Annotations: []ghapi.Annotation{{Path: "a/BUILD.mc", StartLine: 1, EndLine: 1, Level: "failure", Message: "m"}}}}
	b, _ := json.Marshal(full)
	var sent map[string]any
	_ = json.Unmarshal(b, &sent)

	d := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"app-ish": true}})
	defer d.Close()
	c, err := ghapi.New(d.URL, ghapi.Options{Token: "app-ish"})
	if err != nil {
		t.Fatal(err)
	}
	create := full
	create.Output = &ghapi.Output{Title: "t", Summary: "s"}
	id, err := c.CreateCheckRun(context.Background(), "acme/mono", create)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateCheckRun(context.Background(), "acme/mono", id, full); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/repos/acme/mono/commits/"+full.HeadSHA+"/check-runs?check_name=mc", nil)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", ghapi.APIVersion)
	req.Header.Set("Authorization", "Bearer app-ish")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		CheckRuns []map[string]any `json:"check_runs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.CheckRuns) != 1 {
		t.Fatalf("list: %v %v", err, list)
	}
	reply := list.CheckRuns[0]

	// GitHub leaves out empty fields in some samples: the fields of its
	// check runs are those of any sample.
	var sk, so []string
	for _, s := range samples {
		for _, k := range keys(s) {
			if !slices.Contains(sk, k) {
				sk = append(sk, k)
			}
		}
		for _, k := range keys(s["output"].(map[string]any)) {
			if !slices.Contains(so, k) {
				so = append(so, k)
			}
		}
	}
	for _, k := range keys(sent) {
		if !slices.Contains(sk, k) {
			t.Errorf("mc sends %q, which GitHub's check runs lack (%v)", k, sk)
		}
	}
	for _, k := range keys(sent["output"].(map[string]any)) {
		if k != "annotations" && !slices.Contains(so, k) {
			t.Errorf("mc sends output.%s, which GitHub's check runs lack (%v)", k, so)
		}
	}
	for _, k := range keys(reply) {
		if !slices.Contains(sk, k) {
			t.Errorf("the double's check run has %q, which GitHub's lack (%v)", k, sk)
		}
	}
	for _, k := range keys(reply["output"].(map[string]any)) {
		if !slices.Contains(so, k) {
			t.Errorf("the double's check run has output.%s, which GitHub's lack (%v)", k, so)
		}
	}
	if o := reply["output"].(map[string]any); o["annotations_count"] != 1.0 || o["title"] != "t" || reply["conclusion"] != "failure" {
		t.Errorf("the double's check run: %v", reply)
	}
}
