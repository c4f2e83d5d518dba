package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every push and pull_request payload of the community's samples
// (@octokit/webhooks-examples, vendored in testdata: see its NOTICE.md)
// parses into the run GitHub meant, or into none where nothing is to be
// built; the expectations are read from the sample independently of the
// parser's own structs.
func TestWebhookCommunitySamples(t *testing.T) {
	dir := filepath.Join("testdata", "octokit-webhooks-examples")
	count := map[string]int{}
	for _, source := range []string{"api.github.com", "ghes-35"} {
		for _, event := range []string{"push", "pull_request"} {
			data, err := os.ReadFile(filepath.Join(dir, source+"-"+event+".json"))
			if err != nil {
				t.Fatalf("the vendored samples: %v", err)
			}
			var samples []json.RawMessage
			if err := json.Unmarshal(data, &samples); err != nil {
				t.Fatalf("%s %s: %v", source, event, err)
			}
			for i, body := range samples {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatalf("%s %s #%d: %v", source, event, i, err)
				}
				if event == "push" {
					checkPushSample(t, source, i, body, m)
				} else {
					checkPRSample(t, source, i, body, m)
				}
				count[event]++
			}
		}
	}
	// The package's counts (7.6.1): the test saw them all.
	if count["push"] != 9 || count["pull_request"] != 36 {
		t.Errorf("samples seen: %v, want 9 push and 36 pull_request", count)
	}
}

func str(m any, path ...string) string {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return ""
		}
		m = mm[k]
	}
	s, _ := m.(string)
	return s
}

func checkPushSample(t *testing.T, source string, i int, body []byte, m map[string]any) {
	t.Helper()
	r, err := pushRun(body)
	if err != nil {
		t.Errorf("%s push #%d: %v", source, i, err)
		return
	}
	ref, after := str(m, "ref"), str(m, "after")
	branch, isBranch := strings.CutPrefix(ref, "refs/heads/")
	deleted, _ := m["deleted"].(bool)
	if !isBranch || deleted {
		if r != nil {
			t.Errorf("%s push #%d (%s, deleted %v): a run %+v, want none", source, i, ref, deleted, r)
		}
		return
	}
	def := str(m, "repository", "default_branch")
	want := Run{Trigger: TriggerPush, Repo: str(m, "repository", "full_name"), CloneURL: str(m, "repository", "clone_url"),
		Commit: after, Branch: branch, Deploy: branch == def}
	if r == nil || r.Trigger != want.Trigger || r.Repo != want.Repo || r.CloneURL != want.CloneURL || r.Commit != want.Commit ||
		r.Branch != want.Branch || r.Deploy != want.Deploy {
		t.Errorf("%s push #%d: %+v, want %+v", source, i, r, want)
		return
	}
	if r.Deploy && r.DeployState != DeployWaiting {
		t.Errorf("%s push #%d: deploy state %q, want %q", source, i, r.DeployState, DeployWaiting)
	}
}

func checkPRSample(t *testing.T, source string, i int, body []byte, m map[string]any) {
	t.Helper()
	r, err := pullRequestRun(body)
	if err != nil {
		t.Errorf("%s pull_request #%d: %v", source, i, err)
		return
	}
	switch action := str(m, "action"); action {
	case "opened", "synchronize", "reopened":
	default:
		if r != nil {
			t.Errorf("%s pull_request #%d (%s): a run, want none", source, i, action)
		}
		return
	}
	pr := m["pull_request"]
	num, _ := m["number"].(float64)
	want := Run{Trigger: TriggerPullRequest, Repo: str(m, "repository", "full_name"),
		CloneURL: str(pr, "head", "repo", "clone_url"), BaseURL: str(pr, "base", "repo", "clone_url"),
		Commit: str(pr, "head", "sha"), BaseSHA: str(pr, "base", "sha"), Branch: str(pr, "head", "ref"), PR: int(num)}
	if r == nil || r.Trigger != want.Trigger || r.Repo != want.Repo || r.CloneURL != want.CloneURL || r.BaseURL != want.BaseURL ||
		r.Commit != want.Commit || r.BaseSHA != want.BaseSHA || r.Branch != want.Branch || r.PR != want.PR || r.Deploy {
		t.Errorf("%s pull_request #%d: %+v, want %+v", source, i, r, want)
	}
}
