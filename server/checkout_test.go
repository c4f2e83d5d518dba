package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addFile commits a new file (a change of the repository's structure) and
// pushes it.
func (r *testRepo) addFile(name, content string) string {
	p := filepath.Join(r.work, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return r.commit("add " + name)
}

// onBranch commits msg on branch (made from the current commit if new) and
// pushes it; the work tree stays on branch.
func (r *testRepo) onBranch(branch, msg string) string {
	if git(r.t, r.work, "branch", "--list", branch) == "" {
		git(r.t, r.work, "checkout", "-q", "-b", branch)
	} else {
		git(r.t, r.work, "checkout", "-q", branch)
	}
	return r.commit(msg)
}

// slotRuns runs, in order: a push to main that leaves an output in mc-out/
// (as mc does), a pull request whose build plants a file in mc-out/ and an
// untracked file in its checkout (an attacker's build), and a second push
// to main. It returns the three commits.
func slotRuns(t *testing.T, ts *testServer, repo *testRepo) (push1, pr, push2 string) {
	t.Helper()
	push1 = repo.commit("push 1")
	ts.touch("output-" + push1)
	ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "main", push1)), StatusSuccess)

	pr = repo.onBranch("topic", "the pull request")
	ts.touch("plant-" + pr)
	ts.waitRun(ts.accept("pull_request", "d-2", prPayloadFor(repo, 7, "topic", pr, push1)), StatusSuccess)

	git(t, repo.work, "checkout", "-q", "main")
	push2 = repo.commit("push 2")
	ts.waitRun(ts.accept("push", "d-3", pushPayloadFor(repo, "main", push2)), StatusSuccess)
	return push1, pr, push2
}

// The attack: a pull request's build writes into its checkout (mc-out/ and
// an untracked file); the next push run must not see either. Pushes reuse
// their worktree: same directory, mc-out/ kept.
func TestCheckoutPullRequestLeavesNothingForPushes(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	push1, pr, push2 := slotRuns(t, ts, repo)

	if ts.read("pwd-"+push2) != ts.read("pwd-"+push1) {
		t.Errorf("the second push built in %s, the first in %s: the worktree was not reused", ts.read("pwd-"+push2), ts.read("pwd-"+push1))
	}
	if ts.read("pwd-"+pr) == ts.read("pwd-"+push1) {
		t.Errorf("the pull request built in the pushes' worktree %s", ts.read("pwd-"+pr))
	}
	// The attack did write (in its own worktree).
	if b, err := os.ReadFile(filepath.Join(ts.read("pwd-"+pr), "mc-out", "planted-"+pr)); err != nil || string(b) != "evil\n" {
		t.Fatalf("the pull request's build did not plant its file: %v", err)
	}
	mcout := ts.read("mcout-" + push2)
	if strings.Contains(mcout, "planted-") {
		t.Errorf("the push after the pull request found its mc-out/ file: %q", mcout)
	}
	if !strings.Contains(mcout, "out-"+push1) {
		t.Errorf("mc-out/ of the first push is not kept for the second: %q", mcout)
	}
	if ls := ts.read("ls-" + push2); strings.Contains(ls, "planted-untracked") {
		t.Errorf("the push found the pull request's untracked file: %q", ls)
	}
	r := ts.run(3)
	if page := ts.get("/runs/3"); !strings.Contains(page, "reused worktree") || r.Status != StatusSuccess {
		t.Errorf("the second push's log does not say its worktree was reused")
	}
}

// Positive control of the attack: pull requests in the pushes' worktrees
// (sharedSlots), and the push after one finds what it planted in mc-out/.
// git clean still removes its untracked file (that is hygiene; the slots
// apart are the guarantee).
func TestCheckoutSharedSlotsControl(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) { c.sharedSlots = true })
	_, pr, push2 := slotRuns(t, ts, repo)
	if mcout := ts.read("mcout-" + push2); !strings.Contains(mcout, "planted-"+pr) {
		t.Fatalf("with shared slots the push did not find the planted file (the attack test could not fail): %q", mcout)
	}
	if ls := ts.read("ls-" + push2); strings.Contains(ls, "planted-untracked") {
		t.Errorf("git clean left the untracked file: %q", ls)
	}
}

