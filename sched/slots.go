package sched

import (
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

// slots are the build's job slots (-j). A slot that frees goes to the
// waiting action with the longest chain of work still to do from it to the
// end of the build (its priority, see chains), as ninja orders its ready
// queue. Handed out in the order actions became ready, tests and vets took
// the slots the next compile on the chain to a binary needed, and the build
// waited on that chain, or on the link, at its end (bench/selfbuild.sh).
// Ties go to the action that waited longest.
type slots struct {
	mu    sync.Mutex
	free  int
	queue waiters
	seq   uint64
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot for an action of priority prio (higher first).
func (s *slots) acquire(ctx context.Context, prio time.Duration) error {
	s.mu.Lock()
	if s.free > 0 && len(s.queue) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	w := &waiter{prio: prio, seq: s.seq, granted: make(chan struct{})}
	s.seq++
	heap.Push(&s.queue, w)
	s.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		if w.index >= 0 {
			heap.Remove(&s.queue, w.index)
			s.mu.Unlock()
			return ctx.Err()
		}
		s.mu.Unlock()
		s.release() // granted as the context ended: pass it on
		return ctx.Err()
	}
}

// release frees a slot: to the first waiter, or back to the pool.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		close(heap.Pop(&s.queue).(*waiter).granted)
		return
	}
	s.free++
}

type waiter struct {
	prio    time.Duration
	seq     uint64
	index   int // in the heap; -1 once granted
	granted chan struct{}
}

// waiters is a heap: highest priority, then earliest, first.
type waiters []*waiter

func (q waiters) Len() int { return len(q) }
func (q waiters) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio > q[j].prio
	}
	return q[i].seq < q[j].seq
}
func (q waiters) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waiters) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}

// chains is, for each action of ag, the run time of the longest chain of
// actions from it to the end of the build: its own estimated time plus that
// of its longest chain of dependents in ag. An action's time is its label's
// last run time (est), or, for a label never run, the median of the known
// ones (1 s when none is known: then the longest chain is the one with the
// most actions).
func chains(ag *graph.ActionGraph, est map[string]time.Duration) map[*graph.Action]time.Duration {
	guess := time.Second
	if len(est) > 0 {
		ds := make([]time.Duration, 0, len(est))
		for _, d := range est {
			ds = append(ds, d)
		}
		slices.Sort(ds)
		guess = max(ds[len(ds)/2], time.Millisecond)
	}
	in := make(map[*graph.Action]bool, len(ag.Actions))
	for _, a := range ag.Actions {
		in[a] = true
	}
	c := make(map[*graph.Action]time.Duration, len(ag.Actions))
	// ag.Actions is in topological order: dependents come after.
	for i := len(ag.Actions) - 1; i >= 0; i-- {
		a := ag.Actions[i]
		var after time.Duration
		for _, r := range a.Rdeps {
			if in[r] {
				after = max(after, c[r])
			}
		}
		own, ok := est[a.Label().String()]
		if !ok {
			own = guess
		}
		c[a] = max(own, time.Millisecond) + after
	}
	return c
}

// first is the priority of the first waiter, or -1 when none waits.
func (s *slots) first() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return -1
	}
	return s.queue[0].prio
}

// priority is a's claim to a job slot: the chains over the last run times
// of the labels in the action cache. Computed at the first need: a build
// that runs nothing (a null build) decodes no result for it.
func (s *scheduler) priority(a *graph.Action) time.Duration {
	s.prioOnce.Do(func() {
		est := map[string]time.Duration{}
		for _, e := range s.preload {
			if r, err := cas.DecodeResult(e.Result); err == nil && r.Duration > 0 {
				est[r.Label] = r.Duration
			}
		}
		s.prio = chains(s.ag, est)
	})
	return s.prio[a]
}
