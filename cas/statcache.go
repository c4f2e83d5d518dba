package cas

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// racyWindow is how recent a file's mtime may be before its digest is not
// recorded: a write within the same timestamp tick could change the content
// without changing the stat tuple (git's "racy git" problem). The tick is the
// filesystem's timestamp granularity: up to 2 s on coarse filesystems (FAT,
// old HFS, whole-second mtimes), a kernel jiffy (≤ 10 ms) where mtimes carry
// nanoseconds (ext4, xfs, btrfs, tmpfs). A file whose mtime has a sub-second
// part is taken to live on a fine-grained filesystem and gets the short
// window, with a tenfold margin; a whole-second mtime gets the long one.
const (
	racyWindow     = 2 * time.Second
	racyWindowFine = 100 * time.Millisecond
)

// racy reports whether a file with this mtime (unix ns) is too recent to
// record at time now.
func racy(now time.Time, mtimeNs int64) bool {
	w := racyWindow
	if mtimeNs%int64(time.Second) != 0 {
		w = racyWindowFine
	}
	return now.Sub(time.Unix(0, mtimeNs)) < w
}

// FileInfo is what the stat cache knows about a file.
type FileInfo struct {
	Digest Digest
	Size   int64
	Exec   bool
}

// statRow is one stat cache entry: the stat tuple and the digest.
type statRow struct {
	size   int64
	mtime  int64 // ns
	ctime  int64 // ns
	ino    uint64
	mode   uint32 // st_mode, type bits included
	digest Digest
}

// packedRowSize is the length of a packed statRow.
const packedRowSize = 8 + 8 + 8 + 8 + 4 + 32

// The stat table holds one row per directory whose value packs all its
// files' entries: loading 10k files then scans a few hundred rows, not 10k,
// which is what keeps a null build's stat cache load at a few ms (per-row
// cost through cgo and database/sql dominates otherwise). An entry is
// uvarint(len(name)) name packedRow.

func (r statRow) appendTo(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(r.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.mtime))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.ctime))
	b = binary.LittleEndian.AppendUint64(b, r.ino)
	b = binary.LittleEndian.AppendUint32(b, r.mode)
	return append(b, r.digest[:]...)
}

func unpackRow(b []byte) (statRow, bool) {
	if len(b) != packedRowSize {
		return statRow{}, false
	}
	le := binary.LittleEndian
	r := statRow{
		size:  int64(le.Uint64(b[0:])),
		mtime: int64(le.Uint64(b[8:])),
		ctime: int64(le.Uint64(b[16:])),
		ino:   le.Uint64(b[24:]),
		mode:  le.Uint32(b[32:]),
	}
	copy(r.digest[:], b[36:])
	return r, true
}

// packDir encodes a directory's entries (name -> row), sorted by name so
// that equal contents give equal bytes.
func packDir(ents map[string]statRow) []byte {
	names := make([]string, 0, len(ents))
	for n := range ents {
		names = append(names, n)
	}
	slices.Sort(names)
	b := make([]byte, 0, len(ents)*(packedRowSize+16))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = ents[n].appendTo(b)
	}
	return b
}

// unpackDir calls f for every entry of a packed directory; malformed input
// stops it with false.
func unpackDir(b []byte, f func(name []byte, r statRow)) bool {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || uint64(len(b)-k)-n < packedRowSize {
			return false
		}
		b = b[k:]
		name := b[:n]
		r, _ := unpackRow(b[n : n+packedRowSize])
		b = b[n+packedRowSize:]
		f(name, r)
	}
	return true
}

// sameStat reports whether r's stat tuple is s's.
func (r statRow) sameStat(s statRow) bool {
	return r.size == s.size && r.mtime == s.mtime && r.ctime == s.ctime && r.ino == s.ino && r.mode == s.mode
}

// statOf extracts the stat tuple of fi (from os.Stat or File.Stat).
func statOf(fi os.FileInfo) (statRow, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statRow{}, errors.New("no stat information")
	}
	return statRow{
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		mode:  st.Mode,
	}, nil
}

// StatCache gives file digests without reading files whose stat tuple
// (size, mtime, ctime, inode, mode) is unchanged since they were hashed. It
// holds the rows under one root in memory; new digests are queued and
// written by Flush. It is safe for concurrent use.
type StatCache struct {
	db *DB

	mu      sync.Mutex
	rows    map[string]statRow     // path -> row, loaded and learned
	pending map[string]statRow     // learned, not yet flushed
	stats   map[string]os.FileInfo // Stat's answers, each for one Digest

	now    func() time.Time  // the clock for the racy rule
	onHash func(path string) // called for every file actually read (tests)
}

