package sandbox

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/mc-build/mc/sched"
)

// poolKey is what a worker is started with and a stage must match: its
// network namespace and its cache mounts, bound at start (a stage sees
// only the cache mounts it names, as in a sandbox of its own).
type poolKey struct {
	network bool
	mounts  string // sorted cache names, joined by "\x00"
}

func keyOf(job *sched.Job) poolKey {
	k := poolKey{network: job.Network}
	if len(job.CacheMounts) > 0 {
		names := make([]string, 0, len(job.CacheMounts))
		seen := map[string]bool{}
		for _, n := range job.CacheMounts {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		sort.Strings(names)
		k.mounts = strings.Join(names, "\x00")
	}
	return k
}

func (k poolKey) mountNames() []string {
	if k.mounts == "" {
		return nil
	}
	return strings.Split(k.mounts, "\x00")
}

// errNoWorkers means stages run each in a sandbox of their own: workers
// cannot start here, or the executor is closed.
var errNoWorkers = errors.New("no sandbox workers")

// workerPool holds the idle workers of an executor. Workers are started on
// demand, with one spare beside each start while fewer than Jobs exist; at
// most as many idle ones per key are kept as stages have run at once or
// Jobs allows, the least recently used going first.
type workerPool struct {
	l *Local

	mu        sync.Mutex
	idle      []*worker // least recently used first
	all       map[*worker]bool
	active    int // stages running on workers (or about to)
	maxActive int
	started   bool // a worker has started once: they work here
	disabled  bool // they do not
	closed    bool

	// Spare workers being started (spare): how many per key, their
	// goroutines, and the cancellation that close uses to abandon them.
	spares      map[poolKey]int
	spareWG     sync.WaitGroup
	spareCtx    context.Context
	spareCancel context.CancelFunc
}

func newWorkerPool(l *Local) *workerPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &workerPool{l: l, all: map[*worker]bool{}, spares: map[poolKey]int{}, spareCtx: ctx, spareCancel: cancel}
}

// begin and end bracket a stage run on the pool, to size it.
func (p *workerPool) begin() {
	p.mu.Lock()
	p.active++
	p.maxActive = max(p.maxActive, p.active)
	p.mu.Unlock()
}

func (p *workerPool) end() {
	p.mu.Lock()
	p.active--
	p.mu.Unlock()
}

// acquire returns an idle worker for job, or starts one. covers are the
// host paths job needs hidden besides the root's (its workspace). An error
// other than errNoWorkers is a worker failing to start.
func (p *workerPool) acquire(job *sched.Job, covers []string) (*worker, error) {
	key := keyOf(job)
	var dead []*worker
	defer func() {
		for _, w := range dead {
			w.discard()
		}
	}()
	p.mu.Lock()
	if p.closed || p.disabled {
		p.mu.Unlock()
		return nil, errNoWorkers
	}
	for i := len(p.idle) - 1; i >= 0; i-- {
		w := p.idle[i]
		if w.key != key || !w.canHide(covers) {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		if !w.alive() || !w.mountsCurrent() {
			// Killed from outside since it last ran, or its cache mount
			// directory was replaced: the worker is too.
			delete(p.all, w)
			dead = append(dead, w)
			continue
		}
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()

	// A new worker hides every workspace seen so far, so that it can serve
	// any stage of key.
	w, err := p.l.startWorker(context.Background(), key, p.l.knownCovers(covers))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if !p.started {
			p.disabled = true
		}
		return nil, err
	}
	if p.closed {
		dead = append(dead, w)
		return nil, errNoWorkers
	}
	p.started = true
	p.all[w] = true
	p.spareLocked(key, covers)
	return w, nil
}

// spareLocked starts, in the background, one more worker of key when
// fewer than the executor's Jobs exist or are starting: a stage that had
// to start its worker is likely followed by others of its kind, which
// then find one idle instead of waiting 60-100 ms for bubblewrap and the
// runner (the second stage of a build, and every stage once more run at
// once). A spare that fails to start is dropped: the next stage starts
// its own and reports why. close abandons one still starting.
func (p *workerPool) spareLocked(key poolKey, covers []string) {
	n := p.spares[key]
	for w := range p.all {
		if w.key == key {
			n++
		}
	}
	if p.closed || n >= p.l.opts.Jobs {
		return
	}
	p.spares[key]++
	covers = p.l.knownCovers(covers)
	p.spareWG.Add(1)
	go func() {
		defer p.spareWG.Done()
		w, err := p.l.startWorker(p.spareCtx, key, covers)
		p.mu.Lock()
		p.spares[key]--
		if err == nil && !p.closed {
			p.all[w] = true
			p.idle = append(p.idle, w)
			w = nil
		}
		p.mu.Unlock()
		if err == nil && w != nil {
			w.discard()
		}
	}()
}

// release gives w back after a stage; a worker that is not reusable (or
// one too many) is discarded.
func (p *workerPool) release(w *worker, reusable bool) {
	p.mu.Lock()
	var drop []*worker
	if !reusable || p.closed || !w.alive() {
		drop = append(drop, w)
	} else {
		p.idle = append(p.idle, w)
		same := 0
		for i := len(p.idle) - 1; i >= 0; i-- {
			if p.idle[i].key != w.key {
				continue
			}
			if same++; same > max(p.maxActive, p.l.opts.Jobs, 1) {
				drop = append(drop, p.idle[i])
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
			}
		}
	}
	for _, d := range drop {
		delete(p.all, d)
	}
	p.mu.Unlock()
	for _, d := range drop {
		d.discard()
	}
}

// close ends every worker, idle or not, and waits for them to be gone.
func (p *workerPool) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.spareCancel()
	p.spareWG.Wait()
	p.mu.Lock()
	ws := make([]*worker, 0, len(p.all))
	for w := range p.all {
		ws = append(ws, w)
	}
	p.all = map[*worker]bool{}
	p.idle = nil
	p.mu.Unlock()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
