package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/githubdouble"
)

// statusDouble is internal/githubdouble, a TEST DOUBLE of GitHub's REST
// API on 127.0.0.1 (GitHub itself is not reachable from the test machine),
// taking the token "gh-token", which may not write check runs (a personal
// access token): the server reports by commit statuses, which it records.
type statusDouble struct {
	*githubdouble.Double
	srv *httptest.Server
}

type receivedStatus = githubdouble.Status

func newStatusDouble(t *testing.T) *statusDouble {
	d := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"gh-token": false}})
	t.Cleanup(d.Close)
	return &statusDouble{Double: d, srv: d.Server}
}

// states lists the states received for sha, in order.
func (d *statusDouble) states(sha string) []receivedStatus {
	var out []receivedStatus
	for _, s := range d.Statuses() {
		if s.SHA == sha {
			out = append(out, s)
		}
	}
	return out
}

// waitStates waits until sha's statuses are exactly want (by state).
func (d *statusDouble) waitStates(t *testing.T, sha string, want ...string) []receivedStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := d.states(sha)
		var states []string
		for _, s := range got {
			states = append(states, s.State)
		}
		if strings.Join(states, ",") == strings.Join(want, ",") {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses of %s: %v, want %v", sha[:8], states, want)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// testRepo is a local bare git repository: the clone URL of the webhooks.
type testRepo struct {
	t    *testing.T
	work string // a clone to commit in
	bare string
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newTestRepo(t *testing.T) *testRepo {
	root := t.TempDir()
	r := &testRepo{t: t, work: filepath.Join(root, "work"), bare: filepath.Join(root, "repo.git")}
	if err := os.MkdirAll(r.work, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, r.work, "init", "-q", "-b", "main")
	r.commit("base")
	git(t, root, "init", "-q", "--bare", r.bare)
	git(t, r.work, "push", "-q", r.bare, "main")
	return r
}

// commit commits a change on the current branch, pushes it (as the
// branch of the same name), and returns the new commit.
func (r *testRepo) commit(msg string) string {
	f := filepath.Join(r.work, "a.txt")
	old, _ := os.ReadFile(f)
	if err := os.WriteFile(f, append(old, msg+"\n"...), 0o644); err != nil {
		r.t.Fatal(err)
	}
	git(r.t, r.work, "add", "-A")
	git(r.t, r.work, "commit", "-q", "-m", msg)
	if _, err := os.Stat(r.bare); err == nil {
		git(r.t, r.work, "push", "-q", "-f", r.bare, "HEAD")
	}
	return git(r.t, r.work, "rev-parse", "HEAD")
}

func (r *testRepo) url() string { return "file://" + r.bare }

// testServer is a Server on an httptest listener with the fake mc.
type testServer struct {
	t       *testing.T
	s       *Server
	http    *httptest.Server
	fakeDir string
	cancel  context.CancelFunc
	done    chan struct{}
}

type serverOpt func(*Config)

// gated makes every fake build wait for its gate file.
func gated(c *Config) { c.Env = append(c.Env, "FAKE_MC_GATE=1") }

func startServer(t *testing.T, dataDir string, gh *statusDouble, opts ...serverOpt) *testServer {
	t.Helper()
	fakeDir := filepath.Join(filepath.Dir(dataDir), "fake")
	if err := os.MkdirAll(fakeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(fakeDir, "mc")
	if err := os.WriteFile(exe, []byte(fakeMC), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: dataDir, WebhookSecret: testSecret, Parallel: 2, CancelSuperseded: true, Exe: exe,
		Env: []string{"FAKE_MC_DIR=" + fakeDir}, AuthToken: testToken, Log: testLog{t}}
	if gh != nil {
		cfg.GitHubToken = "gh-token"
		cfg.GitHubAPI = gh.srv.URL + "/api/v3/"
	}
	for _, o := range opts {
		o(&cfg)
	}
	ts := &testServer{t: t, fakeDir: fakeDir, done: make(chan struct{})}
	ts.http = httptest.NewUnstartedServer(nil)
	ts.http.Start()
	cfg.PublicURL = ts.http.URL
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.s = s
	ts.http.Config.Handler = s.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() {
		defer close(ts.done)
		s.Run(ctx)
	}()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down as mc serve does on SIGTERM.
func (ts *testServer) stop() {
	select {
	case <-ts.done:
		return
	default:
	}
	ts.cancel()
	<-ts.done
	ts.http.CloseClientConnections()
	ts.http.Close()
	ts.s.Close()
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliver posts a webhook; sig "" signs with the test secret, "-" sends no
// signature.
func (ts *testServer) deliver(event, delivery string, payload any, sig string) (int, string) {
	ts.t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		ts.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.http.URL+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	switch sig {
	case "":
		req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
	case "-":
	default:
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pushPayloadFor(repo *testRepo, branch, sha string) map[string]any {
	return map[string]any{
		"ref": "refs/heads/" + branch, "after": sha, "deleted": false,
		"repository": map[string]any{"full_name": "acme/mono", "clone_url": repo.url(), "default_branch": "main"},
	}
}

func prPayloadFor(repo *testRepo, number int, headRef, head, base string) map[string]any {
	r := map[string]any{"full_name": "acme/mono", "clone_url": repo.url(), "default_branch": "main"}
	return map[string]any{
		"action": "opened", "number": number,
		"pull_request": map[string]any{
			"head": map[string]any{"sha": head, "ref": headRef, "repo": r},
			"base": map[string]any{"sha": base, "ref": "main", "repo": r},
		},
		"repository": r,
	}
}

func (ts *testServer) getJSON(path string, v any) {
	ts.t.Helper()
	resp, err := http.Get(ts.http.URL + path)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		ts.t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *testServer) get(path string) string {
	ts.t.Helper()
	resp, err := http.Get(ts.http.URL + path)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		ts.t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

func (ts *testServer) run(id int64) *APIRun {
	ts.t.Helper()
	var r APIRun
	ts.getJSON(fmt.Sprintf("/api/runs/%d", id), &r)
	return &r
}

// waitRun waits until run id has one of the states.
func (ts *testServer) waitRun(id int64, states ...string) *APIRun {
	ts.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := ts.run(id)
		for _, s := range states {
			if r.Status == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("run %d is %s (%s), want %v", id, r.Status, r.Reason, states)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// waitFile waits until the fake mc created name in its directory.
func (ts *testServer) waitFile(name string) {
	ts.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(ts.fakeDir, name)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("%s did not appear", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ts *testServer) touch(name string) {
	if err := os.WriteFile(filepath.Join(ts.fakeDir, name), nil, 0o644); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *testServer) read(name string) string {
	b, err := os.ReadFile(filepath.Join(ts.fakeDir, name))
	if err != nil {
		ts.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// accept delivers a signed webhook that must be accepted, and returns the
// id of the run it queued.
func (ts *testServer) accept(event, delivery string, payload any) int64 {
	t := ts.t
	t.Helper()
	code, body := ts.deliver(event, delivery, payload, "")
	if code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s, want 202", code, body)
	}
	var r struct{ ID int64 }
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.ID == 0 {
		t.Fatalf("webhook reply %q: no run id", body)
	}
	return r.ID
}
