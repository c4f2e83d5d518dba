package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Every push and pull_request sample of the community's (vendored
// @octokit/webhooks-examples) that names a GitHub App installation gives
// the run's repository that installation: the server's check runs use its
// tokens without looking it up. The expectations are read from the samples
// independently of the server's parsing.
func TestWebhookSamplesInstallation(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, source := range []string{"api.github.com", "ghes-35"} {
		for _, event := range []string{"push", "pull_request"} {
			data, err := os.ReadFile(filepath.Join("testdata", "octokit-webhooks-examples", source+"-"+event+".json"))
			if err != nil {
				t.Fatalf("the vendored samples: %v", err)
			}
			var samples []json.RawMessage
			if err := json.Unmarshal(data, &samples); err != nil {
				t.Fatal(err)
			}
			for i, body := range samples {
				var m map[string]any
				_ = json.Unmarshal(body, &m)
				inst, _ := m["installation"].(map[string]any)
				want, _ := inst["id"].(float64)
				parse := pushRun
				if event == "pull_request" {
					parse = pullRequestRun
				}
				r, err := parse(body)
				if err != nil || r == nil {
					continue // not built (a tag, a closed pull request): nothing to report
				}
				gh, err := newStatusClient(Config{GitHubAppID: 1, GitHubAppKey: key})
				if err != nil {
					t.Fatal(err)
				}
				s := &Server{gh: gh}
				s.noteInstallation(r.Repo, body)
				got, ok := gh.api.Installation(r.Repo)
				if want == 0 {
					if ok {
						t.Errorf("%s %s #%d: no installation in the sample, yet %d recorded", source, event, i, got)
					}
					continue
				}
				if !ok || got != int64(want) || r.Repo != str(m, "repository", "full_name") {
					t.Errorf("%s %s #%d: installation of %s: %d %v, want %v", source, event, i, r.Repo, got, ok, want)
				}
				seen++
			}
		}
	}
	if seen != 10 { // of 7.6.1's 45 samples, 10 are built and name an installation
		t.Errorf("%d built samples named an installation, want 10", seen)
	}
}
