package cas

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/internal/fdio"
)

// ErrNotFound is returned when a blob is not in the store. errors.Is(err,
// fs.ErrNotExist) is true for it as well.
var ErrNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string { return "blob not found" }
func (notFoundError) Unwrap() error { return fs.ErrNotExist }

// ErrCorrupt is returned when content does not match its digest: a blob that
// was tampered with on disk, or a file that does not hold what the caller
// expected. A corrupt blob is removed from the store when it is detected.
var ErrCorrupt = errors.New("content does not match its digest")

// staleTemp is how old a temporary file in <dir>/tmp must be before OpenStore
// deletes it: old enough that no live writer can still own it.
const staleTemp = time.Hour

// copyBufSize is the buffer size for copying blobs; larger than io.Copy's
// default because blobs are often big build outputs.
const copyBufSize = 256 << 10

// copyBufs recycles copy buffers: materializing ten thousand outputs must
// not allocate ten thousand 256 KiB buffers for the collector to clear.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

func getBuf() []byte  { return *copyBufs.Get().(*[]byte) }
func putBuf(b []byte) { copyBufs.Put(&b) }

// Store is the local blob store: every blob lives read-only at
// <dir>/<hex[:2]>/<hex>. Blobs are written as unnamed files (or, where the
// filesystem has none, in <dir>/tmp), fsynced and linked or renamed into
// place, so a blob's name always matches its content even if the process is
// killed. A Store is safe for concurrent use by goroutines and by
// several processes sharing the directory.
type Store struct {
	dir string
	tmp string
	// v knows which blobs are good (verify.go). The hooks here: writers
	// record what they place (wrote), take an existing blob as theirs only
	// if it is good (present), and removal forgets.
	v verifier
	// deferSync skips the fsync of each blob: the caller promises to call
	// Sync before it records anything that refers to blobs written since
	// (group commit: one syncfs per batch of action results instead of one
	// fsync per blob, which dominated a build of many small stages).
	deferSync bool
	// tmpfile: new blobs are unnamed files linked into place (createTemp),
	// as probed once by unnamedTemps.
	tmpfileOnce sync.Once
	tmpfile     bool
	// base is the trusted store an untrusted tier's store reads through
	// to, never writes (tier.go); nil for every other store.
	base *Store
}

// DeferSync makes blob writes skip their own fsync; see Store.Sync. Call it
// before the store is used concurrently.
func (s *Store) DeferSync() { s.deferSync = true }

// Sync makes every blob written so far durable: one syncfs(2) of the
// store's filesystem. With DeferSync, call it before recording an action
// result that refers to new blobs, so that after a power loss no recorded
// result names a blob whose content did not reach the disk. (A blob that
// did not is caught by verify-on-read either way and treated as missing.)
func (s *Store) Sync() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("cas: sync: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("cas: sync: %w", err)
	}
	return nil
}

// OpenStore opens (creating if needed) the store in dir and removes
// temporary files that crashed writers left behind.
func OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cas: store %s: %w", dir, err)
	}
	s := &Store{dir: abs, tmp: filepath.Join(abs, "tmp")}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("cas: open store: %w", err)
	}
	if err := s.cleanTemps(time.Now().Add(-staleTemp)); err != nil {
		return nil, fmt.Errorf("cas: open store: %w", err)
	}
	return s, nil
}

