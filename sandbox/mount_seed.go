package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// seedFromTrusted starts the cache mount name of an untrusted build
// (LocalOptions.SeedMountsDir set) as a copy of the trusted mount of that
// name, unless it exists already. It is called before the mount directory
// is made; a no-op for a trusted build.
func (l *Local) seedFromTrusted(name string) error {
	if l.opts.SeedMountsDir == "" {
		return nil
	}
	host := filepath.Join(l.opts.MountsDir, name)
	if _, err := os.Lstat(host); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := seedMount(filepath.Join(l.opts.SeedMountsDir, name), host); err != nil {
		return fmt.Errorf("cache mount %s: starting it from the trusted one: %w", name, err)
	}
	return nil
}

// seedMount copies the directory src (a trusted cache mount) to dst, which
// must not exist: built aside and renamed into place, so that two stages
// starting the same mount at once both see a whole copy. Files are copied,
// never linked (a stage writing to a linked inode would write the trusted
// file); symlinks are recreated as they are, never followed; anything else
// (sockets, fifos, devices) is left out. A missing src is an empty mount.
func seedMount(src, dst string) error {
	if fi, err := os.Lstat(src); err != nil || !fi.IsDir() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil // none yet (or not a directory): start empty
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".seed-")
	if err != nil {
		return err
	}
	if err := copyTree(src, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		if _, serr := os.Lstat(dst); serr == nil {
			return nil // another stage seeded it first
		}
		return err
	}
	return nil
}

// copyTree copies the contents of the directory src into the existing
// directory dst. A file that disappears while it is copied (a trusted
// build running at the same time) is skipped.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != src {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		to := filepath.Join(dst, rel)
		fi, err := de.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			return os.Mkdir(to, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return ignoreGone(err)
			}
			return os.Symlink(target, to)
		case mode.IsRegular():
			return ignoreGone(copyFile(p, to, mode.Perm()))
		}
		return nil
	})
}

func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// copyFile copies the regular file src to the new file dst. O_NOFOLLOW: a
// file swapped for a symlink since it was listed is not followed.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return err // not a regular file any more: left out
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
