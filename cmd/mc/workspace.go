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
	root string // workspace root
	// scope names the workspace in the run history (explain, log):
	// $MC_HISTORY_KEY, or the root. historyBase is the scope a scope
	// without history starts from ($MC_HISTORY_BASE; history_key.go).
	scope, historyBase string
	relDir             string // the invoking directory relative to root ("" at the root)
	ws                 *graph.Workspace
	cache              string // the cache directory (--cache-dir)
	// tier is the directory of the trust tier this session writes: cache
	// itself, or cas.UntrustedDir(cache) for an untrusted build (tier.go).
	// store, db and stat are that tier's.
	tier  string
	store *cas.Store
	db    *cas.DB
	stat  *cas.StatCache
	eval  *builtins.Evaluator
	// trusted is the trusted tier's action cache as an untrusted build
	// reads it (never writes it); nil for a trusted session, or when the
	// trusted tier has none yet.
	trusted *cas.DB
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
	return openSessionTier(ctx, e, cacheDir, false)
}

// openSessionTier opens the workspace with the cache's trusted tier, or
// with its untrusted one (SPEC §4a; tier.go).
func openSessionTier(ctx context.Context, e *env, cacheDir string, untrusted bool) (*session, error) {
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
	tier, trusted := cacheDir, (*cas.DB)(nil)
	if untrusted {
		tier = cas.UntrustedDir(cacheDir)
	}
	store, err := cas.OpenStore(filepath.Join(tier, "cas"))
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the cache: %w", err)}
	}
	if untrusted {
		if trusted, err = openTrusted(cacheDir, store); err != nil {
			return nil, err
		}
	}
	db, err := cas.OpenDB(filepath.Join(tier, "mc.db"))
	if err != nil {
		closeDB(trusted)
		return nil, &infraError{fmt.Errorf("opening the cache database: %w", err)}
	}
	// Which blobs are known good, by stat fingerprint (cas/verify.go): read
	// while the stat cache loads, waited for at the first blob used.
	store.LoadVerified(ctx, db)
	stat, err := db.StatCache(ctx, root)
	if err != nil {
		store.SaveVerified(ctx, db) // waits for the load before the database closes
		db.Close()
		closeDB(trusted)
		return nil, &infraError{fmt.Errorf("loading the stat cache: %w", err)}
	}
	scope, base := historyScope(e, root)
	s := &session{root: root, scope: scope, historyBase: base, relDir: filepath.ToSlash(rel), ws: ws, cache: cacheDir, tier: tier,
		store: store, db: db, stat: stat, trusted: trusted}
	s.eval = builtins.NewEvaluator(ws, db, stat)
	return s, nil
}

func (s *session) close(ctx context.Context) error {
	// Blobs' fingerprints are taken now, after the last link to them was
	// made or removed (sandboxes, mc-out/): see cas.Store.SaveVerified.
	err := s.store.SaveVerified(ctx, s.db)
	if ferr := s.stat.Flush(ctx); err == nil {
		err = ferr
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	closeDB(s.trusted)
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
