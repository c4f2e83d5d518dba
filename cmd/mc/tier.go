package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
)

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
			return nil, &infraError{fmt.Errorf("opening the trusted cache: %w", err)}
		}
		if err := store.ReadThrough(base); err != nil {
			return nil, &infraError{err}
		}
	}
	path := filepath.Join(cacheDir, "mc.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	db, err := cas.OpenDBReadOnly(path)
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the trusted cache database: %w", err)}
	}
	return db, nil
}

func closeDB(db *cas.DB) {
	if db != nil {
		_ = db.Close()
	}
}

// trustedReader is s.trusted as sched.Options.Trusted: nil (no interface
// holding a nil pointer) when there is none.
func (s *session) trustedReader() cas.ActionReader {
	if s.trusted == nil {
		return nil
	}
	return s.trusted
}

// untrustedRemote opens the shared cache at url as an untrusted build sees
// it: its own tier url/untrusted, read first and the only one written, and
// the trusted tier url, read only.
func untrustedRemote(ctx context.Context, e *env, url string, trusted cas.Remote) (cas.Remote, error) {
	own, err := s3.Open(ctx, untrustedURL(url), s3.Options{Getenv: e.getenv})
	if err != nil {
		return nil, usagef("shared cache: %v", err)
	}
	return cas.UntrustedRemote(own, trusted), nil
}

// untrustedURL is the untrusted tier of the shared cache at url.
func untrustedURL(url string) string {
	return strings.TrimSuffix(url, "/") + "/untrusted"
}

// requireSandbox stops an untrusted build that cannot isolate its stages
// (SPEC §4a: exit 3). A stage of a pull request run without a sandbox can
// read the whole machine: the trusted cache, mc's environment and
// credentials. The executor was made in SandboxRequired mode, so why
// wraps sandbox.ErrNoSandbox and says what is missing.
func requireSandbox(why error) error {
	return &infraError{fmt.Errorf("an untrusted build needs a sandbox and none works here: its stages would see "+
		"this machine's files and credentials: %w", why)}
}

// collectUntrusted runs gc on the untrusted tier of cacheDir (if any) to
// limit bytes, with the gc lock held: its blobs and results, and the
// sandboxes its killed builds left. Its cache mounts stay, as the trusted
// tier's do.
func collectUntrusted(ctx context.Context, cacheDir string, limit int64) (*cas.GCReport, error) {
	dir := cas.UntrustedDir(cacheDir)
	if _, err := os.Stat(filepath.Join(dir, "mc.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the untrusted tier: %w", err)}
	}
	db, err := cas.OpenDB(filepath.Join(dir, "mc.db"))
	if err != nil {
		return nil, &infraError{fmt.Errorf("opening the untrusted tier's database: %w", err)}
	}
	defer db.Close()
	r, err := cas.GC(ctx, store, db, cas.GCOptions{MaxSize: limit})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &infraError{fmt.Errorf("untrusted tier: %w", err)}
	}
	if _, _, err := removeStaleSandboxes(ctx, filepath.Join(dir, "sandbox"), time.Now().Add(-staleSandbox)); err != nil {
		return nil, &infraError{fmt.Errorf("removing the untrusted tier's leftover sandboxes: %w", err)}
	}
	return r, nil
}
