// Package outdir fills a workspace's mc-out/ with the outputs of the stages
// a build was asked for, as the build runs.
package outdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// Materializer places the outputs of the requested stages under mc-out/ as
// read-only hard links into the store (as Bazel's outputs are read-only):
// a copy would cost a new inode per output, which on many filesystems is
// the most expensive part of a cold build. Executables are read-only copies
// (a blob's mode is 0444). Like every blob, a linked file that is edited in
// place is caught by verify-on-read and dropped from the store. Files that
// already hold the right bytes are skipped (the stat cache knows them), and
// so are directory outputs that hold exactly their tree, so a null build
// writes nothing; what it places, it records in the stat cache (learn), so
// the next build does not read it back.
//
// It works while the build runs: sched.Options.Done hands it each requested
// stage's result as the stage finishes (its blobs are local by then), so
// mc-out/ fills up behind the build instead of after it.
type Materializer struct {
	store  *cas.Store
	stat   *cas.StatCache
	outDir string
	want   map[*graph.Action]bool
	queue  chan *cas.ActionResult
	wg     sync.WaitGroup

	mu     sync.Mutex
	errs   []error
	placed []placedFile
	// dirs are the directories made so far. They are made one at a time:
	// from several goroutines they queued on the parent directory's lock,
	// and the kernel spins while it waits, burning CPU the build needs.
	dirMu sync.Mutex
	dirs  map[string]bool
}

// materializeWorkers hide the latency of creating files (and of the stat
// calls that find them already right), which dominates for small outputs.
const materializeWorkers = 4

// New returns a Materializer placing the outputs of the actions in want
// under dir (the workspace's mc-out/), linking blobs of store and knowing
// files by stat.
func New(store *cas.Store, stat *cas.StatCache, dir string, want map[*graph.Action]bool) *Materializer {
	m := &Materializer{store: store, stat: stat, outDir: dir, want: want,
		queue: make(chan *cas.ActionResult, len(want)), dirs: map[string]bool{}}
	for range materializeWorkers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for res := range m.queue {
				for _, out := range res.Outputs {
					m.place(out)
				}
			}
		}()
	}
	return m
}

// Done is sched.Options.Done. The queue holds one entry per requested
// stage, each finishing once, so it never blocks the scheduler.
func (m *Materializer) Done(a *graph.Action, o *sched.Outcome) {
	if m.want[a] && o.Result != nil {
		m.queue <- o.Result
	}
}

// Wait lets the workers finish and returns what went wrong, each error
// naming its output. stagesRan says whether any stage ran (see learn).
func (m *Materializer) Wait(stagesRan bool) error {
	close(m.queue)
	m.wg.Wait()
	m.learn(stagesRan)
	return errors.Join(m.errs...)
}

func (m *Materializer) fail(err error) {
	m.mu.Lock()
	m.errs = append(m.errs, err)
	m.mu.Unlock()
}