// A commit that tracks mc-out (here a symlink out of the checkout, where mc
// would write its outputs) is refused before mc runs.
func TestCheckoutRefusesTrackedMcOut(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	target := t.TempDir()
	git(t, repo.work, "checkout", "-q", "-b", "evil")
	if err := os.Symlink(target, filepath.Join(repo.work, "mc-out")); err != nil {
		t.Fatal(err)
	}
	head := repo.commit("mc-out points elsewhere")
	r := ts.waitRun(ts.accept("pull_request", "d-1", prPayloadFor(repo, 9, "evil", head, git(t, repo.work, "rev-parse", "main"))),
		StatusSuccess, StatusFailure, StatusError)
	if r.Status != StatusError || !strings.Contains(r.Reason, "tracks mc-out, where mc writes its outputs: refused") {
		t.Errorf("run: %s %q", r.Status, r.Reason)
	}
	if _, err := os.Stat(filepath.Join(ts.fakeDir, "args-"+head)); err == nil {
		t.Errorf("mc ran on a commit that tracks mc-out")
	}
}

// mc learns which history to use: the branch's, starting from the default
// branch's for a new branch or a pull request.
func TestCheckoutHistoryKeys(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	main := repo.commit("main")
	ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "main", main)), StatusSuccess)
	topic := repo.onBranch("topic", "topic")
	ts.waitRun(ts.accept("push", "d-2", pushPayloadFor(repo, "topic", topic)), StatusSuccess)
	pr := repo.onBranch("topic", "topic 2")
	ts.waitRun(ts.accept("pull_request", "d-3", prPayloadFor(repo, 7, "topic", pr, main)), StatusSuccess)
	for _, c := range []struct{ sha, key, base string }{
		{main, "acme/mono@main", "acme/mono@main"},
		{topic, "acme/mono@topic", "acme/mono@main"},
		{pr, "acme/mono#7", "acme/mono@main"},
	} {
		env := "\n" + ts.read("env-"+c.sha) + "\n"
		if !strings.Contains(env, "\nMC_HISTORY_KEY="+c.key+"\n") || !strings.Contains(env, "\nMC_HISTORY_BASE="+c.base+"\n") {
			t.Errorf("%s: history env %q, want key %s base %s", c.sha[:8], grepEnv(env, "MC_HISTORY_"), c.key, c.base)
		}
	}
}

func grepEnv(env, prefix string) []string {
	var out []string
	for _, l := range strings.Split(env, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// A push run that cannot deploy says so first, and builds nothing.
func TestPreflightStopsARunThatCannotDeploy(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	ok := repo.commit("deployable")
	ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "main", ok)), StatusSuccess)
	if got := ts.read("check-args-" + ok); got != "build --deploy --check //..." {
		t.Errorf("preflight args %q", got)
	}
	bad := repo.addFile("img/BUILD.mc", "image(name = \"app\", repository = \"acme/app\")\n")
	if err := os.WriteFile(filepath.Join(ts.fakeDir, "nodeploy-"+bad), []byte("//img:app (img/BUILD.mc:1:6) has repository = \"acme/app\" but there is no registry to push it to\n//app:ship (app/BUILD.mc:3:6) names secret DEPLOY_TOKEN, which is not set in mc's environment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ts.waitRun(ts.accept("push", "d-2", pushPayloadFor(repo, "main", bad)), StatusSuccess, StatusFailure, StatusError)
	want := `cannot deploy: //img:app (img/BUILD.mc:1:6) has repository = "acme/app" but there is no registry to push it to; //app:ship (app/BUILD.mc:3:6) names secret DEPLOY_TOKEN`
	if r.Status != StatusFailure || !strings.HasPrefix(r.Reason, want) {
		t.Errorf("run: %s %q, want failure %q", r.Status, r.Reason, want)
	}
	if r.DeployState != DeploySkipped || !strings.Contains(r.DeployNote, "no registry to push it to") {
		t.Errorf("deploy: %s %q", r.DeployState, r.DeployNote)
	}
	if _, err := os.Stat(filepath.Join(ts.fakeDir, "args-"+bad)); err == nil {
		t.Errorf("the build ran after the preflight failed")
	}
}

// A push whose preflight finds nothing to deploy has no deploy step (the
// default fake finds a deploy stage, and TestServePushRun sees it deploy).
func TestPreflightNothingToDeploy(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("no deploy stages")
	ts.touch("nothingtodeploy-" + sha)
	r := ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "main", sha)), StatusSuccess, StatusFailure, StatusError)
	if r.Status != StatusSuccess || r.DeployState != DeploySkipped || !strings.HasPrefix(r.DeployNote, "nothing to deploy") {
		t.Errorf("run: %s, deploy %s %q", r.Status, r.DeployState, r.DeployNote)
	}
	if _, err := os.Stat(filepath.Join(ts.fakeDir, "deploy-args-"+sha)); err == nil {
		t.Errorf("the deploy build ran with nothing to deploy")
	}
}

