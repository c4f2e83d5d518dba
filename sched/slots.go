package sched

import (
	"container/heap"
	"context"
	"sync"

	"github.com/mc-build/mc/graph"
)

// slots are the build's job slots (-j). A slot that frees goes to the
// waiting action with the most stages still to run after it: the chain to
// the end of the build first, as ninja and Bazel order their ready queues.
// Handed out in the order actions became ready, a test or a vet could take
// the slot that the next compile on the chain to a binary needed, and the
// build waited on that chain at its end (bench/selfbuild.sh). Ties go to
// the action that waited longest.
type slots struct {
	mu    sync.Mutex
	free  int
	queue waiters
	seq   uint64
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot for an action of priority prio (higher first).
func (s *slots) acquire(ctx context.Context, prio int) error {
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
	prio    int
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

// heights is, for each action of ag, the number of actions on the longest
// chain of its dependents in ag (0 for an action nothing depends on): its
// priority for a slot.
func heights(ag *graph.ActionGraph) map[*graph.Action]int {
	in := make(map[*graph.Action]bool, len(ag.Actions))
	for _, a := range ag.Actions {
		in[a] = true
	}
	h := make(map[*graph.Action]int, len(ag.Actions))
	// ag.Actions is in topological order: dependents come after.
	for i := len(ag.Actions) - 1; i >= 0; i-- {
		a := ag.Actions[i]
		n := 0
		for _, r := range a.Rdeps {
			if in[r] && h[r]+1 > n {
				n = h[r] + 1
			}
		}
		h[a] = n
	}
	return h
}

// first is the priority of the first waiter, or -1 when none waits.
func (s *slots) first() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return -1
	}
	return s.queue[0].prio
}
