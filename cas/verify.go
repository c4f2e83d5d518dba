package cas

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Verify before use.
//
// A blob's name says what it holds, but its file can change after it was
// written: edited in place (mc-out/ files and sandbox inputs are hard
// links to blobs), replaced by another file, or rewritten by anyone with
// root. So no blob is linked into a sandbox or mc-out/, or counted as a
// usable output of a cached action, unless it is known to hold its
// digest's bytes (Check, CheckUse). Uploads need nothing more: they read
// the whole blob through the verifying reader (Open) anyway.
//
// Hashing every blob before every use would cost a null build its time,
// so a blob is hashed again only when its stat fingerprint (inode, size,
// mtime, ctime, mode) is not the one it had when it was last found good.
// Fingerprints outlive the process in the stat table, one row per shard
// directory, in the stat cache's format (LoadVerified, SaveVerified).
// ctime is what catches a write whose mtime was set back afterwards
// (utimensat can set mtime, not ctime) and a replacement that reuses the
// inode number.
//
// But the build itself moves every blob's ctime: each hard link made to a
// blob (a sandbox input, mc-out/) or removed from it (a sandbox emptied)
// changes it, as do the rename and chmod that put a new blob in place.
// Comparing ctime within a build would hash each input again before each
// stage that uses it. So within one process a blob found good (or written
// by this process) is compared without its ctime; and when the process
// saves the fingerprints, it takes the ctime of then for the blobs it wrote,
// hashed or linked, provided their inode, size, mtime and mode are still
// the ones it found good. A write through a link is still caught: any
// write moves mtime (a root that chmods a read-only blob and writes to it
// moves mtime too). What is not caught is a write during the build whose
// mtime is then set back (root only, within the same window as exec's check
// of a stage's inputs); the next process catches the same write done
// between builds, by ctime. Bit rot, which changes no timestamp, is not
// caught by fingerprints at all; reading a blob (Open, ReadBytes, an
// upload) still verifies it.

// blobPrint is the stat fingerprint of a blob file.
type blobPrint struct {
	size  int64
	mtime int64 // ns
	ctime int64 // ns
	ino   uint64
	mode  uint32 // st_mode, type bits included
}

func printOf(st *unix.Stat_t) blobPrint {
	return blobPrint{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino, mode: st.Mode}
}

// sameContent reports whether p and q are the same file with the same
// content as far as a stat can tell, ctime aside (see above).
func (p blobPrint) sameContent(q blobPrint) bool {
	return p.ino == q.ino && p.size == q.size && p.mtime == q.mtime && p.mode == q.mode
}

// verifier is a Store's memory of which blobs are known good. The zero
// value works: nothing is known, every blob is hashed at its first use.
type verifier struct {
	// off is SkipVerifyForTesting.
	off bool
	// onHash is called for every blob actually read by Check (tests).
	onHash func(Digest)
	// onRead is called between reading a blob and its second stat (tests:
	// what another process may do to the blob at that moment).
	onRead func(Digest)

	mu sync.Mutex
	// loaded is closed once saved is filled (LoadVerified); nil when no
	// load was started.
	loaded  chan struct{}
	loadErr error
	// saved are the fingerprints earlier processes recorded, compared in
	// full; good are the blobs this process found good or wrote, compared
	// without ctime; touched are those whose fingerprint SaveVerified
	// records again (written, hashed or linked by this process).
	saved   map[Digest]blobPrint
	good    map[Digest]blobPrint
	touched map[Digest]bool
}

// SkipVerifyForTesting turns verification off: blobs are used as found.
// Only tests call it, as the positive control of the tests that corrupt
// blobs: with it, the corruption they make must be seen to spread.
func (s *Store) SkipVerifyForTesting() { s.v.off = true }

// Check reports whether the blob d is present and holds d's bytes: nil,
// an error wrapping ErrNotFound, or one wrapping ErrCorrupt (the blob is
// then removed from the store). It reads the blob only when its stat
// fingerprint is not the one it had when last found good.
func (s *Store) Check(d Digest) error { return s.check(d, false) }

// CheckUse is Check for a blob about to be hard-linked somewhere (a
// sandbox, mc-out/): linking moves the blob's ctime, so its fingerprint is
// taken again when the store's fingerprints are saved.
func (s *Store) CheckUse(d Digest) error { return s.check(d, true) }