// StatCache loads the rows for every path under root (made absolute) in one
// query and returns a cache over them.
func (db *DB) StatCache(ctx context.Context, root string) (*StatCache, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("cas: stat cache %s: %w", root, err)
	}
	// Directories under abs sort in [abs, abs+"0") since '0' follows '/';
	// that range also holds siblings such as abs+"-x", skipped below.
	prefix := abs
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	hi := strings.TrimSuffix(prefix, "/") + "0"
	rs, err := db.db.QueryContext(ctx, "SELECT dir, ents FROM stat WHERE dir >= ? AND dir < ?", abs, hi)
	if err != nil {
		return nil, fmt.Errorf("cas: stat cache %s: %w", abs, err)
	}
	defer rs.Close()
	type dirRow struct {
		dir  string
		ents []byte
	}
	var dirs []dirRow
	total := 0
	for rs.Next() {
		var r dirRow
		if err := rs.Scan(&r.dir, &r.ents); err != nil {
			return nil, fmt.Errorf("cas: stat cache %s: %w", abs, err)
		}
		if r.dir == abs || strings.HasPrefix(r.dir, prefix) {
			dirs = append(dirs, r)
			total += len(r.ents)
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("cas: stat cache %s: %w", abs, err)
	}
	sc := &StatCache{
		db: db,
		// Sized once (an upper bound: names take bytes too) so that
		// loading does not rehash the map as it grows.
		rows:    make(map[string]statRow, total/packedRowSize),
		pending: map[string]statRow{},
		stats:   map[string]os.FileInfo{},
		now:     time.Now,
	}
	for _, d := range dirs {
		base := d.dir
		if base != "/" {
			base += "/"
		}
		// A malformed row is only a miss; what decoded before the error is
		// still a valid stat tuple with its digest.
		unpackDir(d.ents, func(name []byte, r statRow) { sc.rows[base+string(name)] = r })
	}
	return sc, nil
}

// Digest returns the digest, size and executable bit of the regular file at
// absPath (symlinks followed). An unchanged stat tuple is served from the
// cache; otherwise the file is read and hashed and the row queued for Flush,
// unless its mtime is too recent to trust (racyWindow).
func (sc *StatCache) Digest(absPath string) (FileInfo, error) {
	p := filepath.Clean(absPath)
	if !filepath.IsAbs(p) {
		return FileInfo{}, fmt.Errorf("cas: digest %s: not an absolute path", absPath)
	}
	sc.mu.Lock()
	fi, ok := sc.stats[p]
	delete(sc.stats, p)
	sc.mu.Unlock()
	if !ok {
		var err error
		if fi, err = os.Stat(p); err != nil {
			return FileInfo{}, fmt.Errorf("cas: digest: %w", err)
		}
	}
	if err := regularFile(p, fi); err != nil {
		return FileInfo{}, err
	}
	if info, ok := sc.row(p, fi); ok {
		return info, nil
	}
	return sc.hash(p)
}

// row returns the cached FileInfo of the regular file p, whose stat is fi,
// if its row's stat tuple is fi's.
func (sc *StatCache) row(p string, fi os.FileInfo) (FileInfo, bool) {
	st, err := statOf(fi)
	if err != nil {
		return FileInfo{}, false
	}
	sc.mu.Lock()
	r, ok := sc.rows[p]
	sc.mu.Unlock()
	if !ok || !r.sameStat(st) {
		return FileInfo{}, false
	}
	return FileInfo{Digest: r.digest, Size: r.size, Exec: isExec(fi.Mode())}, true
}

// Stat is os.Stat, its answer (for a regular file) kept for the next
// Digest of the same path: a build asks whether a label is a source file
// (graph.Link, through lang.SourceTree) and then digests that file, and one
// stat(2) serves both. A StatCache serves one command, so an answer kept
// is never older than the build that uses it; a file changed in between
// is caught when its contents are copied in for a stage (Store.PutFileExpect
// checks them against the digest).
func (sc *StatCache) Stat(absPath string) (os.FileInfo, error) {
	p := filepath.Clean(absPath)
	fi, err := os.Stat(p)
	if err == nil && fi.Mode().IsRegular() {
		sc.mu.Lock()
		sc.stats[p] = fi
		sc.mu.Unlock()
	}
	return fi, err
}

// DropStats forgets the answers Stat kept for a Digest that has not come:
// a StatCache kept across builds (mc watch) calls it before each build,
// so that no answer is older than the build that uses it.
func (sc *StatCache) DropStats() {
	sc.mu.Lock()
	clear(sc.stats)
	sc.mu.Unlock()
}

// Known returns what the cache knows of the file at absPath as it is now,
// without reading it; ok is false when reading it would be needed.
func (sc *StatCache) Known(absPath string) (info FileInfo, ok bool) {
	p := filepath.Clean(absPath)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return FileInfo{}, false
	}
	return sc.row(p, fi)
}

// hash reads the file at p, returns its FileInfo and queues the row if the
// file held still while it was read and is not racily new.
func (sc *StatCache) hash(p string) (FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return FileInfo{}, fmt.Errorf("cas: digest: %w", err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return FileInfo{}, fmt.Errorf("cas: digest: %w", err)
	}
	if err := regularFile(p, before); err != nil {
		return FileInfo{}, err
	}
	if sc.onHash != nil {
		sc.onHash(p)
	}
	d, n, err := FromReader(f)
	if err != nil {
		return FileInfo{}, fmt.Errorf("cas: digest %s: %w", p, err)
	}
	after, err := f.Stat()
	if err != nil {
		return FileInfo{}, fmt.Errorf("cas: digest: %w", err)
	}
	st1, err1 := statOf(before)
	st2, err2 := statOf(after)
	info := FileInfo{Digest: d, Size: n, Exec: isExec(before.Mode())}
	if err1 != nil || err2 != nil || !st1.sameStat(st2) || n != st1.size {
		return info, nil // changed while being read: give the digest, trust nothing
	}
	if racy(sc.now(), st1.mtime) {
		return info, nil
	}
	st1.digest = d
	sc.mu.Lock()
	sc.rows[p] = st1
	sc.pending[p] = st1
	sc.mu.Unlock()
	return info, nil
}

