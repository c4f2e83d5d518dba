package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mc-build/mc/event"
)

// gitTimeout bounds the server's own git commands (mirror fetches, ls-remote).
const gitTimeout = 2 * time.Minute

// supersede cancels the queued or running runs of r's branch (a push) or
// pull request that r replaces: those whose commit is an ancestor of r's,
// and, where the histories diverged (a force push), those whose commit r's
// has replaced as the branch's head. Arrival order does not count: a run
// whose commit descends from r's (r was delivered late, or replayed) is never
// cancelled, nor is a run in its deploy stages. r's log says what was decided.
func (s *Server) supersede(ctx context.Context, r *Run) {
	others, err := s.st.activeRunsLike(ctx, r)
	if err != nil {
		s.logf("%v", err)
		return
	}
	if len(others) == 0 {
		return
	}
	say := func(format string, args ...any) { s.sayRun(ctx, r.ID, "superseding: "+fmt.Sprintf(format, args...)) }
	mirror, err := s.mirror(ctx, r, r.Commit)
	if err != nil {
		say("%v: no run cancelled", err)
		return
	}
	head, headErr := "", error(nil)
	headRead := false
	for _, o := range others {
		if o.Commit == r.Commit {
			say("run %d builds the same commit: left to run", o.ID)
			continue
		}
		var rel relation
		var err error
		if s.cfg.supersedeByArrival {
			if o.ID > r.ID {
				continue
			}
			rel = relAncestor
		} else {
			rel, err = s.relation(ctx, mirror, r, o.Commit)
		}
		if err != nil {
			say("run %d (%s) left to run: %v", o.ID, shortSHA(o.Commit), err)
			continue
		}
		switch rel {
		case relDescendant:
			say("run %d (%s) is not cancelled: its commit descends from this one", o.ID, shortSHA(o.Commit))
			continue
		case relDiverged:
			if !headRead {
				head, headErr = s.branchHead(ctx, r)
				headRead = true
			}
			if headErr != nil {
				say("run %d (%s) left to run: its commit and this one diverged, and %v", o.ID, shortSHA(o.Commit), headErr)
				continue
			}
			if head != r.Commit {
				say("run %d (%s) left to run: its commit and this one diverged, and this one is not the head of %s", o.ID, shortSHA(o.Commit), r.Branch)
				continue
			}
		}
		switch s.cancelUnlessDeploying(ctx, o.ID, &supersededError{by: r.ID}) {
		case cancelDone:
			say("cancelled run %d (%s): this commit replaces it", o.ID, shortSHA(o.Commit))
		case cancelDeploying:
			say("run %d (%s) is in its deploy stages: left to finish", o.ID, shortSHA(o.Commit))
		}
	}
}

// sayRun appends a line to run id's own log.
func (s *Server) sayRun(ctx context.Context, id int64, line string) {
	if err := s.st.appendEvents(context.WithoutCancel(ctx), id, []event.Event{{Type: event.Log, Time: s.cfg.Now(), Line: line}}, false); err != nil {
		s.logf("%v", err)
	}
	s.wakeWatchers(id)
}

type relation int

const (
	relAncestor   relation = iota // the other commit is an ancestor of r's
	relDescendant                 // the other commit descends from r's
	relDiverged                   // neither
)

// relation places commit other relative to r's commit, in mirror (both
// fetched).
func (s *Server) relation(ctx context.Context, mirror string, r *Run, other string) (relation, error) {
	if _, err := s.mirror(ctx, r, other); err != nil {
		return 0, err
	}
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	for _, c := range []struct {
		older, newer string
		rel          relation
	}{{other, r.Commit, relAncestor}, {r.Commit, other, relDescendant}} {
		_, code, err := s.gitCmd(ctx, r, mirror, "merge-base", "--is-ancestor", c.older, c.newer)
		switch {
		case err != nil:
			return 0, err
		case code == 0:
			return c.rel, nil
		case code != 1:
			return 0, fmt.Errorf("git merge-base --is-ancestor: exit status %d", code)
		}
	}
	return relDiverged, nil
}

// mirror returns the server's bare clone of r's repository
// (DATA/git/<hash of the clone URL>.git) holding commits, fetching those it
// lacks.
func (s *Server) mirror(ctx context.Context, r *Run, commits ...string) (string, error) {
	sum := sha256.Sum256([]byte(r.CloneURL))
	dir := filepath.Join(s.cfg.DataDir, "git", hex.EncodeToString(sum[:8])+".git")
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("mirror of %s: %w", r.CloneURL, err)
		}
		if _, _, err := s.gitCmd(ctx, r, dir, "init", "-q", "--bare"); err != nil {
			return "", fmt.Errorf("mirror of %s: %w", r.CloneURL, err)
		}
	}
	for _, c := range commits {
		if _, code, err := s.gitCmd(ctx, r, dir, "cat-file", "-e", c+"^{commit}"); err == nil && code == 0 {
			continue
		}
		out, code, err := s.gitCmd(ctx, r, dir, "fetch", "-q", "--no-tags", r.CloneURL, c)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(out))
		}
		if err != nil {
			return "", fmt.Errorf("fetching %s from %s: %w", shortSHA(c), r.CloneURL, err)
		}
	}
	return dir, nil
}

// branchHead reads the commit r's branch points to now, from the
// repository itself (git ls-remote of the clone URL; for a pull request
// the head repository), never from the delivery: "" when the branch is
// gone.
func (s *Server) branchHead(ctx context.Context, r *Run) (string, error) {
	ref := "refs/heads/" + r.Branch
	out, code, err := s.gitCmd(ctx, r, "", "ls-remote", r.CloneURL, ref)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(out))
	}
	if err != nil {
		return "", fmt.Errorf("could not read the head of %s from %s (git ls-remote: %v)", r.Branch, r.CloneURL, err)
	}
	for _, l := range strings.Split(out, "\n") {
		if sha, name, ok := strings.Cut(strings.TrimSpace(l), "\t"); ok && name == ref {
			return sha, nil
		}
	}
	return "", nil
}

// gitCmd runs git in dir ("" the data directory) with r's environment and
// returns its combined output and exit code; err is for git not running
// or not ending in time.
func (s *Server) gitCmd(ctx context.Context, r *Run, dir string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = s.cfg.DataDir
	}
	cmd.Env = append(append(s.buildEnv(r), "GIT_TERMINAL_PROMPT=0"), s.gitAuthEnv(ctx, r)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *osexec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return out.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), -1, fmt.Errorf("git %s: %w", args[0], err)
	}
	return out.String(), 0, nil
}
