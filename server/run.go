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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mc-build/mc/event"
)

// Grace periods of a cancelled build: SIGINT (mc kills its stages and
// records what finished), then SIGTERM, then SIGKILL.
const (
	interruptGrace = 5 * time.Second
	terminateGrace = 5 * time.Second
)

// secretEnv are variables the builds never see.
var secretEnv = []string{"MC_WEBHOOK_SECRET", "MC_GITHUB_TOKEN", "MC_AUTH_TOKEN", "MC_REPORT_TOKEN", "MC_GITHUB_OAUTH_CLIENT_SECRET"}

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

// build checks r's commit out in a worktree of its repository (checkout.go)
// and runs mc on it.
func (s *Server) build(ctx context.Context, r *Run) (status, reason string) {
	bg := context.WithoutCancel(ctx)
	say := func(line string) {
		if err := s.st.appendEvents(bg, r.ID, []event.Event{{Type: event.Log, Time: s.cfg.Now(), Line: line}}, false); err != nil {
			s.logf("%v", err)
		}
		s.wakeWatchers(r.ID)
	}
	ws, err := s.checkout(ctx, r, say)
	if err != nil {
		if ctx.Err() != nil {
			return StatusCancelled, ""
		}
		say(err.Error())
		return StatusError, err.Error()
	}
	defer ws.release()
	dir, mergeBase := ws.dir, ws.mergeBase
	hist := s.historyEnv(ctx, r)
	mc := func(args ...string) *osexec.Cmd {
		cmd := s.mc(r, dir, args...)
		cmd.Env = append(cmd.Env, hist...)
		return cmd
	}

	// What evaluating the BUILD files found for the last run of the same
	// structure (evalcache.go): not evaluated again.
	ev := &evalResult{}
	if key, err := s.structureKey(ctx, r, dir); err != nil {
		say(fmt.Sprintf("the commit's structure could not be read (%v): evaluating it", err))
	} else if c := s.cachedEval(r, key); c != nil {
		ev = c
	} else {
		ev.key = key
	}

	// A run that deploys checks first what its deploy needs (preflight.go):
	// one that cannot deploy says so now, not after the build.
	deploy := r.Deploy
	if r.Deploy && ev.preflight {
		say("preflight: passed for the same BUILD files and file list (run before this one)")
		deploy = !ev.nothing
	} else if r.Deploy {
		status, reason, ok, nothing := s.preflight(ctx, r, mc, say)
		if !ok {
			return status, reason
		}
		deploy = !nothing
		ev.preflight, ev.nothing = true, nothing
	}

	// The graph to draw, before the build: every target of //... and its deps.
	if ev.graph != nil {
		say("graph: the same BUILD files and file list as the run before: not evaluated again")
	} else {
		var qout, qerr bytes.Buffer
		q := mc("query", "--output=json", "deps(//...)")
		q.Stdout, q.Stderr = &qout, &qerr
		if err := runGroup(ctx, q); err != nil {
			say("mc query: " + strings.TrimSpace(qerr.String()) + " (" + err.Error() + "); the graph is drawn from the events")
		} else if g, err := parseQueryGraph(qout.Bytes()); err != nil {
			say(err.Error())
		} else {
			ev.graph, ev.tests = g, bytes.Contains(qout.Bytes(), []byte(`"test":true`))
		}
	}
	if ev.graph != nil {
		if err := s.st.setGraph(bg, r.ID, ev.graph); err != nil {
			s.logf("%v", err)
		}
	}
	if ctx.Err() == nil {
		s.keepEval(r, ev)
	}
	if ctx.Err() != nil {
		return StatusCancelled, ""
	}

	// --explain: every stage that ran says why (its key's parts that
	// changed), shown on the run page. Deploy stages never run here: they
	// run after the build, once the commit is known to be the branch's head
	// (deploy). mc test with no test stage builds nothing (exit 4): a
	// repository without tests is built with mc build (the graph says so,
	// or the exit code, and then it is built after all).
	cmd := "test"
	if ev.graph != nil && !ev.tests {
		cmd = "build"
	}
	for {
		args := []string{cmd, "--output=json", "--explain"}
		if r.Trigger == TriggerPullRequest {
			// A pull request runs code anyone may have written: nothing it
			// writes may reach what trusted builds use (SPEC §4a).
			args = append(args, "--affected-since="+mergeBase, "--cache-write=false", untrustedFlag)
		}
		args = append(append(args, s.cfg.BuildArgs...), "//...")
		say("$ mc " + strings.Join(args, " "))
		var last lastError
		code, err := s.stream(ctx, r.ID, mc(args...), last.adapt)
		if cmd == "test" && err == nil && code == 4 && ctx.Err() == nil {
			say("no test stages: building instead")
			cmd = "build"
			continue
		}
		status, reason = last.outcome(code, err)
		break
	}
	if !r.Deploy || ctx.Err() != nil {
		return status, reason
	}
	if status == StatusSuccess && !deploy {
		s.noteDeploy(bg, r, DeploySkipped, "nothing to deploy: no deploy stage, no image to push")
		return status, reason
	}
	if status != StatusSuccess {
		s.noteDeploy(bg, r, DeploySkipped, "not deployed: the build did not succeed")
		return status, reason
	}
	return s.deploy(ctx, r, mc, say)
}

