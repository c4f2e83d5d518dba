package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	osexec "os/exec"
	"strings"

	"github.com/mc-build/mc/event"
)

// preflight runs `mc build --deploy --check //...` in r's checkout before
// anything is built: a push run that cannot deploy (an image to push and no
// registry, a secret a deploy stage names that the server lacks) fails at
// once, its reason and its deploy line saying what is missing, instead of
// building for minutes and failing in the deploy. ok: go on building;
// nothing: there is nothing to deploy (no deploy stage, no image to push),
// so the run needs no deploy step.
func (s *Server) preflight(ctx context.Context, r *Run, mc func(...string) *osexec.Cmd, say func(string)) (status, reason string, ok, nothing bool) {
	bg := context.WithoutCancel(ctx)
	args := append(append([]string{"build", "--deploy", "--check"}, s.cfg.BuildArgs...), "//...")
	say("$ mc " + strings.Join(args, " "))
	cmd := mc(args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runGroup(ctx, cmd)
	var last lastError
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if l != "" {
			say(l)
			last.adapt(event.Event{Type: event.Log, Line: l})
		}
	}
	if ctx.Err() != nil {
		return StatusCancelled, "", false, false
	}
	code := 0
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	if err == nil && code == 0 {
		return "", "", true, strings.Contains(out.String(), "mc: preflight: ready ("+nothingToDeploy+")")
	}
	status, reason = last.outcome(code, err)
	if msg, isPreflight := strings.CutPrefix(last.msg, "preflight: "); isPreflight {
		msg = strings.TrimPrefix(msg, "this build cannot run as asked: ")
		reason = "cannot deploy: " + msg
	}
	s.noteDeploy(bg, r, DeploySkipped, "not deployed, nothing built: "+strings.TrimPrefix(reason, "cannot deploy: "))
	return status, reason, false, false
}

// nothingToDeploy is how mc build --check ends when the build has no deploy
// stage and no image to push (cmd/mc's nothingToDeploy).
const nothingToDeploy = "nothing to deploy or push"

// lastError keeps the message mc ended with (its last "mc: " line on
// standard error, with the indented lines after it), so that a run's
// reason is mc's own words rather than its exit code.
type lastError struct {
	msg   string
	open  bool // the indented lines after msg's first continue it
	colon bool // msg's first line ended with ":" (dropped), and nothing followed yet
}

// adapt is a stream adapter: it watches the build's own log lines
// (standard error) and passes every event on.
func (l *lastError) adapt(e event.Event) (event.Event, bool) {
	if e.Type != event.Log || e.Label != "" {
		return e, true
	}
	switch {
	case strings.HasPrefix(e.Line, "mc: warning: "):
		l.open = false
	case strings.HasPrefix(e.Line, "mc: "):
		m := strings.TrimPrefix(e.Line, "mc: ")
		l.msg, l.colon = strings.CutSuffix(m, ":")
		l.open = true
	case l.open && strings.HasPrefix(e.Line, "  "):
		sep := "; "
		if l.colon {
			sep, l.colon = ": ", false
		}
		l.msg += sep + strings.TrimSpace(e.Line)
	default:
		l.open = false
	}
	return e, true
}

// outcome is buildOutcome with mc's message as the reason of exit 2 and 3.
func (l *lastError) outcome(code int, err error) (status, reason string) {
	status, reason = buildOutcome(code, err)
	if err == nil && l.msg != "" && (code == 2 || code == 3) {
		reason = fmt.Sprintf("%s (exit %d)", l.msg, code)
	}
	return status, reason
}