// cleanTemps removes temporary files last modified before cutoff.
func (s *Store) cleanTemps(cutoff time.Time) error {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue // removed concurrently
		}
		if info.ModTime().Before(cutoff) {
			if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// Dir is the store's root directory (absolute).
func (s *Store) Dir() string { return s.dir }

// Path is where the blob d lives (whether or not it is present).
func (s *Store) Path(d Digest) string {
	h := d.Hex()
	return filepath.Join(s.dir, h[:2], h)
}

// Has reports whether the blob d is present. It does not read or verify it.
func (s *Store) Has(d Digest) bool {
	fi, err := os.Stat(s.Path(d))
	return err == nil && fi.Mode().IsRegular() || s.base != nil && s.fromBase(d)
}

// Size is the size of the blob d, which must be present.
func (s *Store) Size(d Digest) (int64, error) {
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) && s.base != nil && s.fromBase(d) {
		fi, err = os.Stat(s.Path(d))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("cas: blob %s: %w", d.Short(), ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("cas: blob %s: %w", d.Short(), err)
	}
	return fi.Size(), nil
}

// PutBytes stores b and returns its digest. It does nothing when the blob is
// already present.
func (s *Store) PutBytes(b []byte) (Digest, error) {
	d := FromBytes(b)
	if s.present(d) {
		return d, nil
	}
	f, got, _, err := s.copyToTemp(bytes.NewReader(b), d)
	if err != nil {
		return Zero, err
	}
	if got != d {
		// Only possible if b changed under us (a caller's data race).
		f.discard()
		return Zero, fmt.Errorf("cas: put bytes: buffer changed while being stored: %w", ErrCorrupt)
	}
	if err := s.commit(f, d); err != nil {
		return Zero, err
	}
	return d, nil
}

// PutFile copies the file at path into the store and returns its digest and
// size. It does nothing (beyond reading the file) when the blob is present.
func (s *Store) PutFile(path string) (Digest, int64, error) {
	src, err := openRegular(path)
	if err != nil {
		return Zero, 0, err
	}
	defer unix.Close(int(src))
	// One pass: copy and hash together; the copy is thrown away if the blob
	// turns out to be present. No fsync is paid in that case.
	f, d, n, err := s.copyToTemp(src, Zero)
	if err != nil {
		return Zero, 0, fmt.Errorf("cas: put %s: %w", path, err)
	}
	if s.present(d) {
		f.discard()
		return d, n, nil
	}
	if err := s.commit(f, d); err != nil {
		return Zero, 0, err
	}
	return d, n, nil
}

// PutFileExpect stores the file at path under want. If the file's content
// does not hash to want, nothing is stored and the error wraps ErrCorrupt.
// When the blob want is already present the file is not read at all: the
// store already holds the right content.
func (s *Store) PutFileExpect(path string, want Digest) error {
	if s.present(want) {
		return nil
	}
	src, err := openRegular(path)
	if err != nil {
		return err
	}
	defer unix.Close(int(src))
	f, d, _, err := s.copyToTemp(src, want)
	if err != nil {
		return fmt.Errorf("cas: put %s: %w", path, err)
	}
	if d != want {
		f.discard()
		return fmt.Errorf("cas: put %s: content is %s, want %s: %w", path, d.Short(), want.Short(), ErrCorrupt)
	}
	return s.commit(f, d)
}

// PutReaderExpect stores what r yields under want: the download path of a
// second-tier cache. If the content does not hash to want (a tampered or
// truncated object), nothing is stored and the error wraps ErrCorrupt. When
// want is already present r is not read.
func (s *Store) PutReaderExpect(r io.Reader, want Digest) error {
	if s.present(want) {
		return nil
	}
	f, d, _, err := s.copyToTemp(r, want)
	if err != nil {
		return fmt.Errorf("cas: put %s: %w", want.Short(), err)
	}
	if d != want {
		f.discard()
		return fmt.Errorf("cas: put: content is %s, want %s: %w", d.Short(), want.Short(), ErrCorrupt)
	}
	return s.commit(f, d)
}

// TempDir is a directory on the store's filesystem for files that are about
// to become blobs (AdoptFile renames them in without copying).
func (s *Store) TempDir() string { return s.tmp }

// AdoptFile moves a file the caller is about to discard (a sandbox output)
// into the store instead of copying it: it hashes and fsyncs the file, makes
// it read-only and renames it into place. Across filesystems it copies
// instead. If the blob is already present the file is left where it is.
func (s *Store) AdoptFile(path string) (Digest, int64, error) {
	// Not following a symlink, and not blocking on a FIFO: neither is
	// adopted.
	fd, err := openRaw(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return Zero, 0, fmt.Errorf("cas: adopt %s: not a regular file (%s)", path, fi.Mode().Type())
		}
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	var before unix.Stat_t
	if err := fstat(fd, &before); err != nil {
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		fi, err := os.Lstat(path)
		if err != nil {
			return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
		}
		return Zero, 0, fmt.Errorf("cas: adopt %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	d, n, err := hashFD(fdReader(fd))
	if err != nil {
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
	}
	// The file must be on disk before its name says it is a blob (unless
	// the caller syncs the store before recording results, DeferSync).
	// Without that fsync to save, a blob already there is found by the
	// rename, which never replaces one (and the file gets its mode back).
	if !s.deferSync {
		if s.present(d) {
			return d, n, nil
		}
		if err := fsync(fd); err != nil {
			return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
		}
	}
	var after unix.Stat_t
	if err := fstat(fd, &after); err != nil {
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
	}
	if after.Size != n || after.Mtim != before.Mtim {
		return Zero, 0, fmt.Errorf("cas: adopt %s: file changed while being hashed", path)
	}
	if err := fchmod(fd, 0o444); err != nil {
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
	}
	placed, err := s.moveIn(path, d)
	if err == nil && !placed && !s.present(d) {
		// The blob there was corrupt (and is removed now): this file
		// takes its place.
		placed, err = s.moveIn(path, d)
	}
	if placed {
		// fchmod moved only the ctime, which is not compared within a
		// process (verify.go).
		after.Mode = unix.S_IFREG | 0o444
		s.wrote(d, &after)
	}
	if err == nil && !placed {
		if err := fchmod(fd, before.Mode&0o7777); err != nil {
			return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
		}
		return d, n, nil
	}
	if isCrossDevice(err) {
		if err := s.PutFileExpect(path, d); err != nil {
			return Zero, 0, err
		}
		return d, n, nil
	}
	if err != nil {
		return Zero, 0, fmt.Errorf("cas: adopt %s: %w", path, err)
	}
	return d, n, nil
}

// Open returns a reader of the blob d that verifies it: at EOF, if the
// content did not match d, Read returns an error wrapping ErrCorrupt and the
// blob is removed from the store. A missing blob is ErrNotFound.
func (s *Store) Open(d Digest) (io.ReadCloser, error) {
	f, err := s.openBlob(d)
	if err != nil {
		return nil, fmt.Errorf("cas: open: %w", err)
	}
	return &verifyingReader{s: s, f: f, want: d, h: NewHasher()}, nil
}

// ReadBytes returns the verified content of the blob d.
func (s *Store) ReadBytes(d Digest) ([]byte, error) {
	f, err := s.openBlob(d)
	if err != nil {
		return nil, fmt.Errorf("cas: read: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		buf.Grow(int(fi.Size()) + 1) // +1 so ReadFrom sees EOF without growing
	}
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("cas: read %s: %w", d.Short(), err)
	}
	if got := FromBytes(buf.Bytes()); got != d {
		return nil, fmt.Errorf("cas: read: %w", s.corrupt(d, f, got))
	}
	return buf.Bytes(), nil
}

// Verify reads the blob d and checks it against its digest; a corrupt blob is
// removed and the error wraps ErrCorrupt.
func (s *Store) Verify(d Digest) error {
	f, err := s.openBlob(d)
	if err != nil {
		return fmt.Errorf("cas: verify: %w", err)
	}
	defer f.Close()
	got, _, err := FromReader(f)
	if err != nil {
		return fmt.Errorf("cas: verify %s: %w", d.Short(), err)
	}
	if got != d {
		return fmt.Errorf("cas: verify: %w", s.corrupt(d, f, got))
	}
	return nil
}

// Remove deletes the blob d. Removing a missing blob is not an error, so that
// concurrent cleaners do not trip over each other.
func (s *Store) Remove(d Digest) error {
	s.forget(d)
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cas: remove %s: %w", d.Short(), err)
	}
	return nil
}

// openBlob opens the blob file, mapping a missing file to ErrNotFound.
func (s *Store) openBlob(d Digest) (*os.File, error) {
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) && s.base != nil && s.fromBase(d) {
		f, err = os.Open(s.Path(d))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Short(), err)
	}
	return f, nil
}

