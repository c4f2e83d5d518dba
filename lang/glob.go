package lang

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Glob returns the files of package pkg that match an include pattern and
// no exclude pattern, as package-relative paths, sorted. Patterns are
// package-relative slash paths where '*' and '?' and [classes] match within
// one path component and a "**" component matches any number of
// directories. The walk never enters a sub-package (a directory holding
// BUILD.mc), hidden directories, mc-out or ignored paths, and does not
// follow symlinked directories; symlinks to files count as files.
func (t *SourceTree) Glob(pkg string, include, exclude []string) ([]string, error) {
	files, _, err := t.glob(pkg, include, exclude, false)
	return files, err
}

// DirStamp is the modification time of a directory whose entries a glob
// depended on. A directory's mtime changes whenever an entry is added,
// removed or renamed in it, so unchanged stamps mean an unchanged result.
type DirStamp struct {
	Dir     string // package-relative, "" for the package directory
	MtimeNs int64
}

// racyWindow is how old a directory's mtime must be before it is trusted: a
// change within the same timestamp tick as the read would go unnoticed
// (git's "racy git" problem).
const racyWindow = 2 * time.Second

// GlobStamped is Glob that also returns the stamps of the directories the
// result depends on (those listed, and those probed for a BUILD.mc). The
// stamps are nil when a directory changed too recently for its mtime to be
// trusted; the caller must then re-run the glob to validate its result.
func (t *SourceTree) GlobStamped(pkg string, include, exclude []string) ([]string, []DirStamp, error) {
	return t.glob(pkg, include, exclude, true)
}

// StampsUnchanged reports whether every directory still has its stamp.
func (t *SourceTree) StampsUnchanged(pkg string, stamps []DirStamp) bool {
	for _, s := range stamps {
		fi, err := os.Stat(t.abs(join(pkg, s.Dir)))
		if err != nil || !fi.IsDir() || fi.ModTime().UnixNano() != s.MtimeNs {
			return false
		}
	}
	return true
}

