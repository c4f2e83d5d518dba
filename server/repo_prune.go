package server

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// A repository's mirror (DATA/git/HASH.git) and worktree slots
// (DATA/work/HASH/) outlive its runs: once retention has removed the last
// run of a repository (an App uninstalled, a fork's pull requests long
// closed), pruneRepos removes them too. A repository a checkout is using is
// left alone (useRepo). Its directories are renamed aside under the slots'
// lock and removed after it, so a checkout starting meanwhile finds none and
// makes them again; what a crash leaves aside goes at the next prune.

// pruneAside starts the names of directories being removed.
const pruneAside = ".pruning-"

// useRepo marks the repository hash in use by a checkout until the
// returned func is called.
func (s *Server) useRepo(hash string) (unuse func()) {
	s.slots.mu.Lock()
	defer s.slots.mu.Unlock()
	if s.slots.repos == nil {
		s.slots.repos = map[string]int{}
	}
	s.slots.repos[hash]++
	return func() {
		s.slots.mu.Lock()
		defer s.slots.mu.Unlock()
		if s.slots.repos[hash]--; s.slots.repos[hash] <= 0 {
			delete(s.slots.repos, hash)
		}
	}
}

// pruneRepos removes the mirrors and worktree slots of the repositories no
// run in the database belongs to.
func (s *Server) pruneRepos(ctx context.Context) error {
	urls, err := s.st.repoURLs(ctx)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range urls {
		keep[urlHash(repoURL(r))] = true
	}
	gitDir, workDir := filepath.Join(s.cfg.DataDir, "git"), filepath.Join(s.cfg.DataDir, "work")
	// A repository's hash names both; work/ also holds the run-id
	// directories of runs built without slots, which are not hashes.
	var stale []string
	seen := map[string]bool{}
	for _, dir := range []string{gitDir, workDir} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, pruneAside) {
				stale = append(stale, filepath.Join(dir, name)) // left by a crash
				continue
			}
			hash := strings.TrimSuffix(name, ".git")
			if !e.IsDir() || !isURLHash(hash) || keep[hash] || seen[hash] {
				continue
			}
			seen[hash] = true
		}
	}
	var aside []string
	var removed []string
	s.slots.mu.Lock()
	for hash := range seen {
		if s.slots.repos[hash] > 0 {
			continue
		}
		for _, p := range []string{filepath.Join(gitDir, hash+".git"), filepath.Join(workDir, hash)} {
			a := filepath.Join(filepath.Dir(p), pruneAside+hash+"-"+randomToken())
			if err := os.Rename(p, a); err == nil {
				aside = append(aside, a)
			} else if !errors.Is(err, os.ErrNotExist) {
				s.logf("retention: %v", err)
			}
		}
		for k := range s.slots.evals {
			if strings.HasPrefix(k, hash+"/") {
				delete(s.slots.evals, k)
			}
		}
		removed = append(removed, hash)
	}
	s.slots.mu.Unlock()
	for _, p := range append(aside, stale...) {
		if err := os.RemoveAll(p); err != nil {
			s.logf("retention: %v", err)
		}
	}
	if len(removed) > 0 {
		s.logf("retention: removed the mirrors and worktrees of %d repositories without runs", len(removed))
	}
	return nil
}

// isURLHash reports whether name is a urlHash (16 lowercase hex digits).
func isURLHash(name string) bool {
	if len(name) != 16 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil && strings.ToLower(name) == name
}
