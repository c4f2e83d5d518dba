package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
)

// What mc serve learns by evaluating a commit's BUILD files before its
// build — the graph to draw (mc query) and the deploy preflight (mc build
// --check) — depends on the BUILD.mc, WORKSPACE.mc and .star files and on
// which files exist (globs), not on the other files' contents. A push that
// changes a source file has the same structure as the run before it, so
// the server reuses what that run found instead of evaluating twice more
// (each evaluation of a 1,000-package workspace is a good part of a
// one-file build). Kept per repository and tier, the last one only; a
// failed preflight is never kept (it runs again and says why).

// evalResult is what evaluating one structure gave.
type evalResult struct {
	key       string
	graph     *Graph // from mc query --output=json deps(//...); nil: not known
	tests     bool   // the graph has a test stage
	preflight bool   // mc build --deploy --check passed
	nothing   bool   // ... and found nothing to deploy
}

// structureKey names what evaluating dir's checkout depends on: every
// tracked path with its mode, the contents of the files mc evaluates, the
// mc binary, and the build arguments.
func (s *Server) structureKey(ctx context.Context, r *Run, dir string) (string, error) {
	out, err := s.gitRun(ctx, r, dir, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fi, err := os.Stat(s.cfg.Exe)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%q\x00", s.cfg.Exe, fi.Size(), fi.ModTime().UnixNano(), s.cfg.BuildArgs)
	for _, e := range strings.Split(out, "\x00") {
		meta, p, ok := strings.Cut(e, "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta) // mode type object
		if len(f) != 3 {
			continue
		}
		// Symlinks and submodules by what they point to (globs follow).
		if evaluated(p) || f[0] == "120000" || f[1] == "commit" {
			fmt.Fprintf(h, "%s %s %s\t%s\x00", f[0], f[1], f[2], p)
		} else {
			fmt.Fprintf(h, "%s %s\t%s\x00", f[0], f[1], p)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// evaluated reports whether mc reads the contents of the file at p when it
// evaluates a workspace.
func evaluated(p string) bool {
	base := path.Base(p)
	return base == "BUILD.mc" || base == "WORKSPACE.mc" || strings.HasSuffix(base, ".star")
}

func (s *Server) evalSlot(r *Run) string { return urlHash(repoURL(r)) + "/" + s.slotTier(r) }

// cachedEval returns what the last run of r's repository and tier found
// for structure key, or nil.
func (s *Server) cachedEval(r *Run, key string) *evalResult {
	s.slots.mu.Lock()
	defer s.slots.mu.Unlock()
	if e := s.slots.evals[s.evalSlot(r)]; e != nil && e.key == key {
		c := *e
		return &c
	}
	return nil
}

// keepEval remembers e for r's repository and tier.
func (s *Server) keepEval(r *Run, e *evalResult) {
	if e.key == "" {
		return
	}
	s.slots.mu.Lock()
	defer s.slots.mu.Unlock()
	if s.slots.evals == nil {
		s.slots.evals = map[string]*evalResult{}
	}
	s.slots.evals[s.evalSlot(r)] = e
}