func (t *SourceTree) glob(pkg string, include, exclude []string, stamp bool) ([]string, []DirStamp, error) {
	if !validPkg(pkg) {
		return nil, nil, fmt.Errorf("invalid package path %q", pkg)
	}
	inc, err := parsePatterns(include)
	if err != nil {
		return nil, nil, err
	}
	exc, err := parsePatterns(exclude)
	if err != nil {
		return nil, nil, err
	}
	g := &globber{tree: t, pkg: pkg, dirs: map[string][]dirEntry{}, seen: map[walkKey]bool{}, found: map[string]bool{}}
	if stamp {
		g.stamps = map[string]int64{}
		// Taken before any directory is read: a stamp is trusted only if the
		// directory had not changed for racyWindow before that moment.
		g.start = time.Now()
	}
	for _, p := range inc {
		if err := g.walk("", p, 0); err != nil {
			return nil, nil, err
		}
	}
	out := make([]string, 0, len(g.found))
	for f := range g.found {
		parts := strings.Split(f, "/")
		excluded := false
		for _, p := range exc {
			if matchParts(p, parts) {
				excluded = true
				break
			}
		}
		if !excluded {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out, g.stampList(), nil
}

// parsePatterns splits and validates glob patterns.
func parsePatterns(pats []string) ([][]string, error) {
	out := make([][]string, 0, len(pats))
	for _, p := range pats {
		parts, err := parsePattern(p)
		if err != nil {
			return nil, fmt.Errorf("invalid glob pattern %q: %s", p, err)
		}
		out = append(out, parts)
	}
	return out, nil
}

func parsePattern(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("empty pattern")
	}
	if strings.HasPrefix(p, "/") {
		return nil, errors.New("patterns are relative to the package; remove the leading '/'")
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "":
			return nil, errors.New("empty path component")
		case c == "." || c == "..":
			return nil, errors.New(`"." and ".." are not allowed`)
		case c == "**":
			if len(parts) > 0 && parts[len(parts)-1] == "**" {
				continue // "**/**" is "**"
			}
		case strings.Contains(c, "**"):
			return nil, errors.New(`"**" must be a whole path component`)
		default:
			if _, err := path.Match(c, ""); err != nil {
				return nil, errors.New("syntax error in pattern")
			}
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// matchParts matches a split path against a split pattern.
func matchParts(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return len(parts) > 0 // "**" at the end matches one or more components (a file)
			}
			for i := 0; i <= len(parts); i++ {
				if matchParts(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}

type dirEntry struct {
	name  string
	isDir bool // a real directory (symlinked directories are not followed)
	file  bool // a regular file or a symlink to one
}

type walkKey struct {
	dir string
	pat *string // identity of the pattern slice
	i   int
}

type globber struct {
	tree  *SourceTree
	pkg   string
	dirs  map[string][]dirEntry // listings, by package-relative dir
	seen  map[walkKey]bool
	found map[string]bool

	stamps map[string]int64 // nil: not stamping
	start  time.Time
	racy   bool // a directory changed too recently
}

// stampDir records the mtime of a package-relative directory before its
// entries are looked at, so that a change during the read shows later.
func (g *globber) stampDir(dir string) {
	if g.stamps == nil {
		return
	}
	if _, ok := g.stamps[dir]; ok {
		return
	}
	fi, err := os.Stat(g.tree.abs(join(g.pkg, dir)))
	if err != nil {
		g.racy = true // vanishing under our feet: do not trust this result
		return
	}
	mt := fi.ModTime()
	if g.start.Sub(mt) < racyWindow {
		g.racy = true
	}
	g.stamps[dir] = mt.UnixNano()
}

func (g *globber) stampList() []DirStamp {
	if g.stamps == nil || g.racy {
		return nil
	}
	out := make([]DirStamp, 0, len(g.stamps))
	for d, mt := range g.stamps {
		out = append(out, DirStamp{Dir: d, MtimeNs: mt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out
}

// walk matches pattern p from component i in the package-relative dir.
func (g *globber) walk(dir string, p []string, i int) error {
	k := walkKey{dir, &p[0], i}
	if g.seen[k] {
		return nil
	}
	g.seen[k] = true
	ents, err := g.list(dir)
	if err != nil {
		return err
	}
	c, last := p[i], i == len(p)-1
	if c == "**" {
		if !last {
			if err := g.walk(dir, p, i+1); err != nil { // zero directories
				return err
			}
		}
		for _, e := range ents {
			rel := join(dir, e.name)
			if last && e.file {
				g.found[rel] = true
			}
			if e.isDir && g.enter(rel) {
				if err := g.walk(rel, p, i); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range ents {
		if ok, _ := path.Match(c, e.name); !ok {
			continue
		}
		rel := join(dir, e.name)
		if last {
			if e.file {
				g.found[rel] = true
			}
		} else if e.isDir && g.enter(rel) {
			if err := g.walk(rel, p, i+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// enter reports whether the walk may descend into the package-relative dir.
func (g *globber) enter(dir string) bool {
	ws := join(g.pkg, dir)
	if g.tree.skipDir(ws) {
		return false
	}
	g.stampDir(dir) // a BUILD.mc appearing in dir changes its mtime
	return !isFile(g.tree.abs(path.Join(ws, BuildFile)))
}

// list reads a package-relative directory once per glob call, leaving out
// ignored files.
func (g *globber) list(dir string) ([]dirEntry, error) {
	if ents, ok := g.dirs[dir]; ok {
		return ents, nil
	}
	ws := join(g.pkg, dir)
	g.stampDir(dir)
	des, err := readDir(g.tree.abs(ws))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && dir != "" {
			return nil, nil // removed while walking
		}
		return nil, fmt.Errorf("glob: reading %s: %w", displayDir(ws), err)
	}
	ents := make([]dirEntry, 0, len(des))
	for _, de := range des {
		rel := join(ws, de.Name())
		e := dirEntry{name: de.Name()}
		switch typ := de.Type(); {
		case typ.IsDir():
			e.isDir = true
		case typ.IsRegular():
			e.file = true
		case typ&fs.ModeSymlink != 0:
			e.file = isFile(g.tree.abs(rel))
		}
		if (e.file && g.tree.ignored(rel)) || (!e.file && !e.isDir) {
			continue
		}
		ents = append(ents, e)
	}
	g.dirs[dir] = ents
	return ents, nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func displayDir(ws string) string {
	if ws == "" {
		return "the workspace root"
	}
	return ws
}
