package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The attacks of issue 16.3 on a real handler, signed webhooks and a local
// git repository; the fake mc records each deploy (the file deploys).
// Each has a positive control that switches the guarantee off (a test-only
// Config field) and shows the same attack then succeeds.

// deployGated makes every fake deploy build wait for its deploygate file.
func deployGated(c *Config) { c.Env = append(c.Env, "FAKE_MC_DEPLOY_GATE=1") }

// deploys lists the commits the fake mc deployed, in order.
func (ts *testServer) deploys() []string {
	b, err := os.ReadFile(filepath.Join(ts.fakeDir, "deploys"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		ts.t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (ts *testServer) runLog(id int64) string {
	return ts.get(fmt.Sprintf("/runs/%d/log", id))
}

// waitLog waits until run id's own log holds want.
func (ts *testServer) waitLog(id int64, want string) {
	ts.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(ts.runLog(id), want) {
		if time.Now().After(deadline) {
			ts.t.Fatalf("run %d's log lacks %q:\n%s", id, want, ts.runLog(id))
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (ts *testServer) runCount() int {
	var runs []APIRun
	ts.getJSON("/api/runs", &runs)
	return len(runs)
}

// A captured push delivery of main, resent with its genuine signature
// under a new X-GitHub-Delivery while a newer push of main is building and
// then deploying: refused, and the newer run is neither cancelled nor kept
// from deploying.
func TestServeReplayUnderNewDelivery(t *testing.T) {
	type outcome struct {
		code     int
		body     string
		during   int // the second replay's, while the newer run deploys (0: not sent)
		replayID int64
		newer    *APIRun
		deploys  []string
	}
	attack := func(t *testing.T, opts ...serverOpt) (ts *testServer, a, b string, o outcome) {
		repo := newTestRepo(t)
		ts = startServer(t, filepath.Join(t.TempDir(), "data"), nil, append([]serverOpt{gated, deployGated}, opts...)...)
		a = repo.commit("old release")
		captured := pushPayloadFor(repo, "main", a)
		idA := ts.accept("push", "a-1", captured)
		ts.touch("gate-" + a)
		ts.touch("deploygate-" + a)
		if r := ts.waitRun(idA, StatusSuccess, StatusFailure, StatusError, StatusCancelled); r.DeployState != DeployDone {
			t.Fatalf("the first push did not deploy: %s %s", r.DeployState, r.DeployNote)
		}
		b = repo.commit("new release")
		idB := ts.accept("push", "b-1", pushPayloadFor(repo, "main", b))
		ts.waitFile("started-" + b)
		// The replay, while the newer run builds.
		o.code, o.body = ts.deliver("push", "a-evil-1", captured, "")
		if o.code == http.StatusAccepted {
			var r struct{ ID int64 }
			fmt.Sscanf(o.body[strings.Index(o.body, `"id":`)+5:], "%d", &r.ID)
			o.replayID = r.ID
			ts.waitRun(r.ID, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
		}
		ts.touch("gate-" + b)
		// Unless the replay cancelled it, the newer run reaches its deploy.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(ts.fakeDir, "deploying-"+b)); err == nil {
				// And again while it deploys.
				o.during, _ = ts.deliver("push", "a-evil-2", captured, "")
				break
			}
			if ts.run(idB).Status != StatusRunning || time.Now().After(deadline) {
				break
			}
		}
		ts.touch("deploygate-" + b)
		o.newer = ts.waitRun(idB, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
		o.deploys = ts.deploys()
		return ts, a, b, o
	}

	t.Run("refused", func(t *testing.T) {
		ts, a, b, o := attack(t)
		if o.code != http.StatusConflict || !strings.Contains(o.body, "refused: a replay of delivery a-1") || !strings.Contains(o.body, "which started run 1") {
			t.Errorf("replay under a new id: %d %q, want 409 naming delivery a-1 and run 1", o.code, o.body)
		}
		if o.during != http.StatusConflict {
			t.Errorf("replay while the newer run deploys: %d, want 409", o.during)
		}
		if n := ts.runCount(); n != 2 {
			t.Errorf("%d runs, want 2: the replays started nothing", n)
		}
		if o.newer.Status != StatusSuccess || o.newer.DeployState != DeployDone {
			t.Errorf("the newer run: %s (%s), deploy %s (%s)", o.newer.Status, o.newer.Reason, o.newer.DeployState, o.newer.DeployNote)
		}
		if strings.Join(o.deploys, " ") != a+" "+b {
			t.Errorf("deploys %v, want the old release then the new one, once each", o.deploys)
		}
	})

	// With the replay check off, the replay builds, but its commit is not
	// main's head: it does not deploy, and (its commit being an ancestor of
	// the newer one) it cancels nothing.
	t.Run("control: replay check off, head check on", func(t *testing.T) {
		ts, a, b, o := attack(t, func(c *Config) { c.noReplayCheck = true })
		if o.code != http.StatusAccepted || o.replayID == 0 {
			t.Fatalf("replay with the check off: %d %q, want 202", o.code, o.body)
		}
		r := ts.run(o.replayID)
		if r.DeployState != DeploySkipped || !strings.Contains(r.DeployNote, a[:10]+" is no longer the head of main (its head is now "+b[:10]+")") {
			t.Errorf("the replay's run: deploy %s (%s)", r.DeployState, r.DeployNote)
		}
		if !strings.Contains(ts.runLog(o.replayID), "its commit descends from this one") {
			t.Errorf("the replay's log does not say why it cancelled nothing:\n%s", ts.runLog(o.replayID))
		}
		if o.newer.Status != StatusSuccess || strings.Join(o.deploys, " ") != a+" "+b {
			t.Errorf("newer run %s, deploys %v", o.newer.Status, o.deploys)
		}
	})

	// All three off (the server before issue 16): the replay cancels the
	// newer run and deploys the old release. This is the attack the test
	// above would catch.
	t.Run("control: all checks off", func(t *testing.T) {
		_, a, _, o := attack(t, func(c *Config) { c.noReplayCheck, c.noHeadCheck, c.supersedeByArrival = true, true, true })
		if o.code != http.StatusAccepted {
			t.Fatalf("replay with the checks off: %d %q", o.code, o.body)
		}
		if o.newer.Status != StatusCancelled || o.newer.Reason != fmt.Sprintf("superseded by run %d", o.replayID) {
			t.Errorf("the newer run: %s (%s), want cancelled by the replay", o.newer.Status, o.newer.Reason)
		}
		if strings.Join(o.deploys, " ") != a+" "+a {
			t.Errorf("deploys %v, want the old release twice", o.deploys)
		}
	})
}

// A push whose commit is no longer its branch's head when its deploy
// stages would start builds without deploying, and its page says why; a
// head that cannot be read deploys nothing.
func TestServeStaleCommitNotDeployed(t *testing.T) {
	stale := func(t *testing.T, opts ...serverOpt) (*testServer, string, string, *APIRun) {
		repo := newTestRepo(t)
		ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, append([]serverOpt{gated}, opts...)...)
		a := repo.commit("a")
		id := ts.accept("push", "s-1", pushPayloadFor(repo, "main", a))
		ts.waitFile("started-" + a)
		// main moves on while a builds (its webhook has not come yet).
		b := repo.commit("b")
		ts.touch("gate-" + a)
		return ts, a, b, ts.waitRun(id, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
	}
	t.Run("not deployed", func(t *testing.T) {
		ts, a, b, r := stale(t)
		if r.Status != StatusSuccess || r.DeployState != DeploySkipped || len(ts.deploys()) != 0 {
			t.Fatalf("stale commit: %s, deploy %s (%s), deploys %v", r.Status, r.DeployState, r.DeployNote, ts.deploys())
		}
		if _, err := os.Stat(filepath.Join(ts.fakeDir, "deploy-args-"+a)); err == nil {
			t.Error("the deploy build ran")
		}
		want := "built without deploying: " + a[:10] + " is no longer the head of main (its head is now " + b[:10] + ")"
		if r.DeployNote != want {
			t.Errorf("note %q, want %q", r.DeployNote, want)
		}
		if page := ts.get(fmt.Sprintf("/runs/%d", r.ID)); !strings.Contains(page, `<dd id="deploy">not deployed · `+want) {
			t.Errorf("the run page does not say why it did not deploy")
		}
	})
	t.Run("control: head check off", func(t *testing.T) {
		ts, a, _, r := stale(t, func(c *Config) { c.noHeadCheck = true })
		if r.DeployState != DeployDone || strings.Join(ts.deploys(), " ") != a {
			t.Fatalf("with the head check off: deploy %s (%s), deploys %v", r.DeployState, r.DeployNote, ts.deploys())
		}
	})
	// The head cannot be read (the repository is gone): not deployed, and
	// the run is an error, not a success.
	t.Run("head unreadable", func(t *testing.T) {
		repo := newTestRepo(t)
		ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
		a := repo.commit("a")
		id := ts.accept("push", "u-1", pushPayloadFor(repo, "main", a))
		ts.waitFile("started-" + a)
		if err := os.Rename(repo.bare, repo.bare+".gone"); err != nil {
			t.Fatal(err)
		}
		ts.touch("gate-" + a)
		r := ts.waitRun(id, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
		if r.Status != StatusError || r.DeployState != DeployUnconfirmed || len(ts.deploys()) != 0 ||
			!strings.Contains(r.DeployNote, "could not read the head of main") {
			t.Fatalf("unreadable head: %s (%s), deploy %s (%s), deploys %v", r.Status, r.Reason, r.DeployState, r.DeployNote, ts.deploys())
		}
	})
}

// An older push of main delivered after a newer one (GitHub does not
// promise order) does not cancel the newer run, and does not deploy.
func TestServeLateOlderPush(t *testing.T) {
	late := func(t *testing.T, opts ...serverOpt) (ts *testServer, a, b string, ra, rb *APIRun) {
		repo := newTestRepo(t)
		ts = startServer(t, filepath.Join(t.TempDir(), "data"), nil, append([]serverOpt{gated}, opts...)...)
		a = repo.commit("a")
		b = repo.commit("b")
		idB := ts.accept("push", "l-b", pushPayloadFor(repo, "main", b))
		ts.waitFile("started-" + b)
		ts.touch("gate-" + a) // a's build runs straight through
		idA := ts.accept("push", "l-a", pushPayloadFor(repo, "main", a))
		ra = ts.waitRun(idA, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
		// Superseding runs beside the build: wait for its decision.
		ts.waitLog(idA, "superseding: ")
		ts.touch("gate-" + b)
		rb = ts.waitRun(idB, StatusSuccess, StatusFailure, StatusError, StatusCancelled)
		return ts, a, b, ra, rb
	}
	t.Run("newer not cancelled", func(t *testing.T) {
		ts, a, b, ra, rb := late(t)
		if rb.Status != StatusSuccess || rb.DeployState != DeployDone {
			t.Errorf("the newer run: %s (%s), deploy %s", rb.Status, rb.Reason, rb.DeployState)
		}
		if ra.Status != StatusSuccess || ra.DeployState != DeploySkipped {
			t.Errorf("the late older run: %s, deploy %s (%s)", ra.Status, ra.DeployState, ra.DeployNote)
		}
		if want := fmt.Sprintf("superseding: run %d (%s) is not cancelled: its commit descends from this one", rb.ID, b[:10]); !strings.Contains(ts.runLog(ra.ID), want) {
			t.Errorf("the late run's log lacks %q", want)
		}
		if got := strings.Join(ts.deploys(), " "); got != b {
			t.Errorf("deploys %q, want only %s", got, b[:10])
		}
		_ = a
	})
	t.Run("control: supersede by arrival", func(t *testing.T) {
		_, _, _, ra, rb := late(t, func(c *Config) { c.supersedeByArrival = true })
		if rb.Status != StatusCancelled || rb.Reason != fmt.Sprintf("superseded by run %d", ra.ID) {
			t.Errorf("by arrival the late older run cancels the newer: %s (%s)", rb.Status, rb.Reason)
		}
	})
}

// Delivery records are pruned by age and by number: a body older than the
// retention, or pushed out by newer ones, is no longer recognised (and the
// head check is what then keeps an old commit from deploying).
func TestServeDeliveryPruning(t *testing.T) {
	repo := newTestRepo(t)
	sha := git(t, repo.work, "rev-parse", "HEAD")
	var now atomic.Int64 // the server's clock, in nanoseconds
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	advance := func(d time.Duration) { now.Add(int64(d)) }
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) {
		c.Now, c.DeliveryRetention, c.MaxDeliveries = func() time.Time { return time.Unix(0, now.Load()) }, time.Hour, 2
	})
	p := func(branch string) map[string]any { return pushPayloadFor(repo, branch, sha) }
	ts.accept("push", "p-1", p("x1"))
	if code, _ := ts.deliver("push", "p-1b", p("x1"), ""); code != http.StatusConflict {
		t.Fatalf("replay within the retention: %d, want 409", code)
	}
	advance(59 * time.Minute)
	if code, _ := ts.deliver("push", "p-1c", p("x1"), ""); code != http.StatusConflict {
		t.Fatalf("replay at 59 min: %d, want 409", code)
	}
	advance(2 * time.Minute)
	ts.accept("push", "p-1d", p("x1")) // forgotten after an hour
	// By number (2): two newer deliveries push p-1d out.
	advance(time.Second)
	ts.accept("push", "p-2", p("x2"))
	advance(time.Second)
	ts.accept("push", "p-3", p("x3"))
	advance(time.Second)
	ts.accept("push", "p-1e", p("x1"))
	advance(time.Second)
	if code, _ := ts.deliver("push", "p-3b", p("x3"), ""); code != http.StatusConflict {
		t.Fatalf("the newest deliveries are kept: %d, want 409", code)
	}
	var n int
	if err := ts.s.st.db.QueryRow("SELECT count(*) FROM delivery_bodies").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d delivery bodies kept (%v), want 2", n, err)
	}
}

// A force push: the histories diverged, so ancestry cannot decide. The run
// of the commit that is now the branch's head (read from the repository)
// cancels the other; a late delivery of the replaced commit cancels
// nothing.
func TestServeForcePushSupersedes(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
	a := repo.commit("a")
	idA := ts.accept("push", "f-a", pushPayloadFor(repo, "main", a))
	ts.waitFile("started-" + a)
	git(t, repo.work, "reset", "-q", "--hard", "HEAD~1")
	c := repo.commit("c, replacing a")
	idC := ts.accept("push", "f-c", pushPayloadFor(repo, "main", c))
	if r := ts.waitRun(idA, StatusCancelled, StatusSuccess, StatusFailure); r.Reason != fmt.Sprintf("superseded by run %d", idC) {
		t.Errorf("the replaced commit's run: %s (%s), want superseded by run %d", r.Status, r.Reason, idC)
	}
	// a, delivered again under another body (a late redelivery with other
	// fields), while c's run builds: a is not the head, so c's run stays.
	ts.waitFile("started-" + c)
	late := pushPayloadFor(repo, "main", a)
	late["redelivered"] = true
	idLate := ts.accept("push", "f-a2", late)
	ts.waitLog(idLate, "superseding: ")
	if !strings.Contains(ts.runLog(idLate), fmt.Sprintf("run %d (%s) left to run: its commit and this one diverged, and this one is not the head of main", idC, c[:10])) {
		t.Errorf("the late run's log:\n%s", ts.runLog(idLate))
	}
	ts.touch("gate-" + a)
	ts.touch("gate-" + c)
	if r := ts.waitRun(idC, StatusCancelled, StatusSuccess, StatusFailure); r.Status != StatusSuccess || r.DeployState != DeployDone {
		t.Errorf("the head's run: %s (%s), deploy %s", r.Status, r.Reason, r.DeployState)
	}
	if r := ts.waitRun(idLate, StatusCancelled, StatusSuccess, StatusFailure); r.DeployState != DeploySkipped {
		t.Errorf("the late run of the replaced commit: deploy %s (%s)", r.DeployState, r.DeployNote)
	}
	if got := strings.Join(ts.deploys(), " "); got != c {
		t.Errorf("deploys %q, want only %s", got, c[:10])
	}
}