// present is Has for the writers: true when the blob is there and good. A
// corrupt blob is removed, so the caller writes it anew.
func (s *Store) present(d Digest) bool { return s.check(d, false) == nil }

func (s *Store) check(d Digest, use bool) error {
	p := s.Path(d)
	var st unix.Stat_t
	err := lstat(p, &st)
	if err == unix.ENOENT && s.base != nil && s.fromBase(d) {
		// An untrusted tier's store: the trusted blob, copied in and
		// verified (tier.go).
		err = lstat(p, &st)
	}
	if err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return fmt.Errorf("cas: blob %s: %w", d.Short(), ErrNotFound)
		}
		return fmt.Errorf("cas: blob %s: %w", d.Short(), &os.PathError{Op: "lstat", Path: p, Err: err})
	}
	if s.v.off {
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// A symlink or anything else in a blob's place is not a blob.
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cas: blob %s is not a regular file (and removing it failed: %v): %w", d.Short(), err, ErrCorrupt)
		}
		return fmt.Errorf("cas: blob %s is not a regular file: %w", d.Short(), ErrCorrupt)
	}
	cur := printOf(&st)
	v := &s.v
	v.wait()
	v.mu.Lock()
	g, ok := v.good[d]
	if !ok || !g.sameContent(cur) {
		ok = false
		if sv, found := v.saved[d]; found && sv == cur {
			ok = true
			v.remember(d, cur, false)
		}
	}
	if ok && use {
		v.touch(d)
	}
	v.mu.Unlock()
	if ok {
		return nil
	}
	return s.rehash(d)
}

// rehash reads the blob d and checks it against its digest: good, it is
// remembered; bad, it is removed.
func (s *Store) rehash(d Digest) error {
	p := s.Path(d)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cas: blob %s: %w", d.Short(), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cas: verify %s: %w", d.Short(), err)
	}
	defer f.Close()
	if s.v.onHash != nil {
		s.v.onHash(d)
	}
	var before, after unix.Stat_t
	if err := fstat(int(f.Fd()), &before); err != nil {
		return fmt.Errorf("cas: verify %s: %w", d.Short(), err)
	}
	got, n, err := FromReader(f)
	if err != nil {
		return fmt.Errorf("cas: verify %s: %w", d.Short(), err)
	}
	if s.v.onRead != nil {
		s.v.onRead(d)
	}
	if err := fstat(int(f.Fd()), &after); err != nil {
		return fmt.Errorf("cas: verify %s: %w", d.Short(), err)
	}
	pb, pa := printOf(&before), printOf(&after)
	// A blob being written to while it is read is as bad as one that holds
	// other bytes: blobs never change. Its ctime may: another build
	// linking the blob into its sandbox at this moment moves it, and
	// taking that for corruption removed good blobs under concurrent
	// builds (TestRehashWhileLinked).
	if got != d || n != pb.size || !pb.sameContent(pa) {
		return fmt.Errorf("cas: verify: %w", s.corrupt(d, f, got))
	}
	s.v.mu.Lock()
	// A blob written moments ago by someone else could still change within
	// its mtime's tick (see racy): good for now, not worth recording.
	s.v.remember(d, pa, !racy(time.Now(), pa.mtime))
	s.v.mu.Unlock()
	return nil
}

// wrote records that this store just placed the blob d, whose file (or
// its descriptor) has the stat st: its content is what was hashed while it
// was written.
func (s *Store) wrote(d Digest, st *unix.Stat_t) {
	s.v.mu.Lock()
	s.v.remember(d, printOf(st), true)
	s.v.mu.Unlock()
}

// wroteFD is wrote for the blob d written through fd; if the stat fails
// the blob is only not remembered (it is hashed at its first use).
func (s *Store) wroteFD(d Digest, fd int) {
	var st unix.Stat_t
	if fstat(fd, &st) == nil {
		s.wrote(d, &st)
	}
}

// forget drops what is known of the blob d (removed).
func (s *Store) forget(d Digest) {
	s.v.mu.Lock()
	delete(s.v.good, d)
	delete(s.v.saved, d)
	delete(s.v.touched, d)
	s.v.mu.Unlock()
}

// remember marks d good with fingerprint p (and to be saved). Called with
// v.mu held.
func (v *verifier) remember(d Digest, p blobPrint, save bool) {
	if v.good == nil {
		v.good = map[Digest]blobPrint{}
	}
	v.good[d] = p
	if save {
		v.touch(d)
	}
}

