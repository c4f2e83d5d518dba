package cas

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// tempPrefix starts the names of temporary files and directories that
// Materialize and MaterializeTree create next to their destination.
const tempPrefix = ".mc-tmp-"

// Materialize places the blob d at dst, creating dst's parent directories and
// atomically replacing whatever file was at dst.
//
//   - link && !exec: a hard link to the blob (read-only; a verified copy
//     with mode 0444 when the filesystem refuses the link). Used for sandbox
//     inputs.
//   - link && exec: a read-only copy with mode 0555 (a link would share the
//     blob's mode 0444).
//   - !link: a writable copy, mode 0644 or 0755 if exec. Used for mc-out/,
//     which the user may edit.
//
// A link is made only to a blob known to be good (CheckUse), and a copy is
// verified while it is made: a corrupt blob is removed from the store and
// the error wraps ErrCorrupt. A missing blob is ErrNotFound.
func (s *Store) Materialize(d Digest, dst string, exec bool, link bool) error {
	dir := filepath.Dir(dst)
	if link && !exec {
		// A link is whole the moment it exists, so where nothing is at dst
		// yet (a fresh mc-out/) it is made right there: one link(2) instead
		// of a directory check, a link to a temp name, a rename and a
		// remove. Anything else (dst exists, the directory or the blob is
		// missing, another filesystem) takes the general path below.
		if err := s.CheckUse(d); err != nil {
			return fmt.Errorf("cas: materialize %s: %w", dst, err)
		}
		err := os.Link(s.Path(d), dst)
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) && s.Has(d) {
			if os.MkdirAll(dir, 0o755) == nil && os.Link(s.Path(d), dst) == nil {
				return nil
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	tmp := tempName(dir)
	if err := s.place(d, tmp, exec, link); err != nil {
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	// rename(2) does nothing when tmp and dst are links to the same inode
	// (dst was already this blob); tmp is then still there.
	os.Remove(tmp)
	return nil
}

// place creates dst, which must not exist, holding the blob d, as described
// for Materialize.
func (s *Store) place(d Digest, dst string, exec, link bool) error {
	if link && !exec {
		if err := s.CheckUse(d); err != nil {
			return err
		}
		err := os.Link(s.Path(d), dst)
		// link(2) fails with ENOENT if the blob's path is being replaced
		// right now (a filesystem without RENAME_NOREPLACE): try again.
		for try := 0; try < 3 && errors.Is(err, fs.ErrNotExist) && s.Has(d); try++ {
			err = os.Link(s.Path(d), dst)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) && !s.Has(d) {
			return fmt.Errorf("blob %s: %w", d.Short(), ErrNotFound)
		}
		if !linkUnsupported(err) {
			return err
		}
	}
	mode := os.FileMode(0o644)
	switch {
	case link && exec:
		mode = 0o555
	case link: // a copy standing in for a link is read-only like one
		mode = 0o444
	case exec:
		mode = 0o755
	}
	return s.copyTo(d, dst, mode)
}

// copyTo writes a verified copy of the blob d to the new file dst.
func (s *Store) copyTo(d Digest, dst string, mode os.FileMode) error {
	src, err := s.openBlob(d)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := NewHasher()
	buf := getBuf()
	defer putBuf(buf)
	_, err = io.CopyBuffer(io.MultiWriter(out, h), src, buf)
	if err == nil {
		if got := h.Sum(); got != d {
			err = s.corrupt(d, src, got)
		}
	}
	if err == nil {
		// Chmod, not the create mode, so that the umask does not matter.
		err = out.Chmod(mode)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}

// tempName returns an unused-looking temporary name in dir.
func tempName(dir string) string {
	return filepath.Join(dir, tempPrefix+strconv.FormatUint(rand.Uint64(), 36))
}

// linkUnsupported reports whether a hard link failed for a reason a copy
// avoids: another filesystem, no hard links there, or too many links.
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.ENOTSUP)
}

// isCrossDevice reports whether err is a rename across filesystems.
func isCrossDevice(err error) bool { return errors.Is(err, syscall.EXDEV) }
