package sched

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A freed slot goes to the highest priority waiting, then the earliest; a
// waiter whose context ends leaves the queue and takes no slot.
func TestSlotsOrder(t *testing.T) {
	s := newSlots(1)
	ctx := context.Background()
	if err := s.acquire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	wait := func(name string, prio time.Duration, ctx context.Context) {
		go func() {
			if err := s.acquire(ctx, prio); err != nil {
				got <- name + " gave up"
				return
			}
			got <- name
		}()
		// Queued before the next one starts: the queue's order is by
		// priority and arrival, and arrival must be known here.
		for deadline := time.Now().Add(5 * time.Second); ; {
			s.mu.Lock()
			n := len(s.queue)
			s.mu.Unlock()
			if n > 0 && s.queued(name, prio) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	wait("low", 0, ctx)
	wait("high-first", 5, ctx)
	wait("cancelled", 9, cctx)
	wait("high-second", 5, ctx)
	wait("mid", 2, ctx)
	cancel()
	if g := <-got; g != "cancelled gave up" {
		t.Fatalf("first event %q, want the cancelled waiter giving up", g)
	}
	var order []string
	for range 4 {
		s.release()
		order = append(order, <-got)
	}
	if want := []string{"high-first", "high-second", "mid", "low"}; !slices.Equal(order, want) {
		t.Fatalf("slots given in order %v, want %v", order, want)
	}
	s.release()
	if s.free != 1 || len(s.queue) != 0 {
		t.Fatalf("after the last release: %d free, %d queued; want 1, 0", s.free, len(s.queue))
	}
}

// queued reports whether a waiter of priority prio is in the queue (the
// test's names are not kept; the count per priority is enough here).
func (s *slots) queued(_ string, prio time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.queue {
		if w.prio == prio {
			return true
		}
	}
	return false
}

// With one slot, the chain to the end of the build goes first: once c1
// runs, c2 and c3 follow it before the stages nothing depends on, which
// were ready earlier. Given out in order of readiness, x1..x3 ran between.
func TestSchedulerChainFirst(t *testing.T) {
	h := newSchedHarness(t)
	h.exec.delay = 10 * time.Millisecond
	for i := range 3 {
		h.add(fmt.Sprint("x", i), "echo", fmt.Sprint("x", i))
	}
	h.add("c1", "echo", "c1")
	h.add("c2", "echo", "c2", "c1")
	h.add("c3", "echo", "c3", "c2")
	h.run(1, false)
	ran := h.exec.ranLabels()
	i1, i3 := slices.Index(ran, "//p:c1"), slices.Index(ran, "//p:c3")
	if i1 < 0 || i3 != i1+2 || ran[i1+1] != "//p:c2" {
		t.Fatalf("ran %v: want //p:c1, //p:c2, //p:c3 one after another", ran)
	}
	if i1 > 1 {
		t.Fatalf("ran %v: //p:c1 waited behind stages nothing depends on", ran)
	}
}

// The chain first, by time: of three stages made ready together, the one
// whose label took longest at its last run goes first (the slot its
// dependency frees is handed to it); with counts alone the three tie and
// the first declared would go.
func TestSchedulerLongestFirst(t *testing.T) {
	h := newSchedHarness(t)
	h.add("gate", "echo", "g")
	h.add("a", "echo", "a", "gate")
	h.add("b", "slow", "b", "gate")
	h.add("c", "echo", "c", "gate")
	h.run(1, false) // records each label's time: b's is the longest
	for _, n := range []string{"gate", "a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(h.root, "p", n+".txt"), []byte(n+" changed"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.run(1, false)
	if ran := h.exec.ranLabels(); len(ran) != 4 || ran[1] != "//p:b" {
		t.Fatalf("ran %v: want //p:b right after //p:gate (it took longest last time)", ran)
	}
}
