package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watchProc is a running `mc watch` whose stderr the test reads line by
// line, waiting for lines with a deadline (never a sleep).
type watchProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   []string
}

func startWatch(t *testing.T, dir string, env []string, args ...string) *watchProc {
	t.Helper()
	mc, err := exec.LookPath("mc")
	if err != nil {
		t.Fatalf("the mc test binary is not on PATH (TestMain puts it there): %v", err)
	}
	cmd := exec.Command(mc, append([]string{"watch"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watchProc{t: t, cmd: cmd, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// waitFor returns the lines read up to and including the first matching
// re, failing the test after the deadline or when mc exits first.
func (p *watchProc) waitFor(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(90 * time.Second) // a loaded 2-core machine builds slowly
	var seen []string
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("mc watch ended before printing %q; its output:\n%s", re, p.output())
			}
			seen = append(seen, l)
			if rx.MatchString(l) {
				return seen
			}
		case <-deadline:
			p.t.Fatalf("no line matching %q within 90 s; output:\n%s", re, p.output())
		}
	}
}

func (p *watchProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

func writeWS(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed over, as editors save.
	tmp := p + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func readOut(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "mc-out", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("reading the output: %v", err)
	}
	return string(b)
}

func anyLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// TestWatch runs `mc watch //...` on a workspace of three packages and
// edits it as a user would: a source file (its stage and the dependent run,
// the unrelated package does not), a BUILD.mc (only that package is
// evaluated again), a breaking edit (the failure is shown and watching goes
// on), its fix, then Ctrl-C: exit 0, and a following `mc build` finds
// every result in the cache (nothing half-written).
func TestWatch(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(root, ".cache"), "HOME=" + root}
	writeWS(t, root, "WORKSPACE.mc", `workspace(name = "w")`+"\n")
	writeWS(t, root, "lib/BUILD.mc", `stage(name = "gen", srcs = ["in.txt"], cmd = "tr a-z A-Z < in.txt > out.txt", outs = ["out.txt"])`+"\n")
	writeWS(t, root, "lib/in.txt", "hello\n")
	useBuild := func(cmd string) string {
		return `stage(name = "use", deps = ["//lib:gen"], cmd = "` + cmd + `", outs = ["final.txt"])` + "\n"
	}
	writeWS(t, root, "app/BUILD.mc", useBuild("cat ../lib/out.txt > final.txt"))
	writeWS(t, root, "other/BUILD.mc", `stage(name = "x", srcs = ["x.txt"], cmd = "cp x.txt y.txt", outs = ["y.txt"])`+"\n")
	writeWS(t, root, "other/x.txt", "x\n")

	p := startWatch(t, root, env, "//...")
	first := p.waitFor(`^mc watch: watching 3 stages for changes`)
	if !anyLine(first, "Build: 3 built") {
		t.Fatalf("first build did not build the 3 stages:\n%s", strings.Join(first, "\n"))
	}
	if got := readOut(t, root, "app/final.txt"); got != "HELLO\n" {
		t.Fatalf("first build: final.txt = %q", got)
	}

	// A source edit: lib:gen and app:use run again, other:x does not.
	writeWS(t, root, "lib/in.txt", "world\n")
	round := p.waitFor(`^mc watch: watching`)
	if !anyLine(round, "Build: 2 built") || anyLine(round, "//other:x") || anyLine(round, "re-evaluated") {
		t.Errorf("after editing lib/in.txt:\n%s\nwant //lib:gen and //app:use built, //other:x untouched, nothing evaluated", strings.Join(round, "\n"))
	}
	if !anyLine(round, "after lib/in.txt was saved") {
		t.Errorf("no latency line after the source edit:\n%s", strings.Join(round, "\n"))
	}
	if got := readOut(t, root, "app/final.txt"); got != "WORLD\n" {
		t.Errorf("after the edit: final.txt = %q, want WORLD", got)
	}

	// A BUILD.mc edit: //app alone is evaluated again, and its stage runs.
	writeWS(t, root, "app/BUILD.mc", useBuild("cat ../lib/out.txt ../lib/out.txt > final.txt"))
	round = p.waitFor(`^mc watch: watching`)
	if !anyLine(round, "mc watch: re-evaluated //app") || anyLine(round, "re-evaluated //lib") || anyLine(round, "re-evaluated //other") {
		t.Errorf("after editing app/BUILD.mc:\n%s\nwant //app alone re-evaluated", strings.Join(round, "\n"))
	}
	if !anyLine(round, "Build: 1 built") {
		t.Errorf("after editing app/BUILD.mc, want //app:use alone built:\n%s", strings.Join(round, "\n"))
	}
	if got := readOut(t, root, "app/final.txt"); got != "WORLD\nWORLD\n" {
		t.Errorf("after the BUILD.mc edit: final.txt = %q", got)
	}

	// Broken, then fixed: the failure is reported and watching goes on.
	writeWS(t, root, "app/BUILD.mc", useBuild("echo broken on purpose; exit 3"))
	round = p.waitFor(`^mc watch: watching`)
	if !anyLine(round, "FAILED //app:use") || !anyLine(round, "broken on purpose") || !anyLine(round, "the build failed") {
		t.Errorf("after breaking //app:use:\n%s\nwant its failure and log", strings.Join(round, "\n"))
	}
	writeWS(t, root, "app/BUILD.mc", useBuild("cat ../lib/out.txt > final.txt; echo fixed >> final.txt"))
	round = p.waitFor(`^mc watch: watching`)
	if !anyLine(round, "Build: 1 built, 0 cached, 0 failed") {
		t.Errorf("after the fix:\n%s", strings.Join(round, "\n"))
	}
	if got := readOut(t, root, "app/final.txt"); got != "WORLD\nfixed\n" {
		t.Errorf("after the fix: final.txt = %q", got)
	}

	// WORKSPACE.mc: everything starts over, and finds every result cached.
	writeWS(t, root, "WORKSPACE.mc", `workspace(name = "w")  # edited`+"\n")
	round = p.waitFor(`^mc watch: watching 3 stages`)
	if !anyLine(round, "starting over") || !anyLine(round, "Build: 0 built, 3 cached") {
		t.Errorf("after editing WORKSPACE.mc:\n%s\nwant a new start finding everything cached", strings.Join(round, "\n"))
	}

	// Ctrl-C: exit 0.
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitFor(`^mc watch: stopped`)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("mc watch exited %d after SIGINT, want 0", ee.ExitCode())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("mc watch did not exit within 60 s of SIGINT")
	}

	// The cache is whole: a build finds every result.
	build := exec.Command("mc", "build", "//...")
	build.Dir = root
	build.Env = append(os.Environ(), env...)
	out, err := build.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Build: 0 built, 3 cached, 0 failed") {
		t.Errorf("mc build after mc watch: %v\n%s\nwant every stage cached", err, out)
	}
}

