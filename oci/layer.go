package oci

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// GzipLevel is the compression level of built layers. It is part of the
// encoding: changing it changes every image digest.
const GzipLevel = 6

// epoch is the only timestamp written into a built image.
var epoch = time.Unix(0, 0).UTC()

// A File places one host file or directory tree into the image.
type File struct {
	// Dest is the absolute path in the image, e.g. "/usr/local/bin/api".
	Dest string
	// Src is a host path. A regular file keeps only its exec bit (mode 0755
	// or 0644). A directory is copied recursively with directories 0755; a
	// relative symlink inside it that stays inside it is kept, any other
	// symlink, device, socket or pipe is an error. Src itself may be a
	// symlink; it is followed.
	Src string
}

// entry is one tar entry of a built layer.
type entry struct {
	name string // clean, relative to the image root, no trailing slash
	typ  byte   // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode int64
	src  string // host file, for tar.TypeReg
	size int64  // for tar.TypeReg
	link string // target, for tar.TypeSymlink
	from string // the File.Dest that produced it, for conflict messages
}

// layerEntries lists the entries for files, keyed by name: every file, every
// directory of a tree, and every parent directory of a destination.
func layerEntries(files []File) (map[string]*entry, error) {
	entries := map[string]*entry{}
	add := func(e *entry) error {
		old, ok := entries[e.name]
		if !ok {
			entries[e.name] = e
			return nil
		}
		if old.typ == tar.TypeDir && e.typ == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("image files %s and %s both place /%s", old.from, e.from, e.name)
	}
	for _, f := range files {
		dest, err := cleanDest(f.Dest)
		if err != nil {
			return nil, err
		}
		// Parents first, so that a file placed at a parent's path conflicts.
		for dir := path.Dir(dest); dir != "."; dir = path.Dir(dir) {
			if err := add(&entry{name: dir, typ: tar.TypeDir, mode: 0o755, from: f.Dest}); err != nil {
				return nil, err
			}
		}
		info, err := os.Stat(f.Src)
		if err != nil {
			return nil, fmt.Errorf("image file %s: %w", f.Dest, err)
		}
		switch {
		case info.Mode().IsRegular():
			if dest == "." {
				return nil, fmt.Errorf("image file %s: a file cannot be the root directory", f.Dest)
			}
			err = add(regular(dest, f.Src, info, f.Dest))
		case info.IsDir():
			err = treeEntries(f, dest, add)
		default:
			err = fmt.Errorf("image file %s: %s is neither a regular file nor a directory", f.Dest, f.Src)
		}
		if err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// cleanDest turns an absolute image path into the entry name ("." for "/").
func cleanDest(dest string) (string, error) {
	if !strings.HasPrefix(dest, "/") {
		return "", fmt.Errorf("image file destination %q is not an absolute path", dest)
	}
	if slices.Contains(strings.Split(dest, "/"), "..") {
		return "", fmt.Errorf("image file destination %q contains ..", dest)
	}
	if dest = path.Clean(dest); dest == "/" {
		return ".", nil
	}
	return dest[1:], nil
}

func regular(name, src string, info fs.FileInfo, from string) *entry {
	mode := int64(0o644)
	if info.Mode()&0o111 != 0 {
		mode = 0o755
	}
	return &entry{name: name, typ: tar.TypeReg, mode: mode, src: src, size: info.Size(), from: from}
}

// treeEntries adds the contents of the directory f.Src placed at dest.
func treeEntries(f File, dest string, add func(*entry) error) error {
	root, err := filepath.EvalSymlinks(f.Src)
	if err != nil {
		return fmt.Errorf("image file %s: %w", f.Dest, err)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("image file %s: %w", f.Dest, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := path.Join(dest, rel)
		if name == "." {
			return nil // the image root itself is never an entry
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("image file %s: %w", f.Dest, err)
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return add(&entry{name: name, typ: tar.TypeDir, mode: 0o755, from: f.Dest})
		case mode.IsRegular():
			return add(regular(name, p, info, f.Dest))
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("image file %s: %w", f.Dest, err)
			}
			// Only links that mean the same thing in the image as on the
			// host are kept: relative, and inside the copied tree.
			if path.IsAbs(target) || !local(path.Join(path.Dir(rel), target)) {
				return fmt.Errorf("image file %s: symlink %s -> %s points outside the directory", f.Dest, p, target)
			}
			return add(&entry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target, from: f.Dest})
		default:
			return fmt.Errorf("image file %s: %s is a %v, only files, directories and symlinks can go into an image", f.Dest, p, mode.Type())
		}
	})
}

// local reports whether a cleaned relative slash path stays inside its root.
func local(p string) bool {
	return p != ".." && !strings.HasPrefix(p, "../") && !path.IsAbs(p)
}

// writeLayer writes entries as a reproducible gzipped tar: sorted names
// (a parent sorts before its children), epoch timestamps, uid/gid 0, no user
// or group names, PAX format, a gzip header without name or time.
func writeLayer(ctx context.Context, w io.Writer, entries map[string]*entry) error {
	gz, err := gzip.NewWriterLevel(w, GzipLevel)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := entries[n]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.link,
			Mode:     e.mode,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if e.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if e.typ == tar.TypeReg {
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if err := copyFile(tw, e); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// copyFile copies exactly e.size bytes of e.src; a file that shrank since it
// was listed is an error rather than a corrupt layer.
func copyFile(w io.Writer, e *entry) error {
	f, err := os.Open(e.src)
	if err != nil {
		return fmt.Errorf("image file %s: %w", e.from, err)
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, e.size); err != nil {
		return fmt.Errorf("image file %s: copying %s: %w", e.from, e.src, err)
	}
	return nil
}