// untrustedFlag makes mc build in the untrusted tier (SPEC §4a): it reads
// trusted results but writes only its own tier, and sees no secrets.
const untrustedFlag = "--untrusted"

// buildOutcome maps mc's exit code (SPEC §6) to a run's status.
func buildOutcome(code int, err error) (status, reason string) {
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
		// mc test found no test stage; build() then builds instead, so
		// this is only reached by a build that says so (it should not).
		return StatusFailure, "no test stages matched (exit 4)"
	default:
		return StatusError, fmt.Sprintf("mc exited with status %d", code)
	}
}

// deploy runs r's deploy stages (its build succeeded) if, as they start,
// r's commit is its branch's head, read from the repository itself (git
// ls-remote), never from the delivery: a late or replayed delivery of an
// older commit builds but does not deploy. The deploys of a branch run one
// at a time, each checking the head when its turn comes, so the last to
// deploy is the newest head. A head that cannot be read is not a head:
// nothing is deployed and the run is an error (fail closed).
func (s *Server) deploy(ctx context.Context, r *Run, mc func(...string) *osexec.Cmd, say func(string)) (status, reason string) {
	bg := context.WithoutCancel(ctx)
	unlock, err := s.lockDeploys(ctx, r)
	if err != nil {
		s.noteDeploy(bg, r, DeploySkipped, "not deployed: the run was stopped before its deploy stages")
		return StatusCancelled, ""
	}
	defer unlock()
	head, err := s.branchHead(ctx, r)
	switch {
	case ctx.Err() != nil:
		s.noteDeploy(bg, r, DeploySkipped, "not deployed: the run was stopped before its deploy stages")
		return StatusCancelled, ""
	case err != nil && !s.cfg.noHeadCheck:
		s.noteDeploy(bg, r, DeployUnconfirmed, "not deployed: "+err.Error())
		return StatusError, "not deployed: the head of " + r.Branch + " could not be read"
	case head != r.Commit && !s.cfg.noHeadCheck:
		now := "the branch no longer exists"
		if head != "" {
			now = "its head is now " + shortSHA(head)
		}
		s.noteDeploy(bg, r, DeploySkipped, fmt.Sprintf("built without deploying: %s is no longer the head of %s (%s)",
			shortSHA(r.Commit), r.Branch, now))
		return StatusSuccess, ""
	}
	s.mu.Lock()
	s.deploying[r.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.deploying, r.ID)
		s.mu.Unlock()
	}()
	s.noteDeploy(bg, r, DeployRunning, fmt.Sprintf("deploying: %s was the head of %s at %s",
		shortSHA(r.Commit), r.Branch, s.cfg.Now().UTC().Format(time.RFC3339)))
	// Everything but the deploy stages was built above: this build finds it
	// cached, and --deploy pushes the images the deploy stages use.
	args := append(append([]string{"build", "--output=json", "--explain", "--deploy"}, s.cfg.BuildArgs...), "//...")
	say("$ mc " + strings.Join(args, " "))
	var last lastError
	adapt := s.deployEvents(bg, r.ID)
	code, err := s.stream(ctx, r.ID, mc(args...), func(e event.Event) (event.Event, bool) {
		last.adapt(e)
		return adapt(e)
	})
	status, reason = last.outcome(code, err)
	switch {
	case ctx.Err() != nil:
		s.noteDeploy(bg, r, DeployFailed, "the deploy was interrupted")
	case status == StatusSuccess:
		s.noteDeploy(bg, r, DeployDone, fmt.Sprintf("deployed %s, the head of %s", shortSHA(r.Commit), r.Branch))
	default:
		s.noteDeploy(bg, r, DeployFailed, "the deploy failed: "+reason)
		reason = "deploy: " + reason
	}
	return status, reason
}

