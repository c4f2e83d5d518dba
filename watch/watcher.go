package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configures a Watcher.
type Options struct {
	// Quiet and Max are the Debouncer's: a batch goes out once no event
	// came for Quiet, or Max after its first event.
	Quiet, Max time.Duration
	// SkipDir reports whether the workspace-relative directory rel is not
	// watched (the workspace's ignore list). mc-out and hidden
	// directories (.git) are never watched: a build reads nothing there.
	SkipDir func(rel string) bool
}

// Watcher reports changes to the files of a workspace, in batches. It
// watches every directory of the tree except skipped ones (inotify is not
// recursive) and adds directories as they appear.
type Watcher struct {
	root    string
	opts    Options
	fs      *fsnotify.Watcher
	batches chan Batch
	errs    chan error
	stop    chan struct{}
	done    chan struct{}
}

// New starts watching the tree at root (absolute). The caller must Close it.
func New(root string, opts Options) (*Watcher, error) {
	if opts.SkipDir == nil {
		opts.SkipDir = func(string) bool { return false }
	}
	// Large enough for an editor's burst and a checkout's many files
	// between two reads; an overflow is reported as Batch.Overflow.
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", root, err)
	}
	w := &Watcher{root: root, opts: opts, fs: fw, batches: make(chan Batch), errs: make(chan error, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := w.addTree(""); err != nil {
		fw.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Errors delivers errors of the file system watch that end it.
func (w *Watcher) Errors() <-chan error { return w.errs }

// Close stops watching.
func (w *Watcher) Close() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	err := w.fs.Close()
	<-w.done
	return err
}

// skip reports whether the directory rel is not watched.
func (w *Watcher) skip(rel string) bool {
	if rel == "mc-out" || strings.HasPrefix(rel, "mc-out/") {
		return true
	}
	for _, c := range strings.Split(rel, "/") {
		if strings.HasPrefix(c, ".") {
			return true
		}
	}
	return w.opts.SkipDir(rel)
}

// addTree watches the directory rel ("" for the root) and every directory
// below it, and returns the files it holds (for a directory that appeared
// with files already in it).
func (w *Watcher) addTree(rel string) ([]string, error) {
	var files []string
	start := filepath.Join(w.root, filepath.FromSlash(rel))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		r, rerr := filepath.Rel(w.root, p)
		if rerr != nil {
			return rerr
		}
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if err != nil {
			if p != start && errors.Is(err, fs.ErrNotExist) {
				return nil // gone while walking: its removal is an event of its own
			}
			return err
		}
		if !d.IsDir() {
			files = append(files, r)
			return nil
		}
		if r != "" && w.skip(r) {
			return filepath.SkipDir
		}
		if err := w.fs.Add(p); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("watching %s: the system's limit of inotify watches is reached (%s); raise it, e.g. sysctl fs.inotify.max_user_watches=1048576, or ignore directories in WORKSPACE.mc", p, watchLimit())
			}
			if errors.Is(err, fs.ErrNotExist) && p != start {
				return filepath.SkipDir
			}
			return fmt.Errorf("watching %s: %w", p, err)
		}
		return nil
	})
	return files, err
}

func watchLimit() string {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	if err != nil {
		return "fs.inotify.max_user_watches"
	}
	return "fs.inotify.max_user_watches = " + strings.TrimSpace(string(b))
}

func (w *Watcher) loop() {
	defer close(w.done)
	d := Debouncer{Quiet: w.opts.Quiet, Max: w.opts.Max}
	overflow := false
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var out chan Batch // non-nil when a batch is ready to send
	var ready Batch
	arm := func() {
		if !d.Pending() {
			return
		}
		timer.Reset(time.Until(d.Deadline()))
	}
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.event(&d, ev)
			if out == nil {
				arm()
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: whatever changed is unknown.
				overflow = true
				d.Add("", 0, time.Now())
				if out == nil {
					arm()
				}
				continue
			}
			select {
			case w.errs <- fmt.Errorf("watching %s: %w", w.root, err):
			default:
			}
			return
		case <-timer.C:
			if !d.Due(time.Now()) {
				arm()
				continue
			}
			ready = d.Take()
			ready.Overflow = overflow
			ready.Changes = dropEmpty(ready.Changes)
			overflow = false
			out = w.batches
		case out <- ready:
			// Events that came while the batch waited for its reader
			// make the next one.
			out = nil
			arm()
		}
	}
}

// dropEmpty removes the placeholder an overflow adds.
func dropEmpty(cs []Change) []Change {
	out := cs[:0]
	for _, c := range cs {
		if c.Path != "" {
			out = append(out, c)
		}
	}
	return out
}

// event adds one fsnotify event to d, watching new directories.
func (w *Watcher) event(d *Debouncer, ev fsnotify.Event) {
	now := time.Now()
	rel, err := filepath.Rel(w.root, ev.Name)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return
	}
	rel = filepath.ToSlash(rel)
	if dir, _ := splitDir(rel); dir != "" && w.skip(dir) {
		return
	}
	var op Op
	if ev.Has(fsnotify.Create) {
		op |= Created
	}
	if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Chmod) {
		op |= Written
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		op |= Removed
	}
	if op == 0 {
		return
	}
	if op&Created != 0 {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if w.skip(rel) {
				return
			}
			// A new directory: watch it, and count what it already holds
			// (a directory moved in, or files made before the watch was).
			files, err := w.addTree(rel)
			if err != nil {
				select {
				case w.errs <- err:
				default:
				}
			}
			for _, f := range files {
				d.Add(f, Created, now)
			}
			d.Add(rel, Created, now)
			return
		}
	}
	d.Add(rel, op, now)
}

// splitDir splits a slash path into its directory ("" at the top) and name.
func splitDir(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// Next waits for the next batch, or returns ctx's error, or the watch's.
func (w *Watcher) Next(ctx context.Context) (Batch, error) {
	select {
	case b := <-w.batches:
		return b, nil
	case err := <-w.errs:
		return Batch{}, err
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	}
}