// TestWatchInterruptsBuild: Ctrl-C during a build cancels the running
// stage and exits 0; the next build runs the stage again (no result of
// the killed run was recorded).
func TestWatchInterruptsBuild(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(root, ".cache"), "HOME=" + root}
	writeWS(t, root, "WORKSPACE.mc", `workspace(name = "w")`+"\n")
	writeWS(t, root, "BUILD.mc", `stage(name = "slow", cmd = "echo begun; sleep 600; touch o", outs = ["o"])`+"\n")
	p := startWatch(t, root, env, "//...")
	p.waitFor(`\[//:slow\] begun`)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mc watch interrupted mid-build: %v, want exit 0\n%s", err, p.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("mc watch did not exit within 60 s of SIGINT")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("exit took %v: the stage was not killed", d)
	}
	// Nothing recorded for the killed stage: explain finds no result.
	ex := exec.Command("mc", "explain", "//:slow")
	ex.Dir = root
	ex.Env = append(os.Environ(), env...)
	out, err := ex.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not in the cache: it would run") {
		t.Errorf("mc explain after the interrupted build: %v\n%s\nwant no cached result", err, out)
	}
}

// TestWatchStartsBroken: a BUILD.mc with a syntax error when mc watch
// starts is reported with its position, and the save that fixes it builds;
// a pattern naming no package is a usage error (exit 2) instead.
func TestWatchStartsBroken(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required: apt-get install bubblewrap")
	}
	root := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(root, ".cache"), "HOME=" + root}
	writeWS(t, root, "WORKSPACE.mc", `workspace(name = "w")`+"\n")
	writeWS(t, root, "a/BUILD.mc", `stage(name = "s", cmd = "echo hi > o", outs = ["o"]`+"\n") // no ')'
	p := startWatch(t, root, env, "//...")
	p.waitFor(`^mc: a/BUILD.mc:\d+:\d+: `)
	p.waitFor(`fix the error and save`)
	writeWS(t, root, "a/BUILD.mc", `stage(name = "s", cmd = "echo hi > o", outs = ["o"])`+"\n")
	round := p.waitFor(`^mc watch: watching 1 stages`)
	if !anyLine(round, "Build: 1 built") {
		t.Errorf("after the fix:\n%s", strings.Join(round, "\n"))
	}
	if got := readOut(t, root, "a/o"); got != "hi\n" {
		t.Errorf("a/o = %q", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("after SIGINT: %v, want exit 0", err)
	}

	bad := exec.Command("mc", "watch", "//nope/...")
	bad.Dir = root
	bad.Env = append(os.Environ(), env...)
	out, err := bad.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no packages match //nope/...") {
		t.Errorf("mc watch //nope/...: %v\n%s\nwant exit 2 naming the pattern", err, out)
	}
}
