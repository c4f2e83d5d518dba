package exec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// A worker's workspace is readied for each stage in two steps. After a
// stage, clear removes every file and every directory the stage made, but
// keeps the directories it was given (its package, the parents of its
// inputs and outputs), emptied: the worker then knows its workspace's
// exact shape without reading it. Before the next stage, reshape turns
// that shape into the one the stage needs, renaming a directory that is
// not needed to one that is missing (another package's src/ and out/
// become this one's) and making or removing only what is left over.
// Making and removing directories on a disk filesystem costs as much as a
// small stage's own work; most stages need the same few shapes.

// dirTree is a tree of directories: name -> subdirectories.
type dirTree map[string]dirTree

// treeOf builds the tree of a set of slash-separated relative paths
// (every ancestor of a path must be in the set too).
func treeOf(dirs map[string]bool) dirTree {
	root := dirTree{}
	for d := range dirs {
		t := root
		for _, name := range strings.Split(d, "/") {
			sub, ok := t[name]
			if !ok {
				sub = dirTree{}
				t[name] = sub
			}
			t = sub
		}
	}
	return root
}

// keptDirs are the workspace directories job's sandbox has before its
// inputs are placed: the package, the parents of inputs and outputs, and
// their ancestors. A directory input itself is not one: it is placed
// whole.
func keptDirs(job *Job) map[string]bool {
	keep := map[string]bool{}
	add := func(d string) {
		for d != "." && d != "" && d != "/" && !keep[d] {
			keep[d] = true
			d = path.Dir(d)
		}
	}
	add(job.Pkg)
	for _, in := range job.Inputs {
		add(path.Dir(in.Path))
	}
	for _, o := range job.Outs {
		add(path.Dir(strings.TrimSuffix(o, "/")))
	}
	for _, in := range job.Inputs {
		if in.IsTree {
			delete(keep, in.Path)
		}
	}
	return keep
}

// clear empties the worker after a stage: home and /tmp (but for the
// mount points there), the log file if there is one, and the workspace
// but for the empty directories of keep, whose tree it records.
func (w *worker) clear(keep map[string]bool, logFile bool) error {
	w.shape = nil
	shape, err := clearDir(w.sb.ws, "", keep)
	if err != nil {
		return err
	}
	if _, err := clearDir(w.sb.home, "", nil); err != nil {
		return err
	}
	if _, err := clearDir(w.sb.tmp, "", w.tmpKeep); err != nil {
		return err
	}
	if logFile {
		if err := os.Remove(w.sb.log); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	w.shape = shape
	return nil
}

// reshape makes the workspace, which clear left empty, hold exactly the
// directories of keep.
func (w *worker) reshape(keep map[string]bool) error {
	if w.shape == nil {
		return errors.New("the worker's workspace was not cleared")
	}
	want := treeOf(keep)
	err := reshapeDir(w.sb.ws, w.shape, want)
	w.shape = nil
	if err != nil {
		return err
	}
	w.shape = want
	return nil
}

// reshapeDir turns the directory dir, holding the empty directories have,
// into one holding those of want.
func reshapeDir(dir string, have, want dirTree) error {
	var spare []string
	for _, name := range sortedNames(have) {
		if sub, ok := want[name]; ok {
			if err := reshapeDir(filepath.Join(dir, name), have[name], sub); err != nil {
				return err
			}
		} else {
			spare = append(spare, name)
		}
	}
	for _, name := range sortedNames(want) {
		if _, ok := have[name]; ok {
			continue
		}
		p := filepath.Join(dir, name)
		var from dirTree
		if len(spare) > 0 {
			s := spare[0]
			spare = spare[1:]
			if err := os.Rename(filepath.Join(dir, s), p); err != nil {
				return err
			}
			from = have[s]
		} else if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := reshapeDir(p, from, want[name]); err != nil {
			return err
		}
	}
	for _, s := range spare {
		if err := removeShape(filepath.Join(dir, s), have[s]); err != nil {
			return err
		}
	}
	return nil
}

// removeShape removes dir, which holds the empty directories t.
func removeShape(dir string, t dirTree) error {
	for name, sub := range t {
		if err := removeShape(filepath.Join(dir, name), sub); err != nil {
			return err
		}
	}
	if err := unix.Rmdir(dir); err != nil {
		return removeAll(dir)
	}
	return nil
}

func sortedNames(t dirTree) []string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// clearDir empties the directory dir (whose path relative to the top is
// rel, slash-separated) but for the directories in keep, which it clears
// in turn; it returns the tree of those. dir itself stays, as an empty
// directory of mode 0755: the top ones are mount points in the worker's
// sandbox, which would keep seeing a removed directory.
func clearDir(dir, rel string, keep map[string]bool) (dirTree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	if st.Mode&0o7777 != 0o755 {
		if err := unix.Fchmod(fd, 0o755); err != nil {
			return nil, fmt.Errorf("clearing %s: %w", dir, err)
		}
	}
	ents, err := readDirents(fd)
	if err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	kept := dirTree{}
	for _, e := range ents {
		sub := e.name
		if rel != "" {
			sub = rel + "/" + e.name
		}
		p := filepath.Join(dir, e.name)
		switch {
		case e.typ == unix.DT_DIR && keep[sub]:
			t, err := clearDir(p, sub, keep)
			if err != nil {
				return nil, err
			}
			kept[e.name] = t
		case e.typ != unix.DT_DIR && e.typ != unix.DT_UNKNOWN && unix.Unlinkat(fd, e.name, 0) == nil:
		default:
			if err := removeAll(p); err != nil {
				return nil, err
			}
		}
	}
	return kept, nil
}

type dirent struct {
	name string
	typ  uint8
}

// readDirents lists the open directory fd, without the Go runtime's
// poller and per-entry allocations of os.File: clearing runs several times
// per stage.
func readDirents(fd int) ([]dirent, error) {
	var ents []dirent
	buf := make([]byte, 8<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return ents, nil
		}
		b := buf[:n]
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, errors.New("malformed directory entry")
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				ents = append(ents, dirent{name: s, typ: b[18]})
			}
			b = b[reclen:]
		}
	}
}

// dirsIn lists the directories below root, relative and slash-separated.
func dirsIn(root string) (map[string]bool, error) {
	dirs := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			dirs[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return dirs, err
}
