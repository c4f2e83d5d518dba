package lang

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// SourceTree is the workspace's file system as evaluation sees it: the
// directories that are walked and globbed (not ignored, not hidden, not
// mc-out) and the packages among them.
type SourceTree struct {
	root   string
	ignore []string // validated entries, see CheckIgnore
	// statSource stats a file IsSourceFile asks about; see StatSourcesWith.
	statSource func(path string) (fs.FileInfo, error)
}

// NewSourceTree returns the tree of the workspace at root (absolute) with
// the workspace's ignore entries (assumed valid: see CheckIgnore).
func NewSourceTree(root string, ignore []string) *SourceTree {
	cleaned := make([]string, 0, len(ignore))
	for _, e := range ignore {
		cleaned = append(cleaned, strings.TrimSuffix(e, "/"))
	}
	return &SourceTree{root: root, ignore: cleaned, statSource: os.Stat}
}

// StatSourcesWith makes IsSourceFile stat files with stat (os.Stat's
// contract): a build digests the source files it just asked about, and a
// stat that remembers its answer for the digest spares one stat(2) each.
// It must be called before the tree is used.
func (t *SourceTree) StatSourcesWith(stat func(path string) (fs.FileInfo, error)) {
	t.statSource = stat
}

// Root returns the absolute path of the workspace root.
func (t *SourceTree) Root() string { return t.root }

// CheckIgnore validates one entry of workspace(ignore = [...]). An entry
// without a slash is a name pattern (path.Match syntax) matched against the
// base name of every file and directory at any depth, like .gitignore; an
// entry with a slash is a workspace-relative path (a leading "/" is
// allowed), matched as a whole, with '*' not crossing slashes.
func CheckIgnore(entry string) error {
	e := strings.TrimSuffix(strings.TrimPrefix(entry, "/"), "/")
	if e == "" {
		return errors.New("empty entry")
	}
	for _, c := range strings.Split(e, "/") {
		if c == "" || c == "." || c == ".." {
			return errors.New(`must be a clean relative path (no empty, "." or ".." components)`)
		}
	}
	if _, err := path.Match(e, ""); err != nil {
		return fmt.Errorf("invalid pattern: %w", err)
	}
	return nil
}

// ignored reports whether the workspace-relative path rel (not the root)
// is ignored by its own name or path; callers check its parents.
func (t *SourceTree) ignored(rel string) bool { return Ignored(t.ignore, rel) }

// Ignored applies workspace(ignore = [...]) to the workspace-relative path
// rel by its own name or path (callers check its parents): an entry with a
// slash is a path from the root, one without matches a name at any depth.
func Ignored(ignore []string, rel string) bool {
	base := path.Base(rel)
	for _, e := range ignore {
		e = strings.TrimSuffix(e, "/")
		if anchored := strings.HasPrefix(e, "/") || strings.Contains(e, "/"); anchored {
			if ok, _ := path.Match(strings.TrimPrefix(e, "/"), rel); ok {
				return true
			}
			continue
		}
		if ok, _ := path.Match(e, base); ok {
			return true
		}
	}
	return false
}

// skipDir reports whether the walk must not enter the directory rel
// (workspace-relative, not the root): hidden directories, mc-out at the
// root, and ignored paths.
func (t *SourceTree) skipDir(rel string) bool {
	if strings.HasPrefix(path.Base(rel), ".") || rel == OutDir {
		return true
	}
	return t.ignored(rel)
}

// hiddenPath reports whether rel or one of its parents is skipped: the
// file is outside what the tree walks.
func (t *SourceTree) hiddenPath(rel string, isDir bool) bool {
	if rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		last := i == len(parts)-1
		if last && !isDir {
			return t.ignored(p)
		}
		if t.skipDir(p) {
			return true
		}
	}
	return false
}

func (t *SourceTree) abs(rel string) string {
	return filepath.Join(t.root, filepath.FromSlash(rel))
}

// IsPackage reports whether pkg is a package: a directory the tree walks
// that holds a BUILD.mc file.
func (t *SourceTree) IsPackage(pkg string) bool {
	if !validPkg(pkg) || t.hiddenPath(pkg, true) {
		return false
	}
	return isFile(t.abs(path.Join(pkg, BuildFile)))
}

// IsSourceFile reports whether pkg/name is a regular file (or a symlink to
// one) that is not ignored.
func (t *SourceTree) IsSourceFile(pkg, name string) bool {
	if !validPkg(pkg) || name == "" || strings.HasSuffix(name, "/") {
		return false
	}
	rel := path.Join(pkg, name)
	if rel != strings.TrimPrefix(pkg+"/"+name, "/") || rel == OutDir || strings.HasPrefix(rel, OutDir+"/") {
		return false // not clean, or inside mc-out
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		if t.ignored(strings.Join(parts[:i+1], "/")) {
			return false
		}
	}
	fi, err := t.statSource(t.abs(rel))
	return err == nil && fi.Mode().IsRegular()
}

// FindPackages returns every package at or below under ("" for the whole
// workspace), sorted. It does not enter hidden directories, mc-out or
// ignored paths, and does not follow symlinked directories. Directories
// are read in parallel.
func (t *SourceTree) FindPackages(ctx context.Context, under string) ([]string, error) {
	if !validPkg(under) {
		return nil, fmt.Errorf("finding packages: invalid package path %q", under)
	}
	if t.hiddenPath(under, true) {
		return nil, nil
	}
	if fi, err := os.Stat(t.abs(under)); err != nil {
		return nil, fmt.Errorf("finding packages under //%s: %w", under, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("finding packages under //%s: not a directory", under)
	}
	var (
		mu   sync.Mutex
		pkgs []string
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0)) // I/O bound: some slack over the cores
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := readDir(t.abs(rel))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && rel != under {
				return nil // removed while walking
			}
			return err
		}
		for _, e := range ents {
			name := e.Name()
			switch {
			case e.IsDir():
				child := join(rel, name)
				if t.skipDir(child) {
					continue
				}
				// Spread the walk over goroutines while there is room, and
				// carry on in this one otherwise.
				if !g.TryGo(func() error { return walk(child) }) {
					if err := walk(child); err != nil {
						return err
					}
				}
			case name == BuildFile:
				if e.Type().IsRegular() || (e.Type()&fs.ModeSymlink != 0 && isFile(t.abs(join(rel, name)))) {
					mu.Lock()
					pkgs = append(pkgs, rel)
					mu.Unlock()
				}
			}
		}
		return nil
	}
	g.Go(func() error { return walk(under) })
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("finding packages under //%s: %w", under, err)
	}
	sort.Strings(pkgs)
	return pkgs, nil
}

// readDir lists a directory without sorting it.
func readDir(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// validPkg reports whether pkg is a clean relative slash path ("" is the
// root package).
func validPkg(pkg string) bool {
	if pkg == "" {
		return true
	}
	if strings.HasPrefix(pkg, "/") || strings.HasSuffix(pkg, "/") {
		return false
	}
	for _, c := range strings.Split(pkg, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// isFile reports whether p is a regular file, following symlinks.
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

func sortStrings(s []string) { sort.Strings(s) }
