package cas

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/mc-build/mc/internal/sqlschema"
	"golang.org/x/sys/unix"
)

// Trust tiers (SPEC §4a). An untrusted build (a pull request) reads what
// trusted builds stored but writes only to a tier of its own, which trusted
// builds never read. Locally that tier is a directory of its own, by
// default <cache>/untrusted/, holding the same layout as the cache itself:
//
//	<cache>/untrusted/cas/      its blobs (a Store whose base is <cache>/cas)
//	<cache>/untrusted/mc.db     its action cache, stat cache and run history
//	<cache>/untrusted/mounts/   its cache_mounts directories
//	<cache>/untrusted/sandbox/  its sandboxes
//
// Its Store reads through to the trusted one (ReadThrough): a blob found
// only there is copied in, verified against its digest, and used from the
// copy. Never linked: a stage may write to the inode of an input linked into
// its sandbox (the scheduler catches that only afterwards), and a trusted
// build must never see the bytes an untrusted stage wrote. Nothing is ever
// written to, or removed from, the trusted Store through it.

// UntrustedDir is the directory of the untrusted tier of the local cache in
// cacheDir.
func UntrustedDir(cacheDir string) string { return filepath.Join(cacheDir, "untrusted") }

// ReadThrough makes base (the trusted tier's store) a read-only fallback of
// s: Has, Size and the readers find a blob that s lacks in base and copy it
// into s first. Call it before the store is used concurrently. base must be
// another directory than s's.
func (s *Store) ReadThrough(base *Store) error {
	if base == nil || base.dir == s.dir {
		return fmt.Errorf("cas: store %s cannot read through to itself", s.dir)
	}
	if base.base != nil {
		return fmt.Errorf("cas: store %s: its base %s reads through to a third store", s.dir, base.dir)
	}
	s.base = base
	return nil
}

// Base is the store s reads through to (ReadThrough), or nil.
func (s *Store) Base() *Store { return s.base }

// fromBase copies the blob d from the base store into s, verifying it, and
// reports whether s now holds it. A blob missing or corrupt in the base is
// simply not there for s: the base is left as it is (an untrusted build does
// not get to delete trusted blobs; the trusted build that next reads it
// drops it).
func (s *Store) fromBase(d Digest) bool {
	if s.base == nil {
		return false
	}
	src, err := openRegular(s.base.Path(d))
	if err != nil {
		return false
	}
	defer unix.Close(int(src))
	f, got, _, err := s.copyToTemp(src, d)
	if err != nil {
		return false
	}
	if got != d {
		f.discard()
		return false
	}
	if err := s.commit(f, d); err != nil {
		return false
	}
	return true
}

// OpenDBReadOnly opens the existing database at path for reading only
// (SQLite's mode=ro: every write fails): the trusted tier's action cache as
// an untrusted build sees it. Its schema must be this mc's.
func OpenDBReadOnly(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cas: open db: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("cas: open db read-only: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	v, err := sqlschema.Version(ctx, sdb)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	if v != len(migrations()) {
		sdb.Close()
		return nil, fmt.Errorf("cas: open db %s read-only: schema version %d, this mc's is %d (a trusted build updates it)", abs, v, len(migrations()))
	}
	db := &DB{db: sdb}
	if db.getAction, err = sdb.PrepareContext(ctx, "SELECT result FROM actions WHERE key = ?"); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	return db, nil
}

// ActionReader is the read side of an action cache: all an untrusted build
// may do with the trusted tier's.
type ActionReader interface {
	GetAction(ctx context.Context, key Digest) (*ActionResult, error)
}

// UntrustedRemote is the shared cache as an untrusted build sees it: own is
// the untrusted tier (e.g. s3://bucket/prefix/untrusted), trusted the
// trusted one (s3://bucket/prefix). Results and blobs are looked up in own
// first, then in trusted; everything written (results, blobs, deletions,
// purges) goes to own only.
func UntrustedRemote(own, trusted Remote) Remote { return &untrustedRemote{own: own, trusted: trusted} }

type untrustedRemote struct{ own, trusted Remote }

func (r *untrustedRemote) String() string { return r.own.String() }

func (r *untrustedRemote) GetAction(ctx context.Context, key Digest) (*ActionResult, error) {
	res, err := r.own.GetAction(ctx, key)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if res != nil {
		return res, nil
	}
	return r.trusted.GetAction(ctx, key)
}

func (r *untrustedRemote) PutAction(ctx context.Context, key Digest, res *ActionResult) error {
	return r.own.PutAction(ctx, key, res)
}

func (r *untrustedRemote) DeleteAction(ctx context.Context, key Digest) error {
	return r.own.DeleteAction(ctx, key)
}

// FindMissing is what neither tier holds: a blob the trusted tier has is
// readable (Fetch falls back to it).
func (r *untrustedRemote) FindMissing(ctx context.Context, ds []Digest) ([]Digest, error) {
	missing, err := r.own.FindMissing(ctx, ds)
	if err != nil || len(missing) == 0 {
		return missing, err
	}
	return r.trusted.FindMissing(ctx, missing)
}

func (r *untrustedRemote) Fetch(ctx context.Context, d Digest, size int64, dst *Store) error {
	err := r.own.Fetch(ctx, d, size, dst)
	if err == nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt)) {
		return err
	}
	return r.trusted.Fetch(ctx, d, size, dst)
}

func (r *untrustedRemote) Upload(ctx context.Context, d Digest, size int64, src *Store) error {
	return r.own.Upload(ctx, d, size, src)
}

func (r *untrustedRemote) Purge(ctx context.Context) (int, error) { return r.own.Purge(ctx) }
