// Package session opens a workspace with its local cache: the root, the
// WORKSPACE.mc settings, the store, database and stat cache of the cache's
// trust tier, and the package evaluator. Every command that reads BUILD
// files starts here.
package session

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mc-build/mc/builtins"
	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/vcs"
)

// Session is an opened workspace with its cache.
type Session struct {
	Root string // workspace root
	// Scope names the workspace in the run history (explain, log):
	// $MC_HISTORY_KEY, or Root. HistoryBase is the scope a scope without
	// history starts from ($MC_HISTORY_BASE; history_key.go).
	Scope, HistoryBase string
	RelDir             string // the invoking directory relative to Root ("" at the root)
	WS                 *graph.Workspace
	Cache              string // the cache directory (--cache-dir)
	// Tier is the directory of the trust tier this session writes: Cache
	// itself, or cas.UntrustedDir(Cache) for an untrusted build.
	// Store, DB and Stat are that tier's.
	Tier  string
	Store *cas.Store
	DB    *cas.DB
	Stat  *cas.StatCache
	Eval  *builtins.Evaluator
	// Trusted is the trusted tier's action cache as an untrusted build
	// reads it (never writes it); nil for a trusted session, or when the
	// trusted tier has none yet.
	Trusted *cas.DB
}

// Options say which workspace and cache to open.
type Options struct {
	Dir      string // the directory mc runs in: the workspace is found from it
	CacheDir string // "": $XDG_CACHE_HOME/mc, or ~/.cache/mc
	// Untrusted opens the cache's untrusted tier (SPEC §4a).
	Untrusted bool
	Getenv    func(string) (string, bool)
}

// DefaultCacheDir is $XDG_CACHE_HOME/mc, or ~/.cache/mc.
func DefaultCacheDir(getenv func(string) (string, bool)) (string, error) {
	if x, ok := getenv("XDG_CACHE_HOME"); ok && x != "" {
		return filepath.Join(x, "mc"), nil
	}
	home, ok := getenv("HOME")
	if !ok || home == "" {
		return "", errkind.Usagef("neither XDG_CACHE_HOME nor HOME is set: pass --cache-dir")
	}
	return filepath.Join(home, ".cache", "mc"), nil
}

// Open opens the workspace around o.Dir with the cache's trusted tier, or
// with its untrusted one.
func Open(ctx context.Context, o Options) (*Session, error) {
	root, err := lang.FindWorkspace(o.Dir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, o.Dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("locating %s in workspace %s: %v", o.Dir, root, err)
	}
	if rel == "." {
		rel = ""
	}
	ws, err := builtins.LoadWorkspace(ctx, root)
	if err != nil {
		return nil, err
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(o.Getenv); err != nil {
			return nil, err
		}
	}
	cacheDir, err = filepath.Abs(cacheDir)
	if err != nil {
		return nil, err
	}
	tier, trusted := cacheDir, (*cas.DB)(nil)
	if o.Untrusted {
		tier = cas.UntrustedDir(cacheDir)
	}
	store, err := cas.OpenStore(filepath.Join(tier, "cas"))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the cache: %w", err))
	}
	if o.Untrusted {
		if trusted, err = openTrusted(cacheDir, store); err != nil {
			return nil, err
		}
	}
	db, err := cas.OpenDB(filepath.Join(tier, "mc.db"))
	if err != nil {
		closeDB(trusted)
		return nil, errkind.Infra(fmt.Errorf("opening the cache database: %w", err))
	}
	// Which blobs are known good, by stat fingerprint (cas/verify.go): read
	// while the stat cache loads, waited for at the first blob used.
	store.LoadVerified(ctx, db)
	stat, err := db.StatCache(ctx, root)
	if err != nil {
		store.SaveVerified(ctx, db) // waits for the load before the database closes
		db.Close()
		closeDB(trusted)
		return nil, errkind.Infra(fmt.Errorf("loading the stat cache: %w", err))
	}
	scope, base := historyScope(o.Getenv, root)
	s := &Session{Root: root, Scope: scope, HistoryBase: base, RelDir: filepath.ToSlash(rel), WS: ws, Cache: cacheDir, Tier: tier,
		Store: store, DB: db, Stat: stat, Trusted: trusted}
	s.Eval = builtins.NewEvaluator(ws, db, stat)
	return s, nil
}

// Close saves what the session learnt (verified blobs, the stat cache) and
// closes the databases.
func (s *Session) Close(ctx context.Context) error {
	// Blobs' fingerprints are taken now, after the last link to them was
	// made or removed (sandboxes, mc-out/): see cas.Store.SaveVerified.
	err := s.Store.SaveVerified(ctx, s.DB)
	if ferr := s.Stat.Flush(ctx); err == nil {
		err = ferr
	}
	if cerr := s.DB.Close(); err == nil {
		err = cerr
	}
	closeDB(s.Trusted)
	return err
}

// Reset gives the session a new evaluator, which reads every BUILD.mc,
// .star file and directory listing afresh (packages whose files did not
// change still come from the package cache): what a long-running caller
// does after files changed.
func (s *Session) Reset() {
	s.Eval = builtins.NewEvaluator(s.WS, s.DB, s.Stat)
}

