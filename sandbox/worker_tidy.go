package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mc-build/mc/sched"
	"golang.org/x/sys/unix"
)

// A worker's workspace is readied for each stage in two steps. After a
// stage, clear removes every file and every directory the stage made, but
// keeps the directories it was given (its package, the parents of its
// inputs and outputs), emptied: the worker then knows its workspace's
// exact shape without reading it. Before the next stage, reshape turns
// that shape into the one the stage needs, renaming a directory that is
// not needed to one that is missing (another package's src/ and out/
// become this one's), and keeping what is left over in a pool for later
// stages rather than removing it. Making and removing directories on a
// disk filesystem costs as much as a small stage's own work; most stages
// need the same few shapes.

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
func keptDirs(job *sched.Job) map[string]bool {
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
	if w.dirBuf == nil {
		w.dirBuf = make([]byte, direntBuf)
	}
	shape, err := w.clearDir(w.sb.ws, keep)
	if err != nil {
		return err
	}
	if _, err := w.clearDir(w.sb.home, nil); err != nil {
		return err
	}
	if _, err := w.clearDir(w.sb.tmp, w.tmpKeep); err != nil {
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

// clearDir clears dir as clearDir does, reading directories with the
// worker's buffer.
func (w *worker) clearDir(dir string, keep map[string]bool) (dirTree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return clearFD(fd, dir, "", keep, w.dirBuf)
}

// reshape makes the workspace, which clear left empty, hold exactly the
// directories of keep.
func (w *worker) reshape(keep map[string]bool) error {
	if w.shape == nil {
		return errors.New("the worker's workspace was not cleared")
	}
	want := treeOf(keep)
	err := w.pool.reshapeDir(w.sb.ws, w.shape, want)
	w.shape = nil
	if err != nil {
		return err
	}
	w.shape = want
	return nil
}

// reshapeDir turns the directory dir, holding the empty directories have,
// into one holding those of want. A missing directory is, by preference,
// one that is not needed renamed (another package's src/ and out/ become
// this one's), else one from the pool, else made; what is left over goes
// to the pool.
func (p *dirPool) reshapeDir(dir string, have, want dirTree) error {
	var spare []string
	for _, name := range sortedNames(have) {
		if sub, ok := want[name]; ok {
			if err := p.reshapeDir(filepath.Join(dir, name), have[name], sub); err != nil {
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
		dst := filepath.Join(dir, name)
		var from dirTree
		if i := closest(spare, have, want[name]); i >= 0 {
			s := spare[i]
			spare = append(spare[:i], spare[i+1:]...)
			if err := os.Rename(filepath.Join(dir, s), dst); err != nil {
				return err
			}
			from = have[s]
		} else if t, ok, err := p.take(dst, want[name]); err != nil {
			return err
		} else if ok {
			from = t
		} else if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		} else if p != nil && p.own != nil {
			if err := p.own(dst); err != nil {
				return err
			}
		}
		if err := p.reshapeDir(dst, from, want[name]); err != nil {
			return err
		}
	}
	for _, s := range spare {
		if err := p.put(filepath.Join(dir, s), have[s]); err != nil {
			return err
		}
	}
	return nil
}

// closest returns the index of the directory of names (all in have) whose
// subdirectories are most like want's, -1 when names is empty.
func closest(names []string, have dirTree, want dirTree) int {
	best, score := -1, -1
	for i, n := range names {
		if s := likeness(have[n], want); s > score {
			best, score = i, s
		}
	}
	return best
}

// likeness counts the subdirectories a and b share, at any depth.
func likeness(a, b dirTree) int {
	n := 0
	for name, sub := range a {
		if bsub, ok := b[name]; ok {
			n += 1 + likeness(sub, bsub)
		}
	}
	return n
}

// A dirPool keeps empty directory trees a worker's stages needed before,
// next to its workspace where no stage sees them, for later stages: on a
// disk filesystem making a directory costs an inode allocation, and
// removing one frees an inode, which (on ext4 without a journal) makes the
// next allocations in that block group slower for minutes; renaming a
// directory does neither.
type dirPool struct {
	dir string // "": no pool, directories not needed are removed
	// own, if set, gives a directory made for stages to the stages' user.
	own   func(string) error
	made  bool // dir exists
	trees []pooledTree
	next  int // the name of the next tree put in
}

type pooledTree struct {
	name string
	tree dirTree
}

// maxPooled bounds the trees a pool keeps; more are removed.
const maxPooled = 64

// put moves the empty directory tree t at src into the pool (or removes
// it when the pool is full or there is none).
func (p *dirPool) put(src string, t dirTree) error {
	if p == nil || p.dir == "" || len(p.trees) >= maxPooled {
		return removeShape(src, t)
	}
	if !p.made {
		if err := os.Mkdir(p.dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		p.made = true
	}
	name := strconv.Itoa(p.next)
	if err := os.Rename(src, filepath.Join(p.dir, name)); err != nil {
		return err
	}
	p.next++
	p.trees = append(p.trees, pooledTree{name: name, tree: t})
	return nil
}

// take renames the pooled tree most like want to dst and returns it; ok
// is false when the pool is empty.
func (p *dirPool) take(dst string, want dirTree) (t dirTree, ok bool, err error) {
	if p == nil || len(p.trees) == 0 {
		return nil, false, nil
	}
	best, score := 0, -1
	// The most recently pooled first, among equals: its inode is warm.
	for i := len(p.trees) - 1; i >= 0; i-- {
		if s := likeness(p.trees[i].tree, want); s > score {
			best, score = i, s
		}
	}
	pt := p.trees[best]
	if err := os.Rename(filepath.Join(p.dir, pt.name), dst); err != nil {
		return nil, false, err
	}
	p.trees = append(p.trees[:best], p.trees[best+1:]...)
	return pt.tree, true, nil
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
	return clearFD(fd, dir, rel, keep, make([]byte, direntBuf))
}

// clearFD is clearDir on the directory open as fd. Subdirectories are
// opened relative to it, which spares a lookup of the whole path each.
func clearFD(fd int, dir, rel string, keep map[string]bool, buf []byte) (dirTree, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	if st.Mode&0o7777 != 0o755 {
		if err := unix.Fchmod(fd, 0o755); err != nil {
			return nil, fmt.Errorf("clearing %s: %w", dir, err)
		}
	}
	ents, err := readDirentsBuf(fd, buf)
	if err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	kept := dirTree{}
	for _, e := range ents {
		sub := e.name
		if rel != "" {
			sub = rel + "/" + e.name
		}
		switch {
		case e.typ == unix.DT_DIR && keep[sub]:
			p := filepath.Join(dir, e.name)
			subfd, err := unix.Openat(fd, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("clearing %s: %w", p, err)
			}
			t, err := clearFD(subfd, p, sub, keep, buf)
			unix.Close(subfd)
			if err != nil {
				return nil, err
			}
			kept[e.name] = t
		case e.typ != unix.DT_DIR && e.typ != unix.DT_UNKNOWN && unix.Unlinkat(fd, e.name, 0) == nil:
		default:
			if err := removeAll(filepath.Join(dir, e.name)); err != nil {
				return nil, err
			}
		}
	}
	return kept, nil
}

// direntBuf is the size of the buffer directories are read with.
const direntBuf = 8 << 10

type dirent struct {
	name string
	typ  uint8
}

// readDirents lists the open directory fd, without the Go runtime's
// poller and per-entry allocations of os.File: clearing runs several times
// per stage.
func readDirents(fd int) ([]dirent, error) {
	return readDirentsBuf(fd, make([]byte, direntBuf))
}

// readDirentsBuf is readDirents reading with buf.
func readDirentsBuf(fd int, buf []byte) ([]dirent, error) {
	var ents []dirent
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
