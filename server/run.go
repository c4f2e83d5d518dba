package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mc-build/mc/exec"
)

// Grace periods of a cancelled build: SIGINT (mc kills its stages and
// records what finished), then SIGTERM, then SIGKILL.
const (
	interruptGrace = 5 * time.Second
	terminateGrace = 5 * time.Second
)

// secretEnv are variables the builds never see.
var secretEnv = []string{"MC_WEBHOOK_SECRET", "MC_GITHUB_TOKEN", "MC_AUTH_TOKEN", "MC_REPORT_TOKEN"}

// execute builds queued run id to its end and records how it ended.
func (s *Server) execute(ctx context.Context, id int64) {
	bg := context.WithoutCancel(ctx)
	r, err := s.st.getRun(bg, id)
	if err != nil || r == nil || r.Status != StatusQueued {
		return // cancelled while it waited
	}
	r.Status, r.Started = StatusRunning, s.cfg.Now()
	if err := s.st.setStarted(bg, id, r.Started); err != nil {
		s.logf("%v", err)
		return
	}
	s.wakeWatchers(id)
	s.postStatus(bg, r)
	s.logf("run %d started", id)
	status, reason := s.build(ctx, r)
	if ctx.Err() != nil {
		status, reason = StatusCancelled, context.Cause(ctx).Error()
		if errors.Is(context.Cause(ctx), errShutdown) {
			status = StatusInterrupted
		}
	}
	if err := s.st.finishRun(bg, id, status, reason, s.cfg.Now()); err != nil {
		s.logf("%v", err)
	}
	s.wakeWatchers(id)
	s.logf("run %d: %s %s", id, status, reason)
	if r, err := s.st.getRun(bg, id); err == nil && r != nil {
		s.postStatus(bg, r)
	}
}

// build checks r's commit out into a fresh workspace and runs mc on it.
func (s *Server) build(ctx context.Context, r *Run) (status, reason string) {
	bg := context.WithoutCancel(ctx)
	dir := filepath.Join(s.cfg.DataDir, "work", fmt.Sprint(r.ID))
	if err := os.RemoveAll(dir); err != nil {
		return StatusError, err.Error()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return StatusError, err.Error()
	}
	if !s.cfg.KeepWorkspaces {
		defer os.RemoveAll(dir)
	}
	say := func(line string) {
		if err := s.st.appendEvents(bg, r.ID, []exec.Event{{Type: exec.EventLog, Time: s.cfg.Now(), Line: line}}, false); err != nil {
			s.logf("%v", err)
		}
		s.wakeWatchers(r.ID)
	}
	git := func(args ...string) (string, error) {
		say("$ git " + strings.Join(args, " "))
		cmd := osexec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(s.buildEnv(r), "GIT_TERMINAL_PROMPT=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := runGroup(ctx, cmd)
		for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			if l != "" {
				say(l)
			}
		}
		if err != nil {
			return "", fmt.Errorf("git %s: %w", args[0], err)
		}
		return strings.TrimSpace(out.String()), nil
	}
	mergeBase := ""
	steps := [][]string{
		{"init", "-q"},
		{"fetch", "-q", "--no-tags", r.CloneURL, r.Commit},
	}
	if r.Trigger == TriggerPullRequest {
		steps = append(steps, []string{"fetch", "-q", "--no-tags", r.BaseURL, r.BaseSHA})
	}
	for _, st := range steps {
		if _, err := git(st...); err != nil {
			return StatusError, "checkout: " + err.Error()
		}
	}
	if r.Trigger == TriggerPullRequest {
		mb, err := git("merge-base", r.Commit, r.BaseSHA)
		if err != nil {
			return StatusError, "merge base: " + err.Error()
		}
		mergeBase = mb
	}
	if _, err := git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", r.Commit); err != nil {
		return StatusError, "checkout: " + err.Error()
	}

	// The graph to draw, before the build: every target of //... and its deps.
	var qout bytes.Buffer
	q := s.mc(r, dir, "query", "--output=json", "deps(//...)")
	q.Stdout = &qout
	var qerr bytes.Buffer
	q.Stderr = &qerr
	if err := runGroup(ctx, q); err != nil {
		say("mc query: " + strings.TrimSpace(qerr.String()) + " (" + err.Error() + "); the graph is drawn from the events")
	} else if g, err := parseQueryGraph(qout.Bytes()); err != nil {
		say(err.Error())
	} else if err := s.st.setGraph(bg, r.ID, g); err != nil {
		s.logf("%v", err)
	}
	if ctx.Err() != nil {
		return StatusCancelled, ""
	}

	// --explain: every stage that ran says why (its key's parts that
	// changed), shown on the run page.
	args := []string{"test", "--output=json", "--explain"}
	if r.Deploy {
		args = append(args, "--deploy")
	}
	if r.Trigger == TriggerPullRequest {
		args = append(args, "--affected-since="+mergeBase, "--cache-write=false")
	}
	args = append(append(args, s.cfg.BuildArgs...), "//...")
	say("$ mc " + strings.Join(args, " "))
	code, err := s.stream(ctx, r.ID, s.mc(r, dir, args...))
	switch {
	case err != nil:
		return StatusError, "mc: " + err.Error()
	case code == 0:
		return StatusSuccess, ""
	case code == 1:
		return StatusFailure, "a stage or test failed"
	case code == 2:
		return StatusFailure, "bad BUILD files or unknown targets (exit 2)"
	case code == 3:
		return StatusError, "infrastructure failure (exit 3)"
	case code == 4:
		// mc test found no test stage (//... in a repository without
		// tests): everything built, which is what CI asked.
		return StatusSuccess, "built; no test stages to run (exit 4)"
	default:
		return StatusError, fmt.Sprintf("mc exited with status %d", code)
	}
}