// LoadGraph evaluates what patterns need (their packages and everything
// those reference) and links it: the evaluate step of build and explain.
func (s *Session) LoadGraph(ctx context.Context, args []string) ([]graph.Pattern, *graph.Graph, error) {
	pats, pkgs, err := s.ResolvePatterns(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	g, err := s.LoadPackages(ctx, pkgs)
	if err != nil {
		return nil, nil, err
	}
	return pats, g, nil
}

// LoadPackages evaluates pkgs and every package they reference, and links
// them.
func (s *Session) LoadPackages(ctx context.Context, pkgs []string) (*graph.Graph, error) {
	loaded, err := graph.Load(ctx, s.Eval, pkgs)
	if err != nil {
		return nil, err
	}
	return graph.Link(ctx, s.Eval, loaded)
}

// ResolvePatterns parses patterns relative to the invoking directory and
// returns the packages they need evaluated.
func (s *Session) ResolvePatterns(ctx context.Context, args []string) ([]graph.Pattern, []string, error) {
	var pats []graph.Pattern
	var pkgs []string
	for _, a := range args {
		p, err := graph.ParsePattern(a, s.RelDir)
		if err != nil {
			return nil, nil, err
		}
		pats = append(pats, p)
		switch p.Kind {
		case graph.PatternRecursive:
			// A directory that is not there is the user's mistake (exit 2),
			// not a failure to read the workspace.
			if fi, err := os.Stat(filepath.Join(s.Root, filepath.FromSlash(p.Label.Pkg))); err != nil || !fi.IsDir() {
				return nil, nil, errkind.Usagef("no packages match %s (there is no directory //%s)", a, p.Label.Pkg)
			}
			found, err := s.Eval.FindPackages(ctx, p.Label.Pkg)
			if err != nil {
				return nil, nil, err
			}
			if len(found) == 0 {
				return nil, nil, errkind.Usagef("no packages match %s (no BUILD.mc files at or below //%s)", a, p.Label.Pkg)
			}
			pkgs = append(pkgs, found...)
		default:
			if !s.Eval.IsPackage(p.Label.Pkg) {
				all, _ := s.Eval.FindPackages(ctx, "")
				var cands []string
				for _, x := range all {
					cands = append(cands, "//"+x)
				}
				return nil, nil, errkind.Usagef("%s: there is no package %q (no %s)%s", a, p.Label.Pkg,
					filepath.Join(p.Label.Pkg, "BUILD.mc"), errkind.Suggest(graph.Closest("//"+p.Label.Pkg, cands)))
			}
			pkgs = append(pkgs, p.Label.Pkg)
		}
	}
	return pats, pkgs, nil
}

// Changes lists the workspace files that differ between git revision rev
// and the working tree (for changed(), affected() and --affected-since).
func (s *Session) Changes(ctx context.Context, rev string) ([]graph.FileChange, error) {
	chs, err := vcs.Changes(ctx, s.Root, rev)
	if err != nil {
		return nil, err
	}
	out := make([]graph.FileChange, len(chs))
	for i, c := range chs {
		st := graph.FileModified
		switch c.Status {
		case vcs.Added:
			st = graph.FileAdded
		case vcs.Deleted:
			st = graph.FileDeleted
		}
		out[i] = graph.FileChange{Path: c.Path, Status: st}
	}
	return out, nil
}

// Trust tiers (SPEC §4a). `mc build --untrusted` (and mc serve's builds of
// pull requests) read what trusted builds stored, locally and in the shared
// cache, but write only to a tier of their own that trusted builds never
// read:
//
//	local   <cache-dir>/untrusted/{cas,mc.db,mounts,sandbox,rootfs,images}
//	shared  s3://bucket/prefix/untrusted/
//
// Trusted blobs reach the untrusted store as verified copies, never links
// (cas.Store.ReadThrough); trusted action results are looked up after the
// tier's own (sched.Options.Trusted); a cache mount starts as a copy of the
// trusted one of the same name (sandbox.LocalOptions.SeedMountsDir). A stage
// naming a secret fails (sched.Options.Untrusted), and no stage runs
// without a sandbox.

// openTrusted makes store (the untrusted tier's) read through to the
// trusted store of cacheDir and opens the trusted action cache read-only
// (SQLite refuses any write through it); nil when the trusted tier has
// none yet (it is not created: an untrusted build writes nothing there).
func openTrusted(cacheDir string, store *cas.Store) (*cas.DB, error) {
	trustedDir := filepath.Join(cacheDir, "cas")
	if _, err := os.Stat(trustedDir); err == nil {
		base, err := cas.OpenStore(trustedDir)
		if err != nil {
			return nil, errkind.Infra(fmt.Errorf("opening the trusted cache: %w", err))
		}
		if err := store.ReadThrough(base); err != nil {
			return nil, errkind.Infra(err)
		}
	}
	path := filepath.Join(cacheDir, "mc.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	db, err := cas.OpenDBReadOnly(path)
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the trusted cache database: %w", err))
	}
	return db, nil
}

func closeDB(db *cas.DB) {
	if db != nil {
		_ = db.Close()
	}
}

// TrustedReader is s.Trusted as sched.Options.Trusted: nil (no interface
// holding a nil pointer) when there is none.
func (s *Session) TrustedReader() cas.ActionReader {
	if s.Trusted == nil {
		return nil
	}
	return s.Trusted
}
