package server

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// The webhooks here come as GitHub sends them when someone presses Re-run
// on a check (check_run rerequested: the check run's external_id is the
// run's id) or Re-run all checks (check_suite rerequested: the suite's
// commit). The builds are the fake mc of harness_test.go.

func checkRunRerequested(id int64, repo string) map[string]any {
	return map[string]any{"action": "rerequested",
		"check_run":  map[string]any{"external_id": fmt.Sprint(id), "head_sha": strings.Repeat("0", 40)},
		"repository": map[string]any{"full_name": repo}}
}

func checkSuiteRerequested(sha, repo string) map[string]any {
	return map[string]any{"action": "rerequested", "check_suite": map[string]any{"head_sha": sha},
		"repository": map[string]any{"full_name": repo}}
}

// Re-run in GitHub starts a new run of the same commit, linked to the
// original and with its trigger: a pull request's rerun builds untrusted
// again, a push's trusted. A rerequest naming another repository's run,
// another action, or a commit with no run starts nothing.
func TestServeCheckRerequested(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("base")
	ts.touch("gate-" + sha)
	push := ts.accept("push", "r-1", pushPayloadFor(repo, "feature", sha))
	ts.waitRun(push, StatusSuccess)
	prSHA := repo.commit("pull request")
	ts.touch("gate-" + prSHA)
	pr := ts.accept("pull_request", "r-2", prPayloadFor(repo, 7, "feature", prSHA, sha))
	ts.waitRun(pr, StatusSuccess)

	for i, c := range []struct {
		event     string
		payload   map[string]any
		orig      int64
		sha       string
		untrusted bool
	}{
		{"check_run", checkRunRerequested(pr, "acme/mono"), pr, prSHA, true},
		{"check_run", checkRunRerequested(push, "acme/mono"), push, sha, false},
		// The suite's commit: its newest run, the rerun just made.
		{"check_suite", checkSuiteRerequested(prSHA, "acme/mono"), -1, prSHA, true},
	} {
		if c.orig < 0 {
			c.orig = ts.run(pr + 1).ID // the first rerun of this test
			if r := ts.run(c.orig); r.RerunOf != pr {
				t.Fatalf("run %d is not the rerun of %d: %+v", c.orig, pr, r)
			}
		}
		if err := removeFile(ts, "args-"+c.sha); err != nil {
			t.Fatal(err)
		}
		re := ts.accept(c.event, fmt.Sprint("r-re-", i), c.payload)
		r := ts.waitRun(re, StatusSuccess)
		orig := ts.run(c.orig)
		if re == c.orig || r.RerunOf != c.orig || r.Commit != orig.Commit || r.Trigger != orig.Trigger || r.PR != orig.PR {
			t.Errorf("%s rerequested: run %+v, want a rerun of %+v", c.event, r, orig)
		}
		ts.waitFile("args-" + c.sha)
		if args := ts.read("args-" + c.sha); strings.Contains(args, untrustedFlag) != c.untrusted {
			t.Errorf("%s rerequested: rerun of %s run %d built with %q: untrusted should be %v", c.event, orig.Trigger, c.orig, args, c.untrusted)
		}
	}

	n := ts.runCount()
	for i, p := range []map[string]any{
		checkRunRerequested(push, "evil/other"),                     // another repository's webhook naming our run
		checkSuiteRerequested(strings.Repeat("a", 40), "acme/mono"), // no run of that commit
		{"action": "created", "check_run": map[string]any{"external_id": fmt.Sprint(push)},
			"repository": map[string]any{"full_name": "acme/mono"}},
	} {
		event := "check_run"
		if _, ok := p["check_suite"]; ok {
			event = "check_suite"
		}
		if code, body := ts.deliver(event, fmt.Sprint("r-no-", i), p, ""); code != http.StatusAccepted || !strings.Contains(body, "nothing to build") {
			t.Errorf("case %d: %d %q, want 202 nothing to build", i, code, body)
		}
	}
	if code, body := ts.deliver("check_run", "r-bad", checkRunRerequested(0, "acme/mono"), ""); code != http.StatusBadRequest {
		t.Errorf("external_id 0: %d %q, want 400", code, body)
	}
	if got := ts.runCount(); got != n {
		t.Errorf("%d runs after the rerequests that name nothing to rerun, want %d", got, n)
	}
}
