package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/githubdouble"
)

// The real mc behind mc serve: webhooks from a local bare repository, real
// builds in the server's workspaces, statuses to a test double of GitHub's
// API on 127.0.0.1 (GitHub itself is not reachable from the test machine),
// a crash of the server in the middle of a run, and mc build --report.

const serveSecret = "e2e-secret"

// mcCmd runs this test binary as mc (TestMain dispatches on argv[0]).
func mcCmd(t *testing.T, dir string, env []string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: exe, Args: append([]string{"mc"}, args...), Dir: dir, Env: append(os.Environ(), env...)}
	return cmd
}

type e2eServer struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
}

func startServe(t *testing.T, data string, env []string, flags ...string) *e2eServer {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "addr")
	var logs bytes.Buffer
	cmd := mcCmd(t, t.TempDir(), env, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--addr-file", addr, "--build-arg=-j2"}, flags...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &e2eServer{t: t, cmd: cmd, logs: &logs}
	t.Cleanup(func() { s.kill(syscall.SIGTERM) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(addr); err == nil && strings.HasSuffix(string(b), "\n") {
			s.url = "http://" + strings.TrimSpace(string(b))
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("mc serve did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *e2eServer) kill(sig syscall.Signal) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	_ = s.cmd.Wait()
}

func (s *e2eServer) hook(event, delivery string, payload any) int64 {
	s.t.Helper()
	body, _ := json.Marshal(payload)
	m := hmac.New(sha256.New, []byte(serveSecret))
	m.Write(body)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ ID int64 }
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &r) != nil || r.ID == 0 {
		s.t.Fatalf("webhook: %s %s", resp.Status, b)
	}
	return r.ID
}

type e2eRun struct {
	ID      int64
	Status  string
	Reason  string
	Trigger string
	Branch  string
	Commit  string
	Built   int
	Cached  int
	Stages  []struct{ Label, Status string }
}

func (s *e2eServer) run(id int64) (e2eRun, string) {
	s.t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/runs/%d", s.url, id))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r e2eRun
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatalf("run %d: %v: %s", id, err, b)
	}
	return r, string(b)
}

func (s *e2eServer) wait(id int64, states ...string) e2eRun {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, _ := s.run(id)
		if slices.Contains(states, r.Status) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("run %d is %s, want %v; server log:\n%s", id, r.Status, states, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r e2eRun) stages(status string) []string {
	var out []string
	for _, s := range r.Stages {
		if s.Status == status {
			out = append(out, s.Label)
		}
	}
	slices.Sort(out)
	return out
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// statusRecorder reads the commit statuses (context mc) that
// internal/githubdouble, a TEST DOUBLE of GitHub's REST API, received.
type statusRecorder struct{ d *githubdouble.Double }

func (r *statusRecorder) states(sha string) []string {
	var out []string
	for _, s := range r.d.Statuses() {
		if s.SHA == sha && s.Context == "mc" && s.Repo == "acme/mono" {
			out = append(out, s.State)
		}
	}
	return out
}

func TestServeEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	// The token may not write check runs (a personal access token): the
	// server reports by commit statuses.
	gh := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"gh-e2e": false}})
	rec := &statusRecorder{d: gh}
	defer gh.Close()

	// The repository: //a:a, //b:b (on a), its test, a deploy stage, and a
	// stage that waits for a file (for the crash) when wait.txt says so.
	work := filepath.Join(root, "work")
	bare := filepath.Join(root, "mono.git")
	writeFiles(t, work, map[string]string{
		"WORKSPACE.mc": `workspace(name = "mono")` + "\n",
		"a/a.txt":      "a1\n",
		"a/BUILD.mc":   `stage(name = "a", srcs = ["a.txt"], cmd = "cat a.txt > a.out; echo built a", outs = ["a.out"])` + "\n",
		"b/b.txt":      "b1\n",
		"b/BUILD.mc": `stage(name = "b", srcs = ["b.txt"], deps = ["//a"], cmd = "cat b.txt ../a/a.out > b.out", outs = ["b.out"])
stage(name = "b_test", deps = [":b"], cmd = "grep -q b1 b.out && echo ok", test = True)
stage(name = "ship", deps = [":b"], cmd = "echo shipping", deploy = True)
`,
		"w/wait.txt": "no\n",
		"w/BUILD.mc": `stage(name = "w", srcs = ["wait.txt"], cmd = "echo waiting; if grep -q yes wait.txt; then sleep $(cut -d' ' -f2 wait.txt); fi; touch w.out", outs = ["w.out"])` + "\n",
	})
	gitIn(t, work, "init", "-q", "-b", "main")
	gitIn(t, work, "add", "-A")
	gitIn(t, work, "commit", "-q", "-m", "base")
	gitIn(t, root, "init", "-q", "--bare", bare)
	gitIn(t, work, "push", "-q", bare, "main")
	base := gitIn(t, work, "rev-parse", "HEAD")
	repo := map[string]any{"full_name": "acme/mono", "clone_url": "file://" + bare, "default_branch": "main"}

	env := []string{"MC_WEBHOOK_SECRET=" + serveSecret, "MC_GITHUB_TOKEN=gh-e2e", "MC_GITHUB_API=" + gh.URL,
		"MC_AUTH_TOKEN=report-token-0123456789abcdef", "XDG_CACHE_HOME=" + filepath.Join(root, "cache"), "HOME=" + root}
	data := filepath.Join(root, "data")
	srv := startServe(t, data, env)

	// A push to the default branch: everything, tests and deploy included.
	id1 := srv.hook("push", "e-1", map[string]any{"ref": "refs/heads/main", "after": base, "repository": repo})
	r1 := srv.wait(id1, "success", "failure", "error")
	if r1.Status != "success" {
		t.Fatalf("push run: %s\n%s\n%s", r1.Status, get(t, fmt.Sprintf("%s/runs/%d/log", srv.url, id1)), srv.logs.String())
	}
	if got := r1.stages("built"); !slices.Equal(got, []string{"//a:a", "//b:b", "//b:b_test", "//b:ship", "//w:w"}) {
		t.Errorf("push run built %v", got)
	}
	page := get(t, fmt.Sprintf("%s/runs/%d", srv.url, id1))
	for _, want := range []string{`class="node st-built" data-label="//b:b"`, `class="edge e-deps" data-kind="deps" data-from="//a:a" data-to="//b:b"`,
		`class="edge e-deps" data-kind="deps" data-from="//b:b" data-to="//b:ship"`, "built a", "shipping"} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}

	// A pull request changing b.txt: only b and its test, from the merge
	// base, and never the deploy stage.
	gitIn(t, work, "checkout", "-q", "-b", "topic")
	writeFiles(t, work, map[string]string{"b/b.txt": "b1 changed\n"})
	gitIn(t, work, "commit", "-q", "-am", "change b")
	head := gitIn(t, work, "rev-parse", "HEAD")
	gitIn(t, work, "push", "-q", bare, "topic")
	id2 := srv.hook("pull_request", "e-2", map[string]any{"action": "opened", "number": 3, "repository": repo,
		"pull_request": map[string]any{"head": map[string]any{"sha": head, "ref": "topic", "repo": repo},
			"base": map[string]any{"sha": base, "ref": "main", "repo": repo}}})
	r2 := srv.wait(id2, "success", "failure", "error")
	if r2.Status != "success" {
		t.Fatalf("PR run: %s %s", r2.Status, r2.Reason)
	}
	if got := append(r2.stages("built"), r2.stages("cached")...); !slices.Equal(got, []string{"//b:b", "//b:b_test", "//a:a"}) {
		t.Errorf("PR run: built+cached %v, want only what the change affects", got)
	}
	// Statuses are posted after the run ends, in the background.
	for _, sha := range []string{base, head} {
		deadline := time.Now().Add(20 * time.Second)
		for got := rec.states(sha); !slices.Equal(got, []string{"pending", "pending", "success"}); got = rec.states(sha) {
			if time.Now().After(deadline) {
				t.Errorf("statuses of %s: %v", sha[:8], got)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// mc build --report: a local build appears in the same history.
	gitIn(t, work, "checkout", "-q", "main")
	build := mcCmd(t, work, []string{"XDG_CACHE_HOME=" + filepath.Join(root, "cache-cli"), "MC_REPORT_TOKEN=report-token-0123456789abcdef"},
		"build", "--report="+srv.url, "//b:b")
	if out, err := build.CombinedOutput(); err != nil || !strings.Contains(string(out), "mc: reporting to "+srv.url+"/runs/") {
		t.Fatalf("mc build --report: %v\n%s", err, out)
	}
	var runs []e2eRun
	if err := json.Unmarshal([]byte(get(t, srv.url+"/api/runs")), &runs); err != nil || len(runs) != 3 {
		t.Fatalf("runs after the CLI build: %v %d", err, len(runs))
	}
	cli := srv.wait(runs[0].ID, "success", "failure")
	if cli.Trigger != "cli" || cli.Status != "success" || cli.Branch != "main" || !slices.Equal(cli.stages("built"), []string{"//a:a", "//b:b"}) {
		t.Errorf("CLI run: %+v", cli)
	}
	// Its graph came with its events: the edge is drawn.
	if page := get(t, fmt.Sprintf("%s/runs/%d", srv.url, runs[0].ID)); !strings.Contains(page, `data-kind="deps" data-from="//a:a" data-to="//b:b"`) {
		t.Errorf("the CLI run's page draws no edge //a:a -> //b:b")
	}
	// A wrong token is a warning, not a failed build.
	build = mcCmd(t, work, []string{"XDG_CACHE_HOME=" + filepath.Join(root, "cache-cli"), "MC_REPORT_TOKEN=nope"},
		"build", "--report="+srv.url, "//a:a")
	if out, err := build.CombinedOutput(); err != nil || !strings.Contains(string(out), "mc: warning: --report: POST /api/runs: 401") {
		t.Errorf("mc build --report with a wrong token: %v\n%s", err, out)
	}

	// The server dies (SIGKILL) in the middle of a run; its build goes
	// with it, and the restarted server shows the run interrupted and the
	// finished runs as they were.
	// A sleep of a duration no other process has: how the test finds it.
	sleep := fmt.Sprintf("sleep 60.%09d", time.Now().Nanosecond())
	writeFiles(t, work, map[string]string{"w/wait.txt": "yes " + strings.TrimPrefix(sleep, "sleep ") + "\n"})
	gitIn(t, work, "commit", "-q", "-am", "slow")
	slow := gitIn(t, work, "rev-parse", "HEAD")
	gitIn(t, work, "push", "-q", bare, "main")
	_, before := srv.run(id1)
	id3 := srv.hook("push", "e-3", map[string]any{"ref": "refs/heads/main", "after": slow, "repository": repo})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(get(t, fmt.Sprintf("%s/runs/%d/log?stage=//w:w", srv.url, id3)), "waiting") {
		if time.Now().After(deadline) {
			t.Fatalf("the slow stage did not start:\n%s", srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// "waiting" is printed just before the sleep starts: on a loaded
	// machine the sleep may take a moment to appear.
	for deadline := time.Now().Add(10 * time.Second); len(procsMatching(sleep)) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no process runs %q", sleep)
		}
	}
	srv.kill(syscall.SIGKILL)
	// Pdeathsig: the build ends with the server.
	deadline = time.Now().Add(15 * time.Second)
	for len(procsMatching(sleep)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the build outlived the server: %v", procsMatching(sleep))
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv2 := startServe(t, data, env)
	r3, _ := srv2.run(id3)
	if r3.Status != "interrupted" {
		t.Errorf("run in progress at the crash: %s, want interrupted", r3.Status)
	}
	if _, after := srv2.run(id1); strings.ReplaceAll(before, srv.url, srv2.url) != after {
		t.Errorf("a finished run changed across the restart:\n%s\n%s", before, after)
	}
	// The restarted server posts the error status in the background.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := rec.states(slow)
		if slices.Equal(got, []string{"pending", "pending", "error"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("statuses of the interrupted run: %v", got)
			break
		}
	}
	srv2.kill(syscall.SIGTERM)
	if srv2.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("mc serve after SIGTERM: exit %d\n%s", srv2.cmd.ProcessState.ExitCode(), srv2.logs.String())
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

// procsMatching lists the processes whose command line is cmd.
func procsMatching(cmd string) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, d := range dirs {
		cl, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		if strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " ")) == cmd {
			out = append(out, d)
		}
	}
	return out
}

// A server token short enough to guess is a usage error (exit 2) before
// anything starts.
func TestServeShortToken(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"serve", "--auth-token", "hunter2", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "openssl rand -hex 32") {
		t.Fatalf("mc serve with a 7-character token: exit %d, stderr %q; want 2 and how to make one", code, stderr.String())
	}
}
