package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mc-build/mc/builtins"
	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/ui"
)

// session is an opened workspace with its cache: what every command that
// reads BUILD files needs.
type session struct {
	root   string // workspace root
	relDir string // the invoking directory relative to root ("" at the root)
	ws     *graph.Workspace
	cache  string
	store  *cas.Store
	db     *cas.DB
	stat   *cas.StatCache
	eval   *builtins.Evaluator
}

// defaultCacheDir is $XDG_CACHE_HOME/mc, or ~/.cache/mc.
func defaultCacheDir(e *env) (string, error) {
	if x, ok := e.getenv("XDG_CACHE_HOME"); ok && x != "" {
		return filepath.Join(x, "mc"), nil
	}
	home, ok := e.getenv("HOME")
	if !ok || home == "" {
		return "", usagef("neither XDG_CACHE_HOME nor HOME is set: pass --cache-dir")
	}
	return filepath.Join(home, ".cache", "mc"), nil
}

func openSession(ctx context.Context, e *env, cacheDir string) (*session, error) {
	root, err := lang.FindWorkspace(e.dir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, e.dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("locating %s in workspace %s: %v", e.dir, root, err)
	}
	if rel == "." {
		rel = ""
	}
	ws, err := builtins.LoadWorkspace(ctx, root)
	if err != nil {
		return nil, err
	}
	if cacheDir == "" {
		if cacheDir, err = defaultCacheDir(e); err != nil {
			return nil, err
		}
	}
	cacheDir, err = filepath.Abs(cacheDir)
	if err != nil {
		return nil, err
	}
	store, err := cas.OpenStore(filepath.Join(cacheDir, "cas"))
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the cache: %w", err)}
	}
	db, err := cas.OpenDB(filepath.Join(cacheDir, "mc.db"))
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the cache database: %w", err)}
	}
	stat, err := db.StatCache(ctx, root)
	if err != nil {
		db.Close()
		return nil, &infraError{fmt.Errorf("loading the stat cache: %w", err)}
	}
	s := &session{root: root, relDir: filepath.ToSlash(rel), ws: ws, cache: cacheDir, store: store, db: db, stat: stat}
	s.eval = builtins.NewEvaluator(ws, db, stat)
	return s, nil
}

func (s *session) close(ctx context.Context) error {
	err := s.stat.Flush(ctx)
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadGraph evaluates what patterns need (their packages and everything
// those reference) and links it: the evaluate step of build and explain.
func (s *session) loadGraph(ctx context.Context, args []string) ([]graph.Pattern, *graph.Graph, error) {
	pats, pkgs, err := s.resolvePatterns(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	loaded, err := graph.Load(ctx, s.eval, pkgs)
	if err != nil {
		return nil, nil, err
	}
	g, err := graph.Link(ctx, s.eval, loaded)
	if err != nil {
		return nil, nil, err
	}
	return pats, g, nil
}

// resolvePatterns parses patterns relative to the invoking directory and
// returns the packages they need evaluated.
func (s *session) resolvePatterns(ctx context.Context, args []string) ([]graph.Pattern, []string, error) {
	var pats []graph.Pattern
	var pkgs []string
	for _, a := range args {
		p, err := graph.ParsePattern(a, s.relDir)
		if err != nil {
			return nil, nil, err
		}
		pats = append(pats, p)
		switch p.Kind {
		case graph.PatternRecursive:
			// A directory that is not there is the user's mistake (exit 2),
			// not a failure to read the workspace.
			if fi, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(p.Label.Pkg))); err != nil || !fi.IsDir() {
				return nil, nil, usagef("no packages match %s (there is no directory //%s)", a, p.Label.Pkg)
			}
			found, err := s.eval.FindPackages(ctx, p.Label.Pkg)
			if err != nil {
				return nil, nil, err
			}
			if len(found) == 0 {
				return nil, nil, usagef("no packages match %s (no BUILD.mc files at or below //%s)", a, p.Label.Pkg)
			}
			pkgs = append(pkgs, found...)
		default:
			if !s.eval.IsPackage(p.Label.Pkg) {
				all, _ := s.eval.FindPackages(ctx, "")
				var cands []string
				for _, x := range all {
					cands = append(cands, "//"+x)
				}
				return nil, nil, usagef("%s: there is no package %q (no %s)%s", a, p.Label.Pkg,
					filepath.Join(p.Label.Pkg, "BUILD.mc"), suggest(graph.Closest("//"+p.Label.Pkg, cands)))
			}
			pkgs = append(pkgs, p.Label.Pkg)
		}
	}
	return pats, pkgs, nil
}

func platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

func fmtDur(d time.Duration) string { return ui.Duration(d) }
