package cas

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// treeWorkers bounds the files stored or materialized at once for one tree:
// the work is mostly I/O, so a few more than the cores.
func treeWorkers() int { return runtime.GOMAXPROCS(0) + 2 }

// isExec is the one rule for "executable" in mc: any execute bit set.
func isExec(m fs.FileMode) bool { return m&0o111 != 0 }

// PutTree stores the directory dir: every regular file (moved in with
// AdoptFile if adopt, else copied with PutFile), then the tree blob, whose
// digest it returns. Empty directories and relative symlinks are kept;
// absolute or escaping symlinks and special files are errors.
func (s *Store) PutTree(dir string, adopt bool) (Digest, *Tree, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return Zero, nil, fmt.Errorf("cas: put tree: %w", err)
	}
	if !fi.IsDir() {
		return Zero, nil, fmt.Errorf("cas: put tree %s: not a directory", dir)
	}
	t := &Tree{}
	files := map[string]string{}  // relative -> path of each regular file
	nonEmpty := map[string]bool{} // directories (relative) holding something
	var dirs []string
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := validPath(rel); err != nil {
			return err
		}
		nonEmpty[path.Dir(rel)] = true
		e := TreeEntry{Path: rel}
		switch typ := de.Type(); {
		case typ.IsDir():
			dirs = append(dirs, rel)
			return nil
		case typ.IsRegular():
			info, err := de.Info()
			if err != nil {
				return err
			}
			e.Exec = isExec(info.Mode())
			files[rel] = p
		case typ&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if target == "" {
				return fmt.Errorf("symlink %s has an empty target", rel)
			}
			e.Symlink = target
		default:
			return fmt.Errorf("%s is not a file, directory or symlink (%s)", rel, typ)
		}
		t.Entries = append(t.Entries, e)
		return nil
	})
	if err != nil {
		return Zero, nil, fmt.Errorf("cas: put tree %s: %w", dir, err)
	}
	for _, d := range dirs {
		if !nonEmpty[d] {
			t.Entries = append(t.Entries, TreeEntry{Path: d, Dir: true})
		}
	}
	// Check symlinks before storing anything: a bad tree must not be half adopted.
	slices.SortFunc(t.Entries, func(a, b TreeEntry) int { return strings.Compare(a.Path, b.Path) })
	if err := t.validate(true); err != nil {
		return Zero, nil, fmt.Errorf("cas: put tree %s: %w", dir, err)
	}
	var g errgroup.Group
	g.SetLimit(treeWorkers())
	for i := range t.Entries {
		p, ok := files[t.Entries[i].Path]
		if !ok {
			continue
		}
		g.Go(func() error {
			var d Digest
			var n int64
			var err error
			if adopt {
				d, n, err = s.AdoptFile(p)
			} else {
				d, n, err = s.PutFile(p)
			}
			t.Entries[i].Digest, t.Entries[i].Size = d, n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Zero, nil, fmt.Errorf("cas: put tree %s: %w", dir, err)
	}
	d, err := s.PutBytes(t.Encode())
	if err != nil {
		return Zero, nil, fmt.Errorf("cas: put tree %s: %w", dir, err)
	}
	return d, t, nil
}

// GetTree reads (verified) and decodes the tree blob d.
func (s *Store) GetTree(d Digest) (*Tree, error) {
	b, err := s.ReadBytes(d)
	if err != nil {
		return nil, err
	}
	return DecodeTree(b)
}

// MaterializeTree places the tree d at the directory dst, with the same
// file semantics as Materialize. The tree is built in a temporary directory
// next to dst and then swapped in, so dst is never seen half written and
// whatever was at dst is replaced.
func (s *Store) MaterializeTree(d Digest, dst string, link bool) error {
	t, err := s.GetTree(d)
	if err != nil {
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(parent, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	if err := s.fillTree(t, tmp, link); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	if err := swapIn(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cas: materialize %s: %w", dst, err)
	}
	return nil
}

// fillTree creates t's entries in the existing empty directory root.
func (s *Store) fillTree(t *Tree, root string, link bool) error {
	if err := os.Chmod(root, 0o755); err != nil { // MkdirTemp makes it 0700
		return err
	}
	made := map[string]bool{".": true}
	mkdir := func(rel string) error {
		if made[rel] {
			return nil
		}
		made[rel] = true
		return os.MkdirAll(filepath.Join(root, filepath.FromSlash(rel)), 0o755)
	}
	var g errgroup.Group
	g.SetLimit(treeWorkers())
	for _, e := range t.Entries {
		dst := filepath.Join(root, filepath.FromSlash(e.Path))
		if err := mkdir(path.Dir(e.Path)); err != nil {
			g.Wait()
			return err
		}
		switch {
		case e.Dir:
			if err := mkdir(e.Path); err != nil {
				g.Wait()
				return err
			}
		case e.Symlink != "":
			if err := os.Symlink(e.Symlink, dst); err != nil {
				g.Wait()
				return err
			}
		default:
			g.Go(func() error { return s.place(e.Digest, dst, e.Exec, link) })
		}
	}
	return g.Wait()
}

// swapIn moves the directory tmp to dst, atomically exchanging it with an
// existing dst where the filesystem allows, and removes the old content.
func swapIn(tmp, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(tmp, dst)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err != nil {
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOENT) {
			return err
		}
		// No RENAME_EXCHANGE here (or dst vanished): move the old one aside first.
		old := tempName(filepath.Dir(dst))
		if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return os.RemoveAll(old)
	}
	// tmp now holds the old content.
	return os.RemoveAll(tmp)
}
