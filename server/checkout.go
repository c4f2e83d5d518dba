package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Incremental checkouts. The server keeps one bare mirror per repository
// (DATA/git/<hash>.git, fetched into, shared with supersede.go) and a pool
// of git worktrees of it per trust tier (DATA/work/<hash>/<tier>-<n>), one
// per run building at once. A run takes the lowest free slot of its tier,
// checks its commit out there (git checkout --force), and removes every
// untracked file but mc-out/ (git clean -ffdx -e /mc-out/): the slot's path
// stays the same from run to run, so mc's stat cache (keyed by path) knows
// the files that did not change, and mc-out/ holds the outputs already
// placed. The run history follows the branch, not the path (historyEnv).
//
// Trust. A pull request runs code anyone may have written, and mc writes
// its outputs into the checkout (mc-out/). So pull requests build in
// slots of their own ("untrusted"), which pushes ("trusted") never use:
// nothing a pull request leaves in its worktree, mc-out/ included, is
// ever in a trusted run's workspace, and git clean is hygiene, not the
// guarantee. The stat caches and results are apart too (mc's trust
// tiers). A commit that tracks anything at mc-out (a symlink there would
// have mc write its outputs wherever it points, as the server's user) is
// refused before mc runs, in either tier.

// The trust tiers of the worktree slots.
const (
	slotTrusted   = "trusted"
	slotUntrusted = "untrusted"
)

// keptDir is the one untracked directory a slot keeps between runs.
const keptDir = "mc-out"

// slots are the worktrees in use, and what the last evaluation of each
// repository and tier found (evalcache.go).
type slots struct {
	mu    sync.Mutex
	busy  map[string]bool
	evals map[string]*evalResult
	repos map[string]int // checkouts under way or in use, by repository hash (repo_prune.go)
}

// workspace is a run's checked out worktree.
type workspace struct {
	dir       string
	mergeBase string // pull requests: the merge base with the base commit
	reused    bool   // the slot held an earlier run's checkout
	release   func()
}

// slotTier is the pool r builds in.
func (s *Server) slotTier(r *Run) string {
	if r.Trigger == TriggerPullRequest && !s.cfg.sharedSlots {
		return slotUntrusted
	}
	return slotTrusted
}

// repoURL is the repository a run belongs to: a pull request's base
// repository (its head may be a fork), a push's own.
func repoURL(r *Run) string {
	if r.Trigger == TriggerPullRequest && r.BaseURL != "" {
		return r.BaseURL
	}
	return r.CloneURL
}

func urlHash(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:8])
}

// acquireSlot takes the lowest free slot of r's tier.
func (s *Server) acquireSlot(r *Run) (dir string, release func()) {
	base := filepath.Join(s.cfg.DataDir, "work", urlHash(repoURL(r)))
	s.slots.mu.Lock()
	defer s.slots.mu.Unlock()
	if s.slots.busy == nil {
		s.slots.busy = map[string]bool{}
	}
	for n := 0; ; n++ {
		dir = filepath.Join(base, fmt.Sprintf("%s-%d", s.slotTier(r), n))
		if !s.slots.busy[dir] {
			s.slots.busy[dir] = true
			return dir, func() {
				s.slots.mu.Lock()
				delete(s.slots.busy, dir)
				s.slots.mu.Unlock()
			}
		}
	}
}

// checkout fetches r's commit (and a pull request's base) into the
// repository's mirror and checks it out, clean, in a slot of r's tier.
// say writes to the run's log.
func (s *Server) checkout(ctx context.Context, r *Run, say func(string)) (*workspace, error) {
	hash := urlHash(repoURL(r))
	unuse := s.useRepo(hash)
	ok := false
	defer func() {
		if !ok {
			unuse()
		}
	}()
	mirror := filepath.Join(s.cfg.DataDir, "git", hash+".git")
	if err := s.fetchInto(ctx, r, mirror, r.CloneURL, r.Commit, say); err != nil {
		return nil, err
	}
	if r.Trigger == TriggerPullRequest {
		if err := s.fetchInto(ctx, r, mirror, r.BaseURL, r.BaseSHA, say); err != nil {
			return nil, err
		}
	}
	dir, release := s.acquireSlot(r)
	ws := &workspace{dir: dir, release: func() { release(); unuse() }}
	defer func() {
		if !ok {
			release()
		}
	}()
	git := func(dir string, args ...string) (string, error) { return s.gitRun(ctx, r, dir, args...) }
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		// Reuse: the commit over whatever was there, then every untracked
		// file but mc-out/ goes (ignored ones too: -x).
		_, err := git(dir, "-c", "advice.detachedHead=false", "checkout", "-q", "--force", "--detach", r.Commit)
		if err == nil {
			_, err = git(dir, "clean", "-q", "-ffdx", "-e", "/"+keptDir+"/")
		}
		if err == nil {
			ws.reused = true
		} else {
			say(fmt.Sprintf("checkout: the worktree %s could not be reused (%v): making it again", dir, err))
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("checkout: %w", err)
			}
		}
	}
	if !ws.reused {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("checkout: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("checkout: %w", err)
		}
		s.gitMu.Lock()
		_, err := git(mirror, "worktree", "prune")
		if err == nil {
			_, err = git(mirror, "worktree", "add", "-q", "--force", "--detach", dir, r.Commit)
		}
		s.gitMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("checkout: %w", err)
		}
	}
	how := "a new worktree"
	if ws.reused {
		how = "reused worktree"
	}
	say(fmt.Sprintf("checkout: %s at %s (%s, %s tier)", shortSHA(r.Commit), dir, how, s.slotTier(r)))
	// mc writes its outputs under mc-out/: a commit that puts something
	// there (a symlink to elsewhere) would have mc write through it.
	tracked, err := git(dir, "ls-tree", "--name-only", "HEAD", "--", keptDir)
	if err != nil {
		return nil, fmt.Errorf("checkout: %w", err)
	}
	if tracked != "" {
		return nil, fmt.Errorf("checkout: %s tracks %s, where mc writes its outputs: refused (remove it from the repository)", shortSHA(r.Commit), keptDir)
	}
	if r.Trigger == TriggerPullRequest {
		mb, err := git(dir, "merge-base", r.Commit, r.BaseSHA)
		if err != nil {
			return nil, fmt.Errorf("merge base: %w", err)
		}
		ws.mergeBase = mb
	}
	ok = true
	return ws, nil
}

