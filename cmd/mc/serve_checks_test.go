package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/githubdouble"
)

// GitHub Checks with the real mc behind mc serve, authenticated as a
// GitHub App (--github-app-id, --github-app-key) to internal/githubdouble,
// a TEST DOUBLE of GitHub's REST API (GitHub is not reachable from the
// test machine) that verifies the App's JWTs with its public key and
// issues installation tokens. A push with a failing stage and one with a
// bad BUILD file each get a check run with annotations at the lines of
// the BUILD files; bad App keys stop mc serve.

func writeKey(t *testing.T, dir, name string, key *rsa.PrivateKey) string {
	t.Helper()
	p := filepath.Join(dir, name)
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad App credentials stop mc serve with the reason (exit 2): a key file
// that is not a key, an id without a key, a token as well as an App, and
// a well-formed key that is not the App's (refused by the double, which
// verifies the JWT's signature; the positive control is the test below,
// where the App's own key starts the server).
func TestServeGitHubAppBadKey(t *testing.T) {
	if _, err := os.Stat("/usr/bin/bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	appKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gh := githubdouble.New(githubdouble.Options{AppID: 42, AppKey: &appKey.PublicKey})
	defer gh.Close()
	garbage := filepath.Join(root, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := writeKey(t, root, "wrong.pem", otherKey)
	base := []string{"MC_WEBHOOK_SECRET=" + serveSecret, "MC_GITHUB_API=" + gh.URL, "HOME=" + root,
		"XDG_CACHE_HOME=" + filepath.Join(root, "cache")}
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  string
	}{
		{"not a key", nil, []string{"--github-app-id=42", "--github-app-key=" + garbage}, "--github-app-key " + garbage + ": not a PEM file"},
		{"missing key file", nil, []string{"--github-app-id=42", "--github-app-key=" + filepath.Join(root, "nope.pem")}, "no such file"},
		{"id without key", nil, []string{"--github-app-id=42"}, "--github-app-id needs --github-app-key"},
		{"key without id", nil, []string{"--github-app-key=" + wrong}, "--github-app-key needs --github-app-id"},
		{"token and App", []string{"MC_GITHUB_TOKEN=t"}, []string{"--github-app-id=42", "--github-app-key=" + wrong}, "give one way"},
		{"another key", nil, []string{"--github-app-id=42", "--github-app-key=" + wrong}, "GitHub refused the App's credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data")}, tc.flags...)
			cmd := mcCmd(t, root, append(append([]string{}, base...), tc.env...), args...)
			done := make(chan struct{})
			var out []byte
			go func() { out, _ = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("mc serve did not stop")
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 2 and %q", code, out, tc.want)
			}
		})
	}
}