func (m *Materializer) place(out cas.Output) {
	dst := filepath.Join(m.outDir, filepath.FromSlash(out.Path))
	if out.IsDir {
		t, err := m.store.GetTree(out.Digest)
		if err != nil {
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		if m.treeHolds(t, dst) {
			return
		}
		if err := m.makeDir(filepath.Dir(dst)); err != nil {
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		// Built aside and swapped in whole by the store.
		if err := m.store.MaterializeTree(out.Digest, dst, true); err != nil {
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		for _, e := range t.Entries {
			if e.Dir || e.Symlink != "" {
				continue
			}
			p := filepath.Join(dst, filepath.FromSlash(e.Path))
			m.placedNow(p, cas.Output{Path: path.Join(out.Path, e.Path), Digest: e.Digest, Size: e.Size, Exec: e.Exec})
		}
		return
	}
	if fi, err := m.stat.Digest(dst); err == nil && fi.Digest == out.Digest && fi.Exec == out.Exec {
		return
	}
	if err := m.makeDir(filepath.Dir(dst)); err != nil {
		m.fail(fmt.Errorf("%s: %w", out.Path, err))
		return
	}
	if err := m.store.Materialize(out.Digest, dst, out.Exec, true); err != nil {
		m.fail(fmt.Errorf("%s: %w", out.Path, err))
		return
	}
	m.placedNow(dst, out)
}

// makeDir makes dir (under mc-out/) once, refusing to go through a
// symbolic link on the way: mc-out/ is filled as the user running mc (root
// in CI), and a checkout can hold links there (a commit tracking
// mc-out/x -> /etc), through which outputs would land anywhere.
func (m *Materializer) makeDir(dir string) error {
	m.dirMu.Lock()
	defer m.dirMu.Unlock()
	if m.dirs[dir] {
		return nil
	}
	if err := NoSymlinks(m.outDir, dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.dirs[dir] = true
	return nil
}

// NoSymlinks returns an error naming the first existing component of dir,
// from root down (root included), that is a symbolic link. dir is root or
// below it.
func NoSymlinks(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not under %s", dir, root)
	}
	p := root
	parts := []string{}
	if rel != "." {
		parts = strings.Split(rel, string(filepath.Separator))
	}
	for i := 0; ; i++ {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // what is missing is made as a directory
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return fmt.Errorf("%s is a symbolic link (to %s): mc writes outputs only into real directories under mc-out/; remove it", p, target)
		}
		if i == len(parts) {
			return nil
		}
		p = filepath.Join(p, parts[i])
	}
}

// placedNow remembers the file just placed at p, to be recorded in the stat
// cache once the build is over (learn).
func (m *Materializer) placedNow(p string, out cas.Output) {
	if fi, err := os.Lstat(p); err == nil {
		m.mu.Lock()
		m.placed = append(m.placed, placedFile{path: p, out: out, fi: fi})
		m.mu.Unlock()
	}
}

// treeHolds reports whether the directory dst holds exactly the tree t:
// its files (known to the stat cache: a stat each), executable bits,
// symlinks and empty directories, and nothing else. A build that finds a
// directory output in place then leaves it alone, where rebuilding it
// would make every null build link each of its files again.
func (m *Materializer) treeHolds(t *cas.Tree, dst string) bool {
	// The names each directory of the tree must hold, "." for dst itself.
	want := map[string]map[string]bool{".": {}}
	var dirOf func(rel string) map[string]bool
	dirOf = func(rel string) map[string]bool {
		d, ok := want[rel]
		if !ok {
			d = map[string]bool{}
			want[rel] = d
			dirOf(path.Dir(rel))[path.Base(rel)] = true
		}
		return d
	}
	for _, e := range t.Entries {
		if e.Dir {
			dirOf(e.Path)
		} else {
			dirOf(path.Dir(e.Path))[path.Base(e.Path)] = true
		}
	}
	for rel, names := range want {
		dir := filepath.Join(dst, filepath.FromSlash(rel))
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() { // a symlink to a directory is not one
			return false
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != len(names) {
			return false
		}
		for _, e := range ents {
			if !names[e.Name()] {
				return false
			}
		}
	}
	for _, e := range t.Entries {
		p := filepath.Join(dst, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			return false
		}
		switch {
		case e.Dir:
			if !fi.IsDir() {
				return false
			}
		case e.Symlink != "":
			if target, err := os.Readlink(p); err != nil || target != e.Symlink {
				return false
			}
		default:
			if !fi.Mode().IsRegular() {
				return false
			}
			if got, err := m.stat.Digest(p); err != nil || got.Digest != e.Digest || got.Exec != e.Exec {
				return false
			}
		}
	}
	return true
}

// placedFile is a file the materializer placed, as it found it then.
type placedFile struct {
	path string
	out  cas.Output
	fi   os.FileInfo
}

// learn records the placed files in the stat cache without reading them
// back (cas.StatCache.Learn), so that the next build finds them right with
// a stat instead of reading every output. It runs once no stage is left
// to link a placed blob into its sandbox, which moves the file's ctime;
// when no stage ran (a build of cache hits) the files are as placed.
// Errors are ignored: a file not recorded is only read by the next build.
func (m *Materializer) learn(restat bool) {
	// A stat each, on the materializer's workers: it ends the build.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range materializeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(m.placed); i = int(next.Add(1)) - 1 {
				p := m.placed[i]
				_ = m.stat.Learn(p.path, cas.FileInfo{Digest: p.out.Digest, Size: p.out.Size, Exec: p.out.Exec}, p.fi, restat)
			}
		}()
	}
	wg.Wait()
}