// fetchInto fetches commit from url into the bare repository mirror
// (made if missing), unless it has it already.
func (s *Server) fetchInto(ctx context.Context, r *Run, mirror, url, commit string, say func(string)) error {
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		if err := os.MkdirAll(mirror, 0o700); err != nil {
			return fmt.Errorf("mirror of %s: %w", url, err)
		}
		if _, _, err := s.gitCmd(ctx, r, mirror, "init", "-q", "--bare"); err != nil {
			return fmt.Errorf("mirror of %s: %w", url, err)
		}
	}
	if _, code, err := s.gitCmd(ctx, r, mirror, "cat-file", "-e", commit+"^{commit}"); err == nil && code == 0 {
		return nil
	}
	say(fmt.Sprintf("$ git fetch --no-tags %s %s", url, commit))
	if _, err := s.gitRun(ctx, r, mirror, "fetch", "-q", "--no-tags", url, commit); err != nil {
		return fmt.Errorf("checkout: fetching %s from %s: %w", shortSHA(commit), url, err)
	}
	return nil
}

// gitRun runs git in dir with r's environment until it ends or ctx is
// cancelled (no time limit: a first fetch of a big repository takes what
// it takes), and returns its output; a failure carries the output.
func (s *Server) gitRun(ctx context.Context, r *Run, dir string, args ...string) (string, error) {
	cmd := osexec.Command("git", args...)
	cmd.Dir = dir
	// The server's credential for GitHub (gitauth.go), never a build's.
	cmd.Env = append(append(s.buildEnv(r), "GIT_TERMINAL_PROMPT=0"), s.gitAuthEnv(ctx, r)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := runGroup(ctx, cmd); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// historyEnv names r's run history for mc (MC_HISTORY_KEY): the branch of
// a push, the pull request, so that "why it ran" compares with the last
// run of the same branch wherever it was checked out. MC_HISTORY_BASE is
// the default branch's: where a new branch or pull request starts.
func (s *Server) historyEnv(ctx context.Context, r *Run) []string {
	repo := r.Repo
	if repo == "" {
		repo = repoURL(r)
	}
	key := repo + "@" + r.Branch
	if r.Trigger == TriggerPullRequest {
		key = fmt.Sprintf("%s#%d", repo, r.PR)
	}
	env := []string{"MC_HISTORY_KEY=" + key}
	if def := s.defaultBranch(ctx, r); def != "" {
		env = append(env, "MC_HISTORY_BASE="+repo+"@"+def)
	}
	return env
}

// defaultBranch is r's repository's default branch: a push that deploys
// is to it; else the branch of its latest such run; else what the
// repository's HEAD names (git ls-remote --symref); "" when unknown.
func (s *Server) defaultBranch(ctx context.Context, r *Run) string {
	if r.Trigger == TriggerPush && r.Deploy {
		return r.Branch
	}
	var b string
	err := s.st.db.QueryRowContext(ctx, `SELECT branch FROM runs WHERE repo = ? AND trigger = ? AND deploy = 1
		ORDER BY id DESC LIMIT 1`, r.Repo, TriggerPush).Scan(&b)
	if err == nil && b != "" {
		return b
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.logf("run %d: default branch: %v", r.ID, err)
	}
	out, code, err := s.gitCmd(ctx, r, "", "ls-remote", "--symref", repoURL(r), "HEAD")
	if err != nil || code != 0 {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(l, "ref: refs/heads/"); ok {
			if name, _, ok := strings.Cut(ref, "\t"); ok {
				return name
			}
		}
	}
	return ""
}