func TestServeChecksEndToEnd(t *testing.T) {
	if _, err := os.Stat("/usr/bin/bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Installation tokens live 5 minutes and 2 seconds: mc serve renews a
	// token with less than 5 minutes left, so the reports of the second
	// push (3 s after the first) need a new one.
	gh := githubdouble.New(githubdouble.Options{AppID: 42, AppKey: &key.PublicKey,
		Installations: map[string]int64{"acme/mono": 7}, TokenTTL: 5*time.Minute + 2*time.Second})
	defer gh.Close()
	keyFile := writeKey(t, root, "app.pem", key)

	work := filepath.Join(root, "work")
	bare := filepath.Join(root, "mono.git")
	writeFiles(t, work, map[string]string{
		"WORKSPACE.mc": `workspace(name = "mono")` + "\n",
		"a/BUILD.mc":   `stage(name = "a", cmd = "echo built a > a.out", outs = ["a.out"])` + "\n",
		"b/BUILD.mc": "# b fails, saying why on both its outputs\n" +
			`stage(name = "b", deps = ["//a"], cmd = "echo step one; echo 'boom: the widget is broken' >&2; exit 3", test = True)` + "\n",
	})
	gitIn(t, work, "init", "-q", "-b", "main")
	gitIn(t, work, "add", "-A")
	gitIn(t, work, "commit", "-q", "-m", "base")
	gitIn(t, root, "init", "-q", "--bare", bare)
	gitIn(t, work, "push", "-q", bare, "main")
	failing := gitIn(t, work, "rev-parse", "HEAD")
	repo := map[string]any{"full_name": "acme/mono", "clone_url": "file://" + bare, "default_branch": "main"}

	env := []string{"MC_WEBHOOK_SECRET=" + serveSecret, "MC_GITHUB_API=" + gh.URL,
		"XDG_CACHE_HOME=" + filepath.Join(root, "cache"), "HOME=" + root}
	srv := startServe(t, filepath.Join(root, "data"), env, "--github-app-id=42", "--github-app-key="+keyFile)
	tokenAt := time.Now()

	// The webhook names the App's installation, as GitHub's do.
	id1 := srv.hook("push", "c-1", map[string]any{"ref": "refs/heads/topic", "after": failing, "repository": repo,
		"installation": map[string]any{"id": 7}})
	if r := srv.wait(id1, "success", "failure", "error"); r.Status != "failure" {
		t.Fatalf("run with a failing stage: %s %s\n%s", r.Status, r.Reason, srv.logs.String())
	}
	cr := waitCheckRun(t, gh, 1)
	if cr.Fields["head_sha"] != failing || cr.Fields["conclusion"] != "failure" || cr.Fields["details_url"] != fmt.Sprintf("%s/runs/%d", srv.url, id1) {
		t.Errorf("check run: %v", cr.Fields)
	}
	summary := cr.Fields["output"].(map[string]any)["summary"].(string)
	for _, want := range []string{"**failure**", "| 1 | 0 | 1 | 0 | 0% |", "Failed: `//b:b`", fmt.Sprintf("(%s/runs/%d)", srv.url, id1), "Critical path"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if len(cr.Annotations) != 1 {
		t.Fatalf("annotations: %v", cr.Annotations)
	}
	a := cr.Annotations[0]
	msg, _ := a["message"].(string)
	if a["path"] != "b/BUILD.mc" || a["start_line"] != 2.0 || a["annotation_level"] != "failure" ||
		!strings.Contains(msg, "step one") || !strings.Contains(msg, "boom: the widget is broken") {
		t.Errorf("annotation of the failed stage: %v", a)
	}

	// A bad BUILD file: the evaluation error at its file:line:col.
	writeFiles(t, work, map[string]string{"a/BUILD.mc": "# a\n" + `stage(name = "a", cmd = 1 + "x")` + "\n"})
	gitIn(t, work, "commit", "-q", "-am", "break a")
	bad := gitIn(t, work, "rev-parse", "HEAD")
	gitIn(t, work, "push", "-q", bare, "HEAD:topic")
	time.Sleep(time.Until(tokenAt.Add(3 * time.Second))) // the first token is due for renewal
	id2 := srv.hook("push", "c-2", map[string]any{"ref": "refs/heads/topic", "after": bad, "repository": repo,
		"installation": map[string]any{"id": 7}})
	if r := srv.wait(id2, "success", "failure", "error"); r.Status != "failure" {
		t.Fatalf("run with a bad BUILD file: %s %s", r.Status, r.Reason)
	}
	cr2 := waitCheckRun(t, gh, 2)
	if len(cr2.Annotations) != 1 {
		t.Fatalf("annotations of the evaluation error: %v\n%s", cr2.Annotations, get(t, fmt.Sprintf("%s/runs/%d/log", srv.url, id2)))
	}
	a = cr2.Annotations[0]
	if a["path"] != "a/BUILD.mc" || a["start_line"] != 2.0 || a["start_column"] == nil || !strings.Contains(a["message"].(string), "unknown binary op") {
		t.Errorf("annotation of the evaluation error: %v", a)
	}

	// The App flow: the startup check and the installation tokens with
	// the App's JWT; everything on the repository with an installation
	// token; a renewed token for the second push; nothing refused.
	tokens := 0
	for _, r := range gh.Requests() {
		switch {
		case r.Code/100 != 2:
			t.Errorf("refused: %s %s (%s): %d", r.Method, r.Path, r.Auth, r.Code)
		case r.Path == "/app" || strings.HasSuffix(r.Path, "/access_tokens"):
			if r.Auth != "jwt" {
				t.Errorf("%s %s authenticated as %s", r.Method, r.Path, r.Auth)
			}
			if strings.HasSuffix(r.Path, "/access_tokens") {
				tokens++
			}
		case strings.HasPrefix(r.Path, "/repos/acme/mono/"):
			if r.Auth != "installation:7" {
				t.Errorf("%s %s authenticated as %s", r.Method, r.Path, r.Auth)
			}
		}
	}
	// The exact number depends on how long the builds take (each report
	// 2 s after the last token renews it); the caching itself is tested in
	// package ghapi on a clock of its own.
	if tokens < 2 {
		t.Errorf("installation tokens requested: %d, want a renewal", tokens)
	}
	if len(gh.Statuses()) != 0 {
		t.Errorf("commit statuses besides check runs: %v", gh.Statuses())
	}
}

// waitCheckRun waits until the double holds n check runs, the last one
// completed.
func waitCheckRun(t *testing.T, d *githubdouble.Double, n int) githubdouble.CheckRun {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs := d.CheckRuns()
		if len(runs) == n && runs[n-1].Fields["status"] == "completed" {
			return runs[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("check runs: %+v, want %d, the last completed", runs, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The server dies (SIGKILL) while a run is in progress: the restarted
// server marks the run interrupted and completes its check run
// (cancelled), which it finds on GitHub (the double) by its external id,
// rather than leaving it in progress for ever or creating a second one.
func TestServeCheckRunAfterCrash(t *testing.T) {
	if _, err := os.Stat("/usr/bin/bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gh := githubdouble.New(githubdouble.Options{AppID: 42, AppKey: &key.PublicKey, Installations: map[string]int64{"acme/mono": 7}})
	defer gh.Close()
	keyFile := writeKey(t, root, "app.pem", key)
	work := filepath.Join(root, "work")
	bare := filepath.Join(root, "mono.git")
	writeFiles(t, work, map[string]string{
		"WORKSPACE.mc": `workspace(name = "mono")` + "\n",
		"w/BUILD.mc":   `stage(name = "w", cmd = "echo waiting; sleep 120", test = True)` + "\n",
	})
	gitIn(t, work, "init", "-q", "-b", "main")
	gitIn(t, work, "add", "-A")
	gitIn(t, work, "commit", "-q", "-m", "slow")
	gitIn(t, root, "init", "-q", "--bare", bare)
	gitIn(t, work, "push", "-q", bare, "main")
	sha := gitIn(t, work, "rev-parse", "HEAD")
	repo := map[string]any{"full_name": "acme/mono", "clone_url": "file://" + bare, "default_branch": "main"}
	env := []string{"MC_WEBHOOK_SECRET=" + serveSecret, "MC_GITHUB_API=" + gh.URL,
		"XDG_CACHE_HOME=" + filepath.Join(root, "cache"), "HOME=" + root}
	data := filepath.Join(root, "data")
	flags := []string{"--github-app-id=42", "--github-app-key=" + keyFile}
	srv := startServe(t, data, env, flags...)
	id := srv.hook("push", "k-1", map[string]any{"ref": "refs/heads/topic", "after": sha, "repository": repo})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(get(t, fmt.Sprintf("%s/runs/%d/log?stage=//w:w", srv.url, id)), "waiting") {
		if time.Now().After(deadline) {
			t.Fatalf("the slow stage did not start:\n%s", srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for len(gh.CheckRuns()) != 1 || gh.CheckRuns()[0].Fields["status"] != "in_progress" {
		if time.Now().After(deadline) {
			t.Fatalf("no check run in progress: %+v", gh.CheckRuns())
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.kill(syscall.SIGKILL)
	srv2 := startServe(t, data, env, flags...)
	if r := srv2.wait(id, "interrupted"); r.Status != "interrupted" {
		t.Fatalf("run: %s", r.Status)
	}
	cr := waitCheckRun(t, gh, 1)
	if cr.Fields["conclusion"] != "cancelled" || cr.Fields["external_id"] != fmt.Sprint(id) {
		t.Errorf("check run after the crash: %v", cr.Fields)
	}
	looked := false
	for _, r := range gh.Requests() {
		looked = looked || (r.Method == "GET" && r.Path == "/repos/acme/mono/commits/"+sha+"/check-runs" && r.Code == 200)
	}
	if !looked {
		t.Errorf("the restarted server did not look its check run up")
	}
}