// mc returns the command running the mc binary (argv[0] "mc") in dir.
func (s *Server) mc(r *Run, dir string, args ...string) *osexec.Cmd {
	cmd := &osexec.Cmd{Path: s.cfg.Exe, Args: append([]string{"mc"}, args...), Dir: dir, Env: s.buildEnv(r)}
	return cmd
}

// prSafeEnv are the variables of the server's environment a pull-request
// build sees (besides Config.PREnv): what finding tools, caches and the
// shared cache's endpoint needs, no credentials. A pull request runs code
// its author wrote, possibly from a fork: it must not read the secrets
// trusted builds get (a stage's `secrets` are taken from this environment).
var prSafeEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM",
	"XDG_CACHE_HOME", "XDG_DATA_HOME", "GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT", "GOTOOLCHAIN", "GOFLAGS",
	"MC_CACHE", "MC_S3_ENDPOINT", "MC_REGISTRY", "MC_RUNC", "AWS_REGION", "AWS_DEFAULT_REGION"}

// prAllowed reports whether a pull-request build may see variable k.
func (s *Server) prAllowed(k string) bool {
	if strings.HasPrefix(k, "LC_") || slices.Contains(prSafeEnv, k) {
		return true
	}
	return slices.Contains(s.cfg.PREnv, k)
}

// buildEnv is the environment of r's commands: the server's without its
// secrets — for a pull request only prSafeEnv and Config.PREnv — plus
// Config.Env.
func (s *Server) buildEnv(r *Run) []string {
	secrets := []string{s.cfg.WebhookSecret, s.cfg.GitHubToken, s.cfg.AuthToken}
	pr := r != nil && r.Trigger == TriggerPullRequest
	var env []string
outer:
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if pr && !s.prAllowed(k) {
			continue
		}
		for _, sk := range secretEnv {
			if k == sk {
				continue outer
			}
		}
		for _, sv := range secrets {
			if sv != "" && v == sv {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, s.cfg.Env...)
}

// stream runs the build, storing its JSON events (stdout) and its standard
// error (as the run's own log lines) in batches, and returns its exit code.
func (s *Server) stream(ctx context.Context, id int64, cmd *osexec.Cmd) (int, error) {
	bg := context.WithoutCancel(ctx)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	evs := make(chan exec.Event, 1024)
	var readers sync.WaitGroup
	read := func(r io.Reader, parse bool) {
		defer readers.Done()
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				var e exec.Event
				if !parse || json.Unmarshal(line, &e) != nil || e.Type == "" {
					e = exec.Event{Type: exec.EventLog, Time: s.cfg.Now(), Line: strings.TrimRight(string(line), "\r\n")}
				}
				evs <- e
			}
			if err != nil {
				return
			}
		}
	}
	readers.Add(2)
	done := make(chan error, 1)
	go func() {
		done <- runGroupStarted(ctx, cmd, func() {
			go read(stdout, true)
			go read(stderr, false)
		}, func() { readers.Wait() })
	}()
	go func() {
		readers.Wait()
		close(evs)
	}()
	var batch []exec.Event
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := s.st.appendEvents(bg, id, batch, false); err != nil {
			s.logf("%v", err)
		}
		batch = batch[:0]
		s.wakeWatchers(id)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				break loop
			}
			batch = append(batch, e)
			if len(batch) >= 256 {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
	flush()
	err = <-done
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// runGroup runs cmd in its own process group, which a cancelled ctx
// interrupts (SIGINT, then SIGTERM, then SIGKILL).
func runGroup(ctx context.Context, cmd *osexec.Cmd) error {
	return runGroupStarted(ctx, cmd, nil, nil)
}

// runGroupStarted is runGroup calling started after the start, and
// beforeWait before waiting (pipes must be read to their end first).
func runGroupStarted(ctx context.Context, cmd *osexec.Cmd, started, beforeWait func()) error {
	// Pdeathsig: a server that dies (even by SIGKILL) takes its builds
	// with it; its successor shows their runs as interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		if started != nil {
			// The readers of the pipes still end (nothing to read).
			started()
		}
		return err
	}
	if started != nil {
		started()
	}
	finished := make(chan struct{})
	go func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		pg := -cmd.Process.Pid
		for _, step := range []struct {
			sig   syscall.Signal
			grace time.Duration
		}{{syscall.SIGINT, interruptGrace}, {syscall.SIGTERM, terminateGrace}, {syscall.SIGKILL, 0}} {
			_ = syscall.Kill(pg, step.sig)
			select {
			case <-finished:
				return
			case <-time.After(step.grace):
			}
		}
	}()
	if beforeWait != nil {
		beforeWait()
	}
	err := cmd.Wait()
	close(finished)
	return err
}