// lockDeploys waits for the deploys of r's branch to be r's to run.
func (s *Server) lockDeploys(ctx context.Context, r *Run) (unlock func(), err error) {
	key := r.Repo + "\x00" + r.CloneURL + "\x00" + r.Branch
	for {
		s.mu.Lock()
		ch, busy := s.deployLock[key]
		if !busy {
			mine := make(chan struct{})
			s.deployLock[key] = mine
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.deployLock, key)
				s.mu.Unlock()
				close(mine)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// deployEvents adapts the events of the deploy build to the run's record:
// the stages it finds cached were built (or found) by the build before it,
// and its summary adds to that build's.
func (s *Server) deployEvents(ctx context.Context, id int64) func(event.Event) (event.Event, bool) {
	return func(e event.Event) (event.Event, bool) {
		switch e.Type {
		case event.StageCached, event.BuildStarted:
			return e, false
		case event.BuildFinished:
			if e.Summary == nil {
				return e, true
			}
			before, err := s.st.getRun(ctx, id)
			if err != nil || before == nil {
				return e, true
			}
			sum := *e.Summary
			sum.Built += before.Built
			sum.Failed += before.Failed
			sum.Skipped += before.Skipped
			sum.Cached = before.Cached
			if len(before.CriticalPath) > 0 {
				sum.CriticalPath, sum.CriticalPathMS = before.CriticalPath, before.CriticalMS
			}
			e.Summary = &sum
		}
		return e, true
	}
}

// noteDeploy records where r's deploy stands, and says it in r's log.
func (s *Server) noteDeploy(ctx context.Context, r *Run, state, note string) {
	if err := s.st.setDeploy(ctx, r.ID, state, note); err != nil {
		s.logf("%v", err)
	}
	s.sayRun(ctx, r.ID, note)
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
// adapt, if set, rewrites or drops (false) each event before it is stored.
func (s *Server) stream(ctx context.Context, id int64, cmd *osexec.Cmd, adapt func(event.Event) (event.Event, bool)) (int, error) {
	bg := context.WithoutCancel(ctx)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	evs := make(chan event.Event, 1024)
	var readers sync.WaitGroup
	read := func(r io.Reader, parse bool) {
		defer readers.Done()
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				var e event.Event
				if !parse || json.Unmarshal(line, &e) != nil || e.Type == "" {
					e = event.Event{Type: event.Log, Time: s.cfg.Now(), Line: strings.TrimRight(string(line), "\r\n")}
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
	var batch []event.Event
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
			if adapt != nil {
				if e, ok = adapt(e); !ok {
					continue
				}
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
