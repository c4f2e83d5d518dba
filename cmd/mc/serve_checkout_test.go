package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real mc behind mc serve's incremental checkouts: the pushes of a
// branch build in one reused worktree and "why it ran" names the file that
// changed since the branch's last run; a new branch and a pull request
// compare with the default branch's; a pull request tracking a symlink at
// mc-out is refused (and mc itself refuses to write through it); a push that cannot deploy fails before building, saying why.

type reasonRun struct {
	Status      string
	Reason      string
	DeployState string `json:"deploy_state"`
	DeployNote  string `json:"deploy_note"`
	Stages      []struct{ Label, Status, Reason string }
}

func (s *e2eServer) reasons(id int64) reasonRun {
	s.t.Helper()
	s.wait(id, "success", "failure", "error")
	_, raw := s.run(id)
	var r reasonRun
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (r reasonRun) reason(label string) string {
	for _, s := range r.Stages {
		if s.Label == label {
			return s.Reason
		}
	}
	return "(not in the run)"
}

func TestServeIncrementalCheckouts(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	bare := filepath.Join(root, "mono.git")
	writeFiles(t, work, map[string]string{
		"WORKSPACE.mc": `workspace(name = "mono")` + "\n",
		"a/a.txt":      "a1\n",
		"a/BUILD.mc":   `stage(name = "a", srcs = ["a.txt"], cmd = "cat a.txt > a.out", outs = ["a.out"])` + "\n",
		"b/b.txt":      "b1\n",
		"b/BUILD.mc": `stage(name = "b", srcs = ["b.txt"], deps = ["//a"], cmd = "cat b.txt ../a/a.out > b.out", outs = ["b.out"])
stage(name = "b_test", deps = [":b"], cmd = "grep -q b b.out", test = True)
`,
	})
	gitIn(t, work, "init", "-q", "-b", "main")
	gitIn(t, work, "add", "-A")
	gitIn(t, work, "commit", "-q", "-m", "base")
	gitIn(t, root, "init", "-q", "--bare", "-b", "main", bare)
	gitIn(t, work, "push", "-q", bare, "main")
	c1 := gitIn(t, work, "rev-parse", "HEAD")
	repo := map[string]any{"full_name": "acme/mono", "clone_url": "file://" + bare, "default_branch": "main"}
	commit := func(files map[string]string, msg string) string {
		writeFiles(t, work, files)
		gitIn(t, work, "add", "-A")
		gitIn(t, work, "commit", "-q", "-m", msg)
		gitIn(t, work, "push", "-q", "-f", bare, "HEAD")
		return gitIn(t, work, "rev-parse", "HEAD")
	}
	env := []string{"MC_WEBHOOK_SECRET=" + serveSecret, "XDG_CACHE_HOME=" + filepath.Join(root, "cache"), "HOME=" + root}
	srv := startServe(t, filepath.Join(root, "data"), env)
	push := func(delivery, branch, sha string) reasonRun {
		return srv.reasons(srv.hook("push", delivery, map[string]any{"ref": "refs/heads/" + branch, "after": sha, "repository": repo}))
	}
	pr := func(delivery string, n int, branch, sha, base string) reasonRun {
		return srv.reasons(srv.hook("pull_request", delivery, map[string]any{"action": "opened", "number": n, "repository": repo,
			"pull_request": map[string]any{"head": map[string]any{"sha": sha, "ref": branch, "repo": repo},
				"base": map[string]any{"sha": base, "ref": "main", "repo": repo}}}))
	}

	if r := push("e-1", "main", c1); r.Status != "success" || r.reason("//a:a") != "no previous run" {
		t.Fatalf("first push: %s %q, //a:a %q", r.Status, r.Reason, r.reason("//a:a"))
	}
	// The next push of main: a/a.txt changed since main's last run.
	c2 := commit(map[string]string{"a/a.txt": "a2\n"}, "change a")
	r := push("e-2", "main", c2)
	if r.Status != "success" || !strings.HasPrefix(r.reason("//a:a"), "ran because a/a.txt changed") {
		t.Errorf("second push: %s %q, //a:a ran %q", r.Status, r.Reason, r.reason("//a:a"))
	}
	if log := get(t, srv.url+"/runs/2/log"); !strings.Contains(log, "reused worktree") {
		t.Errorf("the second push did not reuse the worktree:\n%s", log)
	}
	// A new branch: compared with main's last run.
	gitIn(t, work, "checkout", "-q", "-b", "topic")
	c3 := commit(map[string]string{"b/b.txt": "b2\n"}, "change b")
	if r := push("e-3", "topic", c3); r.Status != "success" || !strings.HasPrefix(r.reason("//b:b"), "ran because b/b.txt changed") {
		t.Errorf("new branch: %s %q, //b:b ran %q", r.Status, r.Reason, r.reason("//b:b"))
	}
	// A pull request (untrusted, its own history): from main's too.
	gitIn(t, work, "checkout", "-q", "-b", "topic2", "main")
	c4 := commit(map[string]string{"b/b.txt": "b3\n"}, "change b again")
	if r := pr("e-4", 4, "topic2", c4, c2); r.Status != "success" || !strings.HasPrefix(r.reason("//b:b"), "ran because b/b.txt changed") {
		t.Errorf("pull request: %s %q, //b:b ran %q", r.Status, r.Reason, r.reason("//b:b"))
	}

	// A pull request tracking mc-out as a symlink to a directory outside
	// its checkout: refused before mc runs; nothing lands there.
	target := filepath.Join(root, "target")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, work, "checkout", "-q", "-b", "evil", "main")
	if err := os.Symlink(target, filepath.Join(work, "mc-out")); err != nil {
		t.Fatal(err)
	}
	c5 := commit(nil, "mc-out elsewhere")
	if r := pr("e-5", 5, "evil", c5, c2); r.Status != "error" || !strings.Contains(r.Reason, "tracks mc-out") {
		t.Errorf("pull request with mc-out tracked: %s %q", r.Status, r.Reason)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("the refused pull request wrote %d entries through its mc-out symlink", len(ents))
	}
	// The second layer: mc itself, on that commit, refuses to write
	// through the link too (out_symlinks.txtar has its positive control).
	// The server's refusal above is checked by its own reason: without it
	// the run would end as mc's exit 2, a failure, not this error.
	build := mcCmd(t, work, []string{"XDG_CACHE_HOME=" + filepath.Join(root, "cache-control")}, "build", "//a:a")
	if out, err := build.CombinedOutput(); err == nil || !strings.Contains(string(out), "is a symbolic link") {
		t.Errorf("mc build through a mc-out symlink: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("mc build wrote %d entries through the mc-out symlink", len(ents))
	}
	_ = os.Remove(filepath.Join(work, "mc-out"))

	// A push to the default branch whose deploy cannot run: an image to
	// push without a registry, a secret the server lacks. It fails before
	// building, with mc's words.
	gitIn(t, work, "checkout", "-q", "-f", "main")
	c6 := commit(map[string]string{
		"img/BUILD.mc": `image(name = "app", files = {"/a.txt": "//a:a.txt"}, repository = "acme/app")
stage(name = "ship", deps = [":app"], cmd = "echo ship", secrets = ["DEPLOY_TOKEN"], deploy = True)
`}, "deploy")
	r = push("e-6", "main", c6)
	if r.Status != "failure" || !strings.HasPrefix(r.Reason, `cannot deploy: //img:app (img/BUILD.mc:1:6) has repository = "acme/app" but there is no registry`) ||
		!strings.Contains(r.Reason, "//img:ship (img/BUILD.mc:2:6) names secret DEPLOY_TOKEN, which is not set") {
		t.Errorf("undeployable push: %s %q", r.Status, r.Reason)
	}
	if r.DeployState != "not deployed" || !strings.Contains(r.DeployNote, "no registry") || len(r.Stages) != 0 {
		t.Errorf("undeployable push: deploy %s %q, %d stages ran", r.DeployState, r.DeployNote, len(r.Stages))
	}
	page := get(t, fmt.Sprintf("%s/runs/%d", srv.url, 6))
	if !strings.Contains(page, "cannot deploy: //img:app") {
		t.Errorf("the run page does not say why it cannot deploy")
	}
}
