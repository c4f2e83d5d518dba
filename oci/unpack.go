package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Unpack extracts the layers of the image in layoutDir, in order, into
// rootfs, which must not exist. It is atomic: the tree is built in a sibling
// rootfs+".tmp-XXXX" and renamed into place, so rootfs is never half written.
//
// Whiteouts (".wh.name") and opaque directories (".wh..wh..opq") of later
// layers remove what earlier layers put there. Modes are kept (with setuid,
// setgid and sticky bits); ownership is kept only when running as root;
// timestamps and extended attributes (so file capabilities) are not.
// Device nodes and FIFOs are skipped: an unprivileged runtime cannot create
// them and the container runtime provides /dev.
//
// An entry that could write outside rootfs is an error: a ".." component, a
// hardlink whose target has one, and any path that goes through a symlink
// which is absolute or leads outside (symlinks themselves may point
// anywhere; they are only never followed out). An absolute entry name is
// taken as relative to rootfs, as tar does.
func Unpack(ctx context.Context, layoutDir, rootfs string) error {
	if _, err := os.Lstat(rootfs); err == nil {
		return fmt.Errorf("unpacking into %s: %w", rootfs, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpacking into %s: %w", rootfs, err)
	}
	img, err := readImage(layoutDir, "")
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image in %s: %w", layoutDir, err)
	}
	tmp, err := tempSibling(rootfs)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", rootfs, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	u := &unpacker{
		root:     root,
		dirModes: map[string]fs.FileMode{".": 0o755},
		dirs:     map[string]bool{".": true},
		chown:    os.Geteuid() == 0,
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("layer %d of %s: %w", i, layoutDir, err)
		}
		err = u.layer(ctx, tar.NewReader(rc))
		if cerr := rc.Close(); err == nil {
			err = cerr // a digest mismatch shows up here
		}
		if err != nil {
			return fmt.Errorf("layer %d of %s: %w", i, layoutDir, err)
		}
	}
	if err := u.applyDirModes(); err != nil {
		return err
	}
	if err := os.Rename(tmp, rootfs); err != nil {
		return fmt.Errorf("unpacking into %s: %w", rootfs, err)
	}
	ok = true
	return nil
}

// unpacker applies layers onto one root.
type unpacker struct {
	root *os.Root
	// dirModes holds the mode of each directory, set once all layers are
	// in: a read-only directory must stay writable while layers land.
	dirModes map[string]fs.FileMode
	// dirs caches names known to be directories (or symlinks to them
	// inside the root); cleared whenever anything is removed.
	dirs  map[string]bool
	chown bool
}

// layer applies one layer.
func (u *unpacker) layer(ctx context.Context, tr *tar.Reader) error {
	written := map[string]bool{} // names this layer created, which its own opaque markers keep
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return err
		}
		dir, base := path.Split(name)
		dir = path.Clean(dir) // "" -> "."
		switch {
		case base == opaqueMarker:
			if err := u.opaque(dir, written); err != nil {
				return fmt.Errorf("opaque directory %s: %w", dir, err)
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			victim := strings.TrimPrefix(base, whiteoutPrefix)
			if victim == "" || victim == "." || victim == ".." {
				return fmt.Errorf("whiteout %q names nothing", hdr.Name)
			}
			if err := u.remove(path.Join(dir, victim)); err != nil {
				return fmt.Errorf("whiteout %s: %w", hdr.Name, err)
			}
			continue
		}
		if err := u.entry(name, hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		written[name] = true
	}
}

// entry creates one file, directory, symlink or hardlink.
func (u *unpacker) entry(name string, hdr *tar.Header, r io.Reader) error {
	perm := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeXGlobalHeader:
		return nil // see Unpack
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the root can only be a directory")
		}
		u.dirModes["."] = perm
		return nil
	}
	if err := u.mkdirParents(path.Dir(name)); err != nil {
		return err
	}
	old, err := u.root.Lstat(name)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if hdr.Typeflag == tar.TypeDir && exists && old.IsDir() {
		u.dirModes[name] = perm
		return u.lchown(name, hdr)
	}
	if exists {
		if err := u.remove(name); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.root.Mkdir(name, 0o755); err != nil {
			return err
		}
		u.dirModes[name] = perm
		u.dirs[name] = true
		return u.lchown(name, hdr)
	case tar.TypeSymlink:
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		return u.lchown(name, hdr)
	case tar.TypeLink:
		target, err := cleanEntryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink: %w", err)
		}
		return u.root.Link(target, name)
	default:
		return u.writeFile(name, hdr, perm, r)
	}
}

func (u *unpacker) writeFile(name string, hdr *tar.Header, perm fs.FileMode, r io.Reader) error {
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil && u.chown {
		err = f.Chown(hdr.Uid, hdr.Gid) // before Chmod: chown clears setuid
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (u *unpacker) lchown(name string, hdr *tar.Header) error {
	if !u.chown {
		return nil
	}
	return u.root.Lchown(name, hdr.Uid, hdr.Gid)
}

// mkdirParents makes sure dir is a directory, creating missing ones (0755).
// Going through a symlink is allowed only when it stays inside the root:
// os.Root refuses absolute and escaping ones.
func (u *unpacker) mkdirParents(dir string) error {
	if u.dirs[dir] {
		return nil
	}
	if parent := path.Dir(dir); parent != dir {
		if err := u.mkdirParents(parent); err != nil {
			return err
		}
	}
	fi, err := u.root.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := u.root.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if _, ok := u.dirModes[dir]; !ok {
			u.dirModes[dir] = 0o755
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	u.dirs[dir] = true
	return nil
}

// remove deletes name and everything under it, if present, and forgets
// what was known about the directories it held.
func (u *unpacker) remove(name string) error {
	fi, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := u.root.RemoveAll(name); err != nil {
		return err
	}
	// Removing a plain file changes no directory; a directory or symlink
	// may have been a cached parent.
	if fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
		clear(u.dirs)
		u.dirs["."] = true
		for d := range u.dirModes {
			if d == name || strings.HasPrefix(d, name+"/") {
				delete(u.dirModes, d)
			}
		}
	}
	return nil
}

// opaque empties dir of everything earlier layers put there, keeping what
// this layer wrote (written), at any depth.
func (u *unpacker) opaque(dir string, written map[string]bool) error {
	f, err := u.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		switch {
		case !written[p]:
			if err := u.remove(p); err != nil {
				return err
			}
		case e.IsDir():
			if err := u.opaque(p, written); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyDirModes sets the directories' final modes, deepest first so that a
// read-only parent does not block its children.
func (u *unpacker) applyDirModes() error {
	names := make([]string, 0, len(u.dirModes))
	for n := range u.dirModes {
		names = append(names, n)
	}
	depth := func(n string) int {
		if n == "." {
			return 0
		}
		return strings.Count(n, "/") + 1
	}
	slices.SortFunc(names, func(a, b string) int { return depth(b) - depth(a) })
	for _, n := range names {
		if err := u.root.Chmod(n, u.dirModes[n]); err != nil {
			return fmt.Errorf("setting mode of %s: %w", filepath.FromSlash(n), err)
		}
	}
	return nil
}