// corrupt removes the corrupt blob d, which f has open, and returns the error
// to report. The blob is removed only if its path still names the file we
// read: another process may already have replaced it with a good copy.
func (s *Store) corrupt(d Digest, f *os.File, got Digest) error {
	err := fmt.Errorf("blob %s holds %s: %w", d.Short(), got.Short(), ErrCorrupt)
	s.forget(d)
	read, err1 := f.Stat()
	cur, err2 := os.Stat(s.Path(d))
	if err1 == nil && err2 == nil && os.SameFile(read, cur) {
		if rerr := os.Remove(s.Path(d)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("%w (and removing it failed: %v)", err, rerr)
		}
	}
	return err
}

// tempFile is a file in the store's temp directory about to become a
// blob, open for writing.
// tempFile is a blob being written: an unnamed file (O_TMPFILE, name "")
// that commit links into place, or, where the filesystem cannot make one, a
// named file in <dir>/tmp that commit renames.
type tempFile struct {
	fd   int
	name string
}

// createTemp creates a new, empty temp file for a blob, on the descriptor
// directly: os.CreateTemp would first try to register a regular file with
// the runtime's poller, several system calls that fail on every one of the
// thousands of small files a build stores.
//
// The file is unnamed and made in the shard directory of near (the expected
// digest; a random shard for Zero): a crash leaves nothing to clean up, no
// directory lock is held while the filesystem finds an inode, and inodes
// spread over the shards' directories instead of piling into one. One
// shared temp directory serialized every download of a remote-cached build
// on its lock, and on an ext4 without a journal each new inode there
// stepped over every recently deleted one (README of bench/).
func (s *Store) createTemp(near Digest) (tempFile, error) {
	if s.unnamedTemps() {
		var shard string
		if near.IsZero() {
			shard = fmt.Sprintf("%02x", rand.Uint32()&0xff)
		} else {
			shard = near.Hex()[:2]
		}
		dir := filepath.Join(s.dir, shard)
		fd, err := openRaw(dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
		if err == unix.ENOENT {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return tempFile{}, fmt.Errorf("temp file: %w", err)
			}
			fd, err = openRaw(dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
		}
		if err == nil {
			return tempFile{fd: fd}, nil
		}
		// Not on this filesystem after all: a named file below.
	}
	var rnd [8]byte
	for try := 0; ; try++ {
		binary.LittleEndian.PutUint64(rnd[:], rand.Uint64())
		name := filepath.Join(s.tmp, "put-"+hex.EncodeToString(rnd[:]))
		fd, err := openRaw(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err == nil {
			return tempFile{fd: fd, name: name}, nil
		}
		if err != unix.EEXIST || try == 100 {
			return tempFile{}, fmt.Errorf("temp file: %w", &os.PathError{Op: "open", Path: name, Err: err})
		}
	}
}

// unnamedTemps reports whether this store's filesystem makes unnamed files
// (O_TMPFILE) that can be linked into place through /proc/self/fd (which
// needs no privilege, unlike AT_EMPTY_PATH): tried once per Store, with
// one file that is linked and removed again.
func (s *Store) unnamedTemps() bool {
	s.tmpfileOnce.Do(func() {
		fd, err := openRaw(s.tmp, unix.O_TMPFILE|unix.O_RDWR, 0o600)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		probe := filepath.Join(s.tmp, fmt.Sprintf("probe-%016x", rand.Uint64()))
		if linkFD(fd, probe) == nil {
			os.Remove(probe)
			s.tmpfile = true
		}
	})
	return s.tmpfile
}

// linkFD gives the open unnamed file fd the name path (link(2) through
// /proc/self/fd; EEXIST if path exists).
func linkFD(fd int, path string) error {
	for {
		err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// discard closes and deletes a temp file that will not become a blob.
func (t tempFile) discard() {
	unix.Close(t.fd)
	if t.name != "" {
		os.Remove(t.name)
	}
}

// copyToTemp copies r into a new temp file (see createTemp; near is the
// digest the caller expects, or Zero) and returns it open, with the digest
// and size of what was written.
func (s *Store) copyToTemp(r io.Reader, near Digest) (tempFile, Digest, int64, error) {
	f, err := s.createTemp(near)
	if err != nil {
		return tempFile{}, Zero, 0, err
	}
	h := NewHasher()
	buf := getBuf()
	defer putBuf(buf)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			if err := fdio.WriteAll(f.fd, buf[:m]); err != nil {
				f.discard()
				return tempFile{}, Zero, 0, &os.PathError{Op: "write", Path: f.name, Err: err}
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return f, h.Sum(), n, nil
		}
		if rerr != nil {
			f.discard()
			return tempFile{}, Zero, 0, rerr
		}
	}
}

// commit makes the temp file f the blob d: fsync, read-only, link or
// rename into place. It always closes f, and removes it on failure. An
// existing blob is never replaced (see renameIn).
func (s *Store) commit(f tempFile, d Digest) error {
	if !s.deferSync {
		if err := fsync(f.fd); err != nil {
			f.discard()
			return fmt.Errorf("cas: put %s: fsync: %w", d.Short(), err)
		}
	}
	if err := fchmod(f.fd, 0o444); err != nil {
		f.discard()
		return fmt.Errorf("cas: put %s: %w", d.Short(), err)
	}
	if f.name == "" {
		return s.linkIn(f.fd, d)
	}
	var st unix.Stat_t
	statErr := fstat(f.fd, &st)
	if err := unix.Close(f.fd); err != nil {
		os.Remove(f.name)
		return fmt.Errorf("cas: put %s: %w", d.Short(), err)
	}
	placed, err := s.moveIn(f.name, d)
	if err == nil && !placed && !s.present(d) {
		placed, err = s.moveIn(f.name, d) // the blob there was corrupt
	}
	if placed && statErr == nil {
		s.wrote(d, &st)
	}
	if !placed {
		os.Remove(f.name) // the blob appeared meanwhile, or the rename failed
	}
	if err != nil {
		return fmt.Errorf("cas: put %s: %w", d.Short(), err)
	}
	return nil
}

// linkIn names the unnamed file fd as the blob d and closes it. A blob that
// appeared meanwhile stays (the file is dropped with its descriptor).
func (s *Store) linkIn(fd int, d Digest) error {
	dst := s.Path(d)
	err := linkFD(fd, dst)
	if err == unix.ENOENT {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			err = linkFD(fd, dst)
		}
	}
	if err == unix.EEXIST && !s.present(d) {
		err = linkFD(fd, dst) // the blob there was corrupt (now removed)
	}
	placed := err == nil
	if placed {
		s.wroteFD(d, fd)
	}
	if err == unix.EEXIST {
		err = nil
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		// A write the kernel reports only now (a network filesystem): the
		// blob cannot be trusted.
		if placed {
			os.Remove(dst)
		}
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cas: put %s: %w", d.Short(), &os.LinkError{Op: "link", Old: "(new file)", New: dst, Err: err})
	}
	return nil
}

// renameIn renames the file at src to the blob path of d, creating the shard
// directory if needed. An existing blob is never replaced: its inode stays
// the one readers and hard links share (link(2) of a path being replaced can
// fail with ENOENT). If the blob appeared meanwhile, src is left in place and
// renameIn reports success; callers that own src remove it.
func (s *Store) renameIn(src string, d Digest) error {
	_, err := s.moveIn(src, d)
	return err
}

// moveIn is renameIn, also reporting whether src became the blob (false
// when the blob was there already, or on error).
func (s *Store) moveIn(src string, d Digest) (placed bool, err error) {
	dst := s.Path(d)
	err = renameNoReplace(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(src); serr != nil {
			return false, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return false, err
		}
		err = renameNoReplace(src, dst)
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return err == nil, err
}

// renameNoReplace renames src to dst unless dst exists (fs.ErrExist). Where
// the filesystem lacks RENAME_NOREPLACE it falls back to a plain rename,
// which replaces identical content.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// openRegular opens the regular file at path (following symlinks) for
// reading.
func openRegular(path string) (fdReader, error) {
	// Not blocking on a FIFO, which is refused below.
	fd, err := openRaw(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("cas: put %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("cas: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		fi, err := os.Stat(path)
		if err != nil {
			return -1, fmt.Errorf("cas: %s: %w", path, err)
		}
		return -1, fmt.Errorf("cas: %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return fdReader(fd), nil
}

// The descriptor-level helpers below retry on EINTR, as package os does.

// openRaw opens path with flags (and O_CLOEXEC).
func openRaw(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}

func fsync(fd int) error {
	for {
		if err := unix.Fsync(fd); err != unix.EINTR {
			return err
		}
	}
}

func fchmod(fd int, mode uint32) error {
	for {
		if err := unix.Fchmod(fd, mode); err != unix.EINTR {
			return err
		}
	}
}

// fdReader reads a descriptor.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(int(fd), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// hashFD hashes what r yields, with a pooled buffer.
func hashFD(r fdReader) (Digest, int64, error) {
	h := NewHasher()
	buf := getBuf()
	defer putBuf(buf)
	var n int64
	for {
		m, err := r.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			return h.Sum(), n, nil
		}
		if err != nil {
			return Zero, n, err
		}
	}
}

// verifyingReader hashes what it reads and checks the digest at EOF.
type verifyingReader struct {
	s    *Store
	f    *os.File
	want Digest
	h    *Hasher
	err  error // sticky verification error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := v.h.Sum(); got != v.want {
			v.err = fmt.Errorf("cas: read: %w", v.s.corrupt(v.want, v.f, got))
			return n, v.err
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
