package sched

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mc-build/mc/graph"

	"github.com/mc-build/mc/event"
)

// TestSchedulerPrior: with the outcomes of an earlier Run given as Prior
// for what an edit did not affect (mc watch), only the rest is keyed and
// run; dependents start from the prior results, which their new inputs
// show; nothing prior is counted or reported. The positive control is the
// same edit without Prior: every action is then keyed again (a cache hit
// each), visible as stage_cached events.
func TestSchedulerPrior(t *testing.T) {
	h := newSchedHarness(t)
	a := h.add("a", "echo a", "1")
	b := h.add("b", "echo b", "2", "a")
	c := h.add("c", "echo c", "3", "b")
	x := h.add("x", "echo x", "4")
	first, _ := h.run(2, false)
	if first.Built != 4 {
		t.Fatalf("first run built %d, want 4", first.Built)
	}

	if err := os.WriteFile(filepath.Join(h.root, "p", "b.txt"), []byte("2!"), 0o644); err != nil {
		t.Fatal(err)
	}
	affected := map[*Action]bool{b: true, c: true}
	h.prior = func(act *Action) *Outcome {
		if affected[act] {
			return nil
		}
		return first.Outcomes[act]
	}
	rep, events := h.run(2, false)
	if got := strings.Join(h.exec.ranLabels(), " "); got != "//p:b //p:c" {
		t.Errorf("ran %q, want //p:b //p:c", got)
	}
	if rep.Built != 2 || rep.Cached != 0 || rep.Skipped != 0 || rep.Failed != 0 {
		t.Errorf("tally built %d cached %d skipped %d failed %d, want 2 0 0 0", rep.Built, rep.Cached, rep.Skipped, rep.Failed)
	}
	for _, e := range events {
		if e.Label == a.Label().String() || e.Label == x.Label().String() {
			t.Errorf("event %s for prior action %s", e.Type, e.Label)
		}
		if e.Type == event.BuildStarted && e.Total != 2 {
			t.Errorf("build_started total %d, want 2", e.Total)
		}
	}
	if rep.Outcomes[a] != first.Outcomes[a] {
		t.Error("the report does not carry a's prior outcome")
	}
	// b read a's prior output: the same input digest as in the first run.
	if got, want := rep.Outcomes[b].Parts.Inputs, first.Outcomes[b].Parts.Inputs; len(got) != 2 || got[1] != want[1] || got[1].Path != "p/out/a" {
		t.Errorf("b's inputs %v, want a's prior output %v among them", got, want)
	}
	for _, l := range rep.CriticalPath {
		if l == a || l == x {
			t.Errorf("critical path %v holds prior action %s", rep.CriticalPath, l.Label())
		}
	}

	// Positive control: without Prior, the untouched actions are keyed and
	// looked up again.
	h.prior = nil
	if err := os.WriteFile(filepath.Join(h.root, "p", "b.txt"), []byte("2!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = h.run(2, false)
	if rep.Cached != 2 || rep.Built != 2 {
		t.Errorf("without Prior: cached %d built %d, want 2 2", rep.Cached, rep.Built)
	}
}

// A prior outcome without a result (a failure) does not count as done:
// the action runs again.
func TestSchedulerPriorFailureRuns(t *testing.T) {
	h := newSchedHarness(t)
	a := h.add("a", "fail", "1")
	first, _ := h.run(1, false)
	if first.Failed != 1 {
		t.Fatalf("failed %d, want 1", first.Failed)
	}
	h.prior = func(act *Action) *Outcome { return first.Outcomes[act] }
	rep, _ := h.run(1, false)
	if got := h.exec.ranLabels(); len(got) != 1 || rep.Failed != 1 || rep.Outcomes[a] == first.Outcomes[a] {
		t.Errorf("ran %v, failed %d: want the failed action run again", got, rep.Failed)
	}
}

// A Run of part of a graph (the affected actions and their direct
// dependencies, as mc watch runs): c runs from b's prior result; when b's
// output blob is gone, b runs again (a rewind), keyed from a's prior
// result although a is outside the graph run.
func TestSchedulerPriorPartialGraph(t *testing.T) {
	h := newSchedHarness(t)
	a := h.add("a", "echo a", "1")
	b := h.add("b", "echo b", "2", "a")
	c := h.add("c", "echo c", "3", "b")
	full := h.ag
	first, _ := h.run(1, false)
	if err := os.WriteFile(filepath.Join(h.root, "p", "c.txt"), []byte("3!"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.prior = func(act *Action) *Outcome {
		if act == c {
			return nil
		}
		return first.Outcomes[act]
	}
	h.ag = &graph.ActionGraph{Actions: []*Action{b, c}, ByLabel: map[graph.Label]*Action{b.Label(): b, c.Label(): c}}
	rep, _ := h.run(1, false)
	if got := strings.Join(h.exec.ranLabels(), " "); got != "//p:c" || rep.Built != 1 {
		t.Fatalf("part {b, c} with b prior: ran %q, built %d; want //p:c alone", got, rep.Built)
	}

	if err := h.store.Remove(first.Outcomes[b].Result.Outputs[0].Digest); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.root, "p", "c.txt"), []byte("3!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = h.run(1, false)
	if got := strings.Join(h.exec.ranLabels(), " "); got != "//p:b //p:c" || rep.Failed != 0 {
		t.Fatalf("with b's output gone: ran %q, failed %d; want b run again, then c", got, rep.Failed)
	}
	if rep.Outcomes[b].Key != first.Outcomes[b].Key {
		t.Error("b rerun under another key: a's prior output was not its input")
	}
	h.ag = full
	_ = a
}
