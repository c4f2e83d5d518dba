package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// Real signatures are computed here with the shared secret; forged and
// replayed deliveries start nothing.
func TestServeWebhookSignatures(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := git(t, repo.work, "rev-parse", "HEAD")
	payload := pushPayloadFor(repo, "feature", sha)
	body, _ := json.Marshal(payload)
	other := pushPayloadFor(repo, "feature2", sha)
	for _, tc := range []struct {
		name     string
		sig      string
		delivery string
		want     int
		payload  map[string]any // default payload
	}{
		{"unsigned", "-", "d-1", http.StatusUnauthorized, nil},
		{"signed with another secret", sign("not-the-secret", body), "d-2", http.StatusUnauthorized, nil},
		{"sha1 prefix", strings.Replace(sign(testSecret, body), "sha256=", "sha1=", 1), "d-3", http.StatusUnauthorized, nil},
		{"not hex", "sha256=zz", "d-4", http.StatusUnauthorized, nil},
		{"truncated signature", sign(testSecret, body)[:40], "d-5", http.StatusUnauthorized, nil},
		{"valid", "", "d-6", http.StatusAccepted, nil},
		{"replayed", "", "d-6", http.StatusConflict, nil},
		// The delivery id is not signed: the same signed body under a
		// new id is a replay too.
		{"replayed under a new id", "", "d-8", http.StatusConflict, nil},
		// A forged delivery must not burn an id: the genuine one later works.
		{"genuine after forged id", "", "d-2", http.StatusAccepted, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := payload
			if tc.payload != nil {
				p = tc.payload
			}
			code, msg := ts.deliver("push", tc.delivery, p, tc.sig)
			if code != tc.want {
				t.Fatalf("got %d %q, want %d", code, msg, tc.want)
			}
		})
	}
	var runs []APIRun
	ts.getJSON("/api/runs", &runs)
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2 (only the genuine deliveries start runs)", len(runs))
	}
	// The signature covers the body: a modified body with the old signature fails.
	payload["ref"] = "refs/heads/main"
	req, _ := http.NewRequest(http.MethodPost, ts.http.URL+"/hooks/github", strings.NewReader(string(mustJSON(payload))))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "d-7")
	req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tampered body: %d, want 401", resp.StatusCode)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestServeWebhookWithoutSecretRefusesAll(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) { c.WebhookSecret = "" })
	sha := git(t, repo.work, "rev-parse", "HEAD")
	code, _ := ts.deliver("push", "x-1", pushPayloadFor(repo, "main", sha), sign("", mustJSON(pushPayloadFor(repo, "main", sha))))
	if code != http.StatusUnauthorized {
		t.Fatalf("no secret configured: %d, want 401", code)
	}
}

func TestServeWebhookPayloads(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := git(t, repo.work, "rev-parse", "HEAD")
	for i, tc := range []struct {
		name    string
		event   string
		payload map[string]any
		want    int
	}{
		{"ping", "ping", map[string]any{"zen": "x"}, http.StatusOK},
		{"other event", "issues", map[string]any{}, http.StatusAccepted},
		{"tag push", "push", map[string]any{"ref": "refs/tags/v1", "after": sha, "repository": map[string]any{"clone_url": repo.url()}}, http.StatusAccepted},
		{"branch deleted", "push", map[string]any{"ref": "refs/heads/x", "after": strings.Repeat("0", 40), "deleted": true, "repository": map[string]any{"clone_url": repo.url()}}, http.StatusAccepted},
		{"short sha", "push", pushPayloadFor(repo, "x", sha[:8]), http.StatusBadRequest},
		{"option as sha", "push", pushPayloadFor(repo, "x", "--upload-pack=touch"), http.StatusBadRequest},
		{"bad clone url", "push", map[string]any{"ref": "refs/heads/x", "after": sha, "repository": map[string]any{"clone_url": "ext::sh -c touch% /tmp/pwned"}}, http.StatusBadRequest},
		{"pr closed", "pull_request", map[string]any{"action": "closed"}, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := ts.deliver(tc.event, fmt.Sprint("p-", i), tc.payload, "")
			if code != tc.want {
				t.Fatalf("got %d %q, want %d", code, msg, tc.want)
			}
		})
	}
	var runs []APIRun
	ts.getJSON("/api/runs", &runs)
	if len(runs) != 0 {
		t.Fatalf("%d runs started, want none", len(runs))
	}
}

func TestServeCleanCloneURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://x-access-token:ghs_SECRET@github.com/acme/mono.git", "https://github.com/acme/mono.git"},
		{"https://ghp_SECRET@github.com/acme/mono.git", "https://github.com/acme/mono.git"},
		{"ssh://git@github.com/acme/mono.git", "ssh://git@github.com/acme/mono.git"},
		{"ssh://git:pw@github.com/acme/mono.git", "ssh://git@github.com/acme/mono.git"},
		{"file:///srv/repo.git", "file:///srv/repo.git"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cleanCloneURL(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("cleanCloneURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