// mc test builds nothing when there is no test stage (exit 4): the server
// then builds with mc build, chosen from the graph, or after the exit 4.
func TestRunWithoutTestsIsBuilt(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	byGraph := repo.onBranch("topic", "no tests in the graph")
	ts.touch("notests-" + byGraph)
	ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "topic", byGraph)), StatusSuccess)
	if got := ts.read("args-" + byGraph); got != "build --output=json --explain //..." {
		t.Errorf("without tests in the graph: %q, want mc build", got)
	}
	byExit := repo.addFile("t/BUILD.mc", "# a new structure: evaluated again\n")
	ts.touch("test4-" + byExit)
	r := ts.waitRun(ts.accept("push", "d-2", pushPayloadFor(repo, "topic", byExit)), StatusSuccess, StatusFailure, StatusError)
	if ts.read("test4-args-"+byExit) != "test --output=json --explain //..." || ts.read("args-"+byExit) != "build --output=json --explain //..." {
		t.Errorf("after mc test's exit 4: %q then %q, want test then build", ts.read("test4-args-"+byExit), ts.read("args-"+byExit))
	}
	if r.Status != StatusSuccess || r.Built != 2 {
		t.Errorf("run after exit 4: %s %q, built %d", r.Status, r.Reason, r.Built)
	}
}

// A push that changes no BUILD file and no file list is not evaluated
// again for its graph and preflight; one that adds a file is.
func TestEvaluationReusedForTheSameStructure(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	first := repo.commit("first")
	ts.waitRun(ts.accept("push", "d-1", pushPayloadFor(repo, "main", first)), StatusSuccess)
	same := repo.commit("a source file changed")
	r := ts.waitRun(ts.accept("push", "d-2", pushPayloadFor(repo, "main", same)), StatusSuccess)
	for _, f := range []string{"query-", "check-args-"} {
		if _, err := os.Stat(filepath.Join(ts.fakeDir, f+same)); err == nil {
			t.Errorf("%s: evaluated again for the same structure", f)
		}
	}
	if !strings.Contains(ts.get("/runs/2"), "not evaluated again") || len(r.Stages) == 0 {
		t.Errorf("the second run does not say it reused the evaluation")
	}
	if ts.read("args-"+same) != "test --output=json --explain //..." || r.DeployState != DeployDone {
		t.Errorf("the second run: %q, deploy %s", ts.read("args-"+same), r.DeployState)
	}
	added := repo.addFile("c/BUILD.mc", "# new package\n")
	ts.waitRun(ts.accept("push", "d-3", pushPayloadFor(repo, "main", added)), StatusSuccess)
	for _, f := range []string{"query-", "check-args-"} {
		if _, err := os.Stat(filepath.Join(ts.fakeDir, f+added)); err != nil {
			t.Errorf("%s: not evaluated after a file was added", f)
		}
	}
}
