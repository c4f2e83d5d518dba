package server

// These tests report to internal/githubdouble, a TEST DOUBLE of GitHub's
// REST API (GitHub itself is not reachable from the test machine); the
// builds are the fake mc of helpers_test.go.

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/githubdouble"
)

// appDouble is the double with GitHub App 42 installed (installation 7) on
// acme/mono, and the server option authenticating as that App.
func appDouble(t *testing.T) (*githubdouble.Double, serverOpt) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := githubdouble.New(githubdouble.Options{AppID: 42, AppKey: &key.PublicKey,
		Installations: map[string]int64{"acme/mono": 7}})
	t.Cleanup(d.Close)
	return d, func(c *Config) {
		c.GitHubAppID, c.GitHubAppKey, c.GitHubAPI = 42, key, d.URL+"/api/v3/"
	}
}

// waitCheck waits until the double holds n check runs and the last one is
// completed.
func waitCheck(t *testing.T, d *githubdouble.Double, n int) githubdouble.CheckRun {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs := d.CheckRuns()
		if len(runs) == n && runs[n-1].Fields["status"] == "completed" {
			return runs[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("check runs: %+v, want %d, the last completed", runs, n)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func withInstallation(p map[string]any, id int64) map[string]any {
	p["installation"] = map[string]any{"id": id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNw=="}
	return p
}

// Test double of GitHub (githubdouble). As a GitHub App (JWT, then an
// installation token for the installation the webhook names): a failing
// push is one check run, queued → in progress → completed failure, with a
// summary and an annotation at the failed stage's BUILD.mc line quoting
// its last log lines; an evaluation error is annotated at its
// file:line:col. No commit status is sent.
func TestServeCheckRunsAsApp(t *testing.T) {
	d, app := appDouble(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, app)
	sha := repo.commit("breaks b")
	ts.touch("fail-" + sha)
	id := ts.accept("push", "ck-1", withInstallation(pushPayloadFor(repo, "topic", sha), 7))
	ts.waitRun(id, StatusFailure)
	cr := waitCheck(t, d, 1)
	if cr.Repo != "acme/mono" || cr.Fields["head_sha"] != sha || cr.Fields["name"] != "mc" || cr.Fields["conclusion"] != "failure" ||
		cr.Fields["details_url"] != fmt.Sprintf("%s/runs/%d", ts.http.URL, id) || cr.Fields["external_id"] != fmt.Sprint(id) {
		t.Errorf("check run fields: %v", cr.Fields)
	}
	out := cr.Fields["output"].(map[string]any)
	summary, _ := out["summary"].(string)
	for _, want := range []string{"**failure**", "| 0 | 1 | 1 | 1 | 50% |", fmt.Sprintf("[run %d](%s/runs/%d)", id, ts.http.URL, id), "Failed: `//b:b`"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if len(cr.Annotations) != 1 {
		t.Fatalf("annotations: %v", cr.Annotations)
	}
	a := cr.Annotations[0]
	msg, _ := a["message"].(string)
	if a["path"] != "b/BUILD.mc" || a["start_line"] != 4.0 || a["end_line"] != 4.0 || a["annotation_level"] != "failure" ||
		!strings.Contains(msg, "compiling <b> & more\nsecond line of b\nexit status 2") || strings.Contains(msg, "\x1b") {
		t.Errorf("annotation: %v", a)
	}
	var seq []string
	for _, r := range d.Requests() {
		seq = append(seq, r.Method+" "+r.Path+" "+r.Auth)
	}
	want := []string{
		"POST /app/installations/7/access_tokens jwt",
		"POST /repos/acme/mono/check-runs installation:7",
		fmt.Sprintf("PATCH /repos/acme/mono/check-runs/%v installation:7", cr.ID),
		fmt.Sprintf("PATCH /repos/acme/mono/check-runs/%v installation:7", cr.ID),
	}
	if strings.Join(seq, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(seq, "\n"), strings.Join(want, "\n"))
	}
	if st := d.Statuses(); len(st) != 0 {
		t.Errorf("commit statuses sent besides the check run: %v", st)
	}

	// An evaluation error: no stage ran, the error's position is annotated.
	// This webhook names no installation: the server looks it up.
	sha2 := repo.commit("bad BUILD file")
	ts.touch("evalerr-" + sha2)
	id2 := ts.accept("push", "ck-2", pushPayloadFor(repo, "topic", sha2))
	ts.waitRun(id2, StatusFailure)
	cr2 := waitCheck(t, d, 2)
	if len(cr2.Annotations) != 1 {
		t.Fatalf("annotations of the evaluation error: %v", cr2.Annotations)
	}
	a = cr2.Annotations[0]
	if a["path"] != "a/BUILD.mc" || a["start_line"] != 2.0 || a["start_column"] != 27.0 || a["message"] != "unknown binary op: int + string" {
		t.Errorf("evaluation error annotation: %v", a)
	}
	if o := cr2.Fields["output"].(map[string]any); !strings.Contains(o["summary"].(string), "bad BUILD files") {
		t.Errorf("summary: %v", o["summary"])
	}
}

// Test double of GitHub (githubdouble). A token GitHub refuses check runs
// (403, as for a personal access token) gets commit statuses: for that
// repository from then on, said once in the log. The positive control: a
// token allowed check runs gets a check run and no status.
func TestServeChecksFallBackToStatuses(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		t.Run(fmt.Sprintf("checks allowed %v", allowed), func(t *testing.T) {
			d := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"gh-token": allowed}})
			defer d.Close()
			repo := newTestRepo(t)
			log := &syncWriter{w: &strings.Builder{}}
			ts := startServer(t, filepath.Join(t.TempDir(), "data"), &statusDouble{Double: d, srv: d.Server},
				func(c *Config) { c.Log = log })
			var shas []string
			for i := range 2 {
				sha := repo.commit(fmt.Sprint("change ", i))
				shas = append(shas, sha)
				id := ts.accept("push", fmt.Sprint("fb-", i), pushPayloadFor(repo, "topic", sha))
				ts.waitRun(id, StatusSuccess)
			}
			posts := func() int {
				n := 0
				for _, r := range d.Requests() {
					if r.Method == "POST" && strings.HasSuffix(r.Path, "/check-runs") {
						n++
					}
				}
				return n
			}
			if !allowed {
				for _, sha := range shas {
					(&statusDouble{Double: d}).waitStates(t, sha, "pending", "pending", "success")
				}
				if posts := posts(); posts != 1 {
					t.Errorf("check run attempts: %d, want 1 (then statuses only)", posts)
				}
				ts.stop()
				if n := strings.Count(log.String(), "GitHub refused check runs on acme/mono"); n != 1 {
					t.Errorf("the fallback was logged %d times:\n%s", n, log.String())
				}
				return
			}
			waitCheck(t, d, 2)
			if posts := posts(); posts != 2 || len(d.Statuses()) != 0 {
				t.Errorf("with the checks permission: %d check runs created, %d statuses", posts, len(d.Statuses()))
			}
		})
	}
}