// touch marks d to be saved. Called with v.mu held. A store whose
// fingerprints are not persisted (no LoadVerified: a runner agent, which
// lives long) keeps no such list.
func (v *verifier) touch(d Digest) {
	if v.loaded == nil {
		return
	}
	if v.touched == nil {
		v.touched = map[Digest]bool{}
	}
	v.touched[d] = true
}

// wait waits for the fingerprints being loaded, if any.
func (v *verifier) wait() {
	v.mu.Lock()
	ch := v.loaded
	v.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// LoadVerified starts reading the fingerprints that earlier processes
// recorded for this store's blobs (SaveVerified), in the background: the
// first Check waits for it. Call it once, before the store is used. If
// reading fails, blobs are hashed at their first use instead (and
// SaveVerified reports the error).
func (s *Store) LoadVerified(ctx context.Context, db *DB) {
	ch := make(chan struct{})
	s.v.mu.Lock()
	s.v.loaded = ch
	s.v.mu.Unlock()
	go func() {
		defer close(ch)
		saved, err := loadPrints(ctx, db, s.dir)
		s.v.mu.Lock()
		defer s.v.mu.Unlock()
		s.v.saved, s.v.loadErr = saved, err
	}()
}

// loadPrints reads the stat rows of the shard directories of the store
// at dir: the name of each entry is its blob's digest.
func loadPrints(ctx context.Context, db *DB, dir string) (map[Digest]blobPrint, error) {
	// Shard directories sort in [dir/, dir0): see StatCache.
	rs, err := db.db.QueryContext(ctx, "SELECT dir, ents FROM stat WHERE dir > ? AND dir < ?", dir+"/", dir+"0")
	if err != nil {
		return nil, fmt.Errorf("cas: loading blob fingerprints: %w", err)
	}
	defer rs.Close()
	saved := map[Digest]blobPrint{}
	for rs.Next() {
		var shard string
		var ents []byte
		if err := rs.Scan(&shard, &ents); err != nil {
			return nil, fmt.Errorf("cas: loading blob fingerprints: %w", err)
		}
		base := strings.TrimPrefix(shard, dir+"/")
		if len(base) != 2 || strings.Contains(base, "/") {
			continue
		}
		unpackDir(ents, func(name []byte, r statRow) {
			var d Digest
			if len(name) != 2*len(d) || string(name[:2]) != base {
				return
			}
			if _, err := hex.Decode(d[:], name); err != nil || r.digest != d {
				return
			}
			saved[d] = blobPrint{size: r.size, mtime: r.mtime, ctime: r.ctime, ino: r.ino, mode: r.mode}
		})
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("cas: loading blob fingerprints: %w", err)
	}
	return saved, nil
}

// SaveVerified records the fingerprints of the blobs this process wrote,
// hashed or linked, for the next process: each with its ctime of now,
// if its inode, size, mtime and mode are still those it was found good
// with (see the comment at the top of this file). Call it once nothing
// links or unlinks blobs any more (sandboxes removed, mc-out/ written).
func (s *Store) SaveVerified(ctx context.Context, db *DB) error {
	s.v.wait()
	s.v.mu.Lock()
	loadErr := s.v.loadErr
	todo := make(map[Digest]blobPrint, len(s.v.touched))
	for d := range s.v.touched {
		todo[d] = s.v.good[d]
	}
	s.v.touched = nil
	s.v.mu.Unlock()
	if len(todo) == 0 {
		return loadErr
	}
	batch := make(map[string]statRow, len(todo))
	for d, g := range todo {
		p := s.Path(d)
		var st unix.Stat_t
		if lstat(p, &st) != nil {
			continue
		}
		cur := printOf(&st)
		if !g.sameContent(cur) {
			continue // changed since: hashed again next time
		}
		batch[p] = statRow{size: cur.size, mtime: cur.mtime, ctime: cur.ctime, ino: cur.ino, mode: cur.mode, digest: d}
		s.v.mu.Lock()
		if s.v.good[d] == g {
			s.v.good[d] = cur
		}
		s.v.mu.Unlock()
	}
	if err := writeStatRows(ctx, db, batch); err != nil {
		return fmt.Errorf("cas: saving blob fingerprints: %w", err)
	}
	return loadErr
}

func lstat(p string, st *unix.Stat_t) error {
	for {
		if err := unix.Lstat(p, st); err != unix.EINTR {
			return err
		}
	}
}