// Learn records that the regular file at absPath holds info's content
// without reading it: the caller put it there from the store (mc-out/),
// and then, when it had just done so, found it in the state placed. The
// file is recorded if it still has placed's inode, size, mode and mtime;
// its ctime may have moved, since every hard link made to or removed from
// a blob (a stage's sandbox input) moves it, so the row takes the ctime of
// now. Content written since changes the mtime; a write within the tick
// of the file's own mtime would not, which is as far as exec's check of a
// stage's inputs sees too (placed files are read-only, so only root
// writes them). The racy rule (see racy) is therefore not applied: what
// it guards against is a file being written while it is read, and this
// one is not read; applying it would make the first build after every
// build read each output back. With restat false the caller knows that
// nothing linked or unlinked the file since (no stage ran), and placed is
// recorded as it is, without a stat.
func (sc *StatCache) Learn(absPath string, info FileInfo, placed os.FileInfo, restat bool) error {
	p := filepath.Clean(absPath)
	fi := placed
	if restat {
		var err error
		if fi, err = os.Lstat(p); err != nil {
			return fmt.Errorf("cas: stat cache: %w", err)
		}
	}
	if err := regularFile(p, fi); err != nil {
		return err
	}
	st, err := statOf(fi)
	if err != nil {
		return fmt.Errorf("cas: stat cache %s: %w", p, err)
	}
	then, err := statOf(placed)
	if err != nil {
		return fmt.Errorf("cas: stat cache %s: %w", p, err)
	}
	if st.ino != then.ino || st.size != then.size || st.mode != then.mode || st.mtime != then.mtime ||
		st.size != info.Size || isExec(fi.Mode()) != info.Exec {
		return nil
	}
	st.digest = info.Digest
	sc.mu.Lock()
	sc.rows[p] = st
	sc.pending[p] = st
	sc.mu.Unlock()
	return nil
}

// regularFile fails with a clear message unless fi (of p) is a regular file.
func regularFile(p string, fi os.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("cas: digest %s: is a directory, not a file", p)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("cas: digest %s: not a regular file (%s)", p, fi.Mode().Type())
	}
	return nil
}

// Flush writes the queued rows in one transaction.
func (sc *StatCache) Flush(ctx context.Context) error {
	sc.mu.Lock()
	batch := sc.pending
	sc.pending = map[string]statRow{}
	sc.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := sc.write(ctx, batch); err != nil {
		// Queue the rows again so that a later Flush can retry them, unless
		// newer ones were learned meanwhile.
		sc.mu.Lock()
		for p, r := range batch {
			if _, newer := sc.pending[p]; !newer {
				sc.pending[p] = r
			}
		}
		sc.mu.Unlock()
		return fmt.Errorf("cas: flush stat cache: %w", err)
	}
	return nil
}

// write merges batch into the stored directory rows in one transaction.
// Reading each row inside the (immediate, so exclusive) transaction means
// concurrent processes never lose each other's entries. Entries of files
// that no longer exist are dropped while a directory is rewritten anyway.
func (sc *StatCache) write(ctx context.Context, batch map[string]statRow) error {
	return writeStatRows(ctx, sc.db, batch)
}

// writeStatRows is StatCache.write, also used for the fingerprints of
// verified blobs (verify.go).
func writeStatRows(ctx context.Context, db *DB, batch map[string]statRow) error {
	byDir := map[string]map[string]statRow{}
	for p, r := range batch {
		dir, name := filepath.Split(p)
		dir = filepath.Clean(dir)
		if byDir[dir] == nil {
			byDir[dir] = map[string]statRow{}
		}
		byDir[dir][name] = r
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	get, err := tx.PrepareContext(ctx, "SELECT ents FROM stat WHERE dir = ?")
	if err != nil {
		return err
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx,
		"INSERT INTO stat (dir, ents) VALUES (?, ?) ON CONFLICT (dir) DO UPDATE SET ents = excluded.ents")
	if err != nil {
		return err
	}
	defer put.Close()
	for dir, fresh := range byDir {
		var b []byte
		if err := get.QueryRowContext(ctx, dir).Scan(&b); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		unpackDir(b, func(nb []byte, r statRow) {
			name := string(nb)
			if _, ok := fresh[name]; ok {
				return
			}
			if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
				return
			}
			fresh[name] = r
		})
		if _, err := put.ExecContext(ctx, dir, packDir(fresh)); err != nil {
			return err
		}
	}
	return tx.Commit()
}