// syncWriter is a Writer safe for the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprint(w.w)
}

// Test double of GitHub (githubdouble). A run in progress when the server
// stops has its check run completed (cancelled) as the server stops, and
// the restarted server does not report it again. (After a crash, the next
// server finds the check run by its external id: cmd/mc's
// TestServeCheckRunAfterCrash.)
func TestServeCheckRunOnStop(t *testing.T) {
	d, app := appDouble(t)
	repo := newTestRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	ts := startServer(t, data, nil, app, gated)
	sha := repo.commit("slow")
	id := ts.accept("push", "rs-1", withInstallation(pushPayloadFor(repo, "topic", sha), 7))
	ts.waitFile("started-" + sha)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if runs := d.CheckRuns(); len(runs) == 1 && runs[0].Fields["status"] == "in_progress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check run in progress: %+v", d.CheckRuns())
		}
		time.Sleep(30 * time.Millisecond)
	}
	ts.stop()
	cr := waitCheck(t, d, 1)
	if cr.Fields["conclusion"] != "cancelled" || cr.Fields["external_id"] != fmt.Sprint(id) || cr.Updates != 2 {
		t.Errorf("check run after the stop: %v (%d updates)", cr.Fields, cr.Updates)
	}
	ts2 := startServer(t, data, nil, app, gated)
	if r := ts2.run(id); r.Status != StatusInterrupted {
		t.Fatalf("run after the restart: %s", r.Status)
	}
	ts2.stop()
	if n := len(d.Requests()); n != 4 { // token, create, in progress, completed
		t.Errorf("%d requests: the restarted server reported again: %+v", n, d.Requests())
	}
}

// A log cannot end the code block quoting it in the check run's text and
// add Markdown of its own (a pull request's build writes its logs).
func TestCodeBlockHoldsLogs(t *testing.T) {
	log := "ok\n```\n[sign in again](https://evil.example)\n`````x"
	got := codeBlock(log)
	if !strings.HasPrefix(got, "``````\n"+log+"\n``````\n") {
		t.Errorf("code block:\n%s", got)
	}
	if got := codeBlock("plain"); got != "```\nplain\n```\n" {
		t.Errorf("code block of a plain log: %q", got)
	}
}
