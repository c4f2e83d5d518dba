package cas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// TreeEntry is one entry of a directory output. Exactly one of Digest (a
// regular file), Symlink or Dir is set.
type TreeEntry struct {
	// Path is relative to the tree's root, slash-separated and clean.
	Path   string `json:"path"`
	Digest Digest `json:"digest,omitzero"`
	Size   int64  `json:"size,omitzero"`
	Exec   bool   `json:"exec,omitzero"`
	// Symlink is the target of a symbolic link: relative, and resolving
	// inside the tree (a dangling target is allowed, an escaping one not).
	Symlink string `json:"symlink,omitzero"`
	// Dir marks an empty directory; directories holding entries are implied.
	Dir bool `json:"dir,omitzero"`
}

// Tree is a directory output: its entries sorted by Path. Its encoding is
// canonical, so equal trees have equal digests.
type Tree struct {
	Entries []TreeEntry `json:"entries"`
}

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP limit does.
const maxSymlinkHops = 40

// Encode returns the canonical JSON encoding of t: entries sorted by Path,
// fields in a fixed order, zero fields omitted. t is not modified.
func (t *Tree) Encode() []byte {
	c := Tree{Entries: slices.Clone(t.Entries)}
	if c.Entries == nil {
		c.Entries = []TreeEntry{}
	}
	slices.SortFunc(c.Entries, func(a, b TreeEntry) int { return strings.Compare(a.Path, b.Path) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// Encoding strings, integers, booleans and Digest (whose MarshalText
	// cannot fail) cannot fail either.
	_ = enc.Encode(c)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// DecodeTree parses and validates an encoded tree: the canonical encoding,
// clean relative paths, no duplicates, nothing below a file or a symlink, and
// symlinks that stay inside the tree.
func DecodeTree(b []byte) (*Tree, error) {
	var t Tree
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("cas: decode tree: %w", err)
	}
	if dec.More() {
		return nil, errors.New("cas: decode tree: trailing data")
	}
	slices.SortFunc(t.Entries, func(a, b TreeEntry) int { return strings.Compare(a.Path, b.Path) })
	if err := t.validate(false); err != nil {
		return nil, fmt.Errorf("cas: decode tree: %w", err)
	}
	// Only the canonical form is accepted, so that a tree's digest is always
	// the digest of its Encode.
	if !bytes.Equal(t.Encode(), b) {
		return nil, errors.New("cas: decode tree: not in canonical form")
	}
	return &t, nil
}

// validate checks the sorted entries of t. With unhashed, entries with
// neither symlink nor dir are files whose digest is not known yet.
func (t *Tree) validate(unhashed bool) error {
	kinds := make(map[string]*TreeEntry, len(t.Entries))
	for i := range t.Entries {
		e := &t.Entries[i]
		if err := validPath(e.Path); err != nil {
			return err
		}
		if _, dup := kinds[e.Path]; dup {
			return fmt.Errorf("duplicate entry %q", e.Path)
		}
		kinds[e.Path] = e
		n := 0
		if !e.Digest.IsZero() || (unhashed && e.Symlink == "" && !e.Dir) {
			n++
		}
		if e.Symlink != "" {
			n++
		}
		if e.Dir {
			n++
		}
		if n != 1 {
			return fmt.Errorf("entry %q: exactly one of digest, symlink and dir must be set", e.Path)
		}
		if (e.Symlink != "" || e.Dir) && (e.Size != 0 || e.Exec) {
			return fmt.Errorf("entry %q: size or exec set on a non-file", e.Path)
		}
		if e.Size < 0 {
			return fmt.Errorf("entry %q: negative size", e.Path)
		}
	}
	for i := range t.Entries {
		e := &t.Entries[i]
		// Every ancestor must be an implied directory, not a file, a symlink
		// or a directory that claims to be empty.
		for p := path.Dir(e.Path); p != "."; p = path.Dir(p) {
			if a, ok := kinds[p]; ok {
				return fmt.Errorf("entry %q is below %q, which is not a non-empty directory", e.Path, a.Path)
			}
		}
		if e.Symlink != "" {
			if err := checkSymlink(kinds, e.Path, e.Symlink); err != nil {
				return err
			}
		}
	}
	return nil
}

// validPath accepts clean, relative, slash-separated UTF-8 paths.
func validPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty path")
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not UTF-8", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q holds a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q goes above its root", p)
	}
	return nil
}

// checkSymlink fails if the symlink at link, pointing at target, is absolute
// or resolves (following the tree's other symlinks) outside the tree.
func checkSymlink(kinds map[string]*TreeEntry, link, target string) error {
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink %q -> %q: absolute target", link, target)
	}
	if strings.ContainsRune(target, 0) || !utf8.ValidString(target) {
		return fmt.Errorf("symlink %q: bad target %q", link, target)
	}
	hops := 0
	if _, err := resolve(kinds, splitDir(path.Dir(link)), target, &hops); err != nil {
		return fmt.Errorf("symlink %q -> %q: %w", link, target, err)
	}
	return nil
}

// resolve walks target from the directory cur (components from the root),
// substituting the tree's symlinks as the kernel would, and fails if the walk
// ever goes above the root.
func resolve(kinds map[string]*TreeEntry, cur []string, target string, hops *int) ([]string, error) {
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return nil, errors.New("target leaves the tree")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := append(slices.Clip(cur), c)
		e, ok := kinds[strings.Join(next, "/")]
		if !ok || e.Symlink == "" {
			cur = next
			continue
		}
		if *hops++; *hops > maxSymlinkHops {
			return nil, errors.New("too many levels of symbolic links")
		}
		var err error
		if cur, err = resolve(kinds, cur, e.Symlink, hops); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// splitDir splits a clean relative directory into components ("." is none).
func splitDir(d string) []string {
	if d == "." {
		return nil
	}
	return strings.Split(d, "/")
}
