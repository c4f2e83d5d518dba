package sched

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
)

// fakeExec "runs" a stage by writing, for each out, the stage's first
// command followed by the digests of its inputs, so that outputs change
// exactly when what the stage sees changes. A command "fail" fails.
type fakeExec struct {
	store   *cas.Store
	delay   time.Duration
	mu      sync.Mutex
	ran     []string
	running atomic.Int32
	maxPar  atomic.Int32
}

func (f *fakeExec) Run(ctx context.Context, job *Job) (*Result, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxPar.Load()
		if n <= m || f.maxPar.CompareAndSwap(m, n) {
			break
		}
	}
	start := time.Now()
	f.mu.Lock()
	f.ran = append(f.ran, job.Label.String())
	f.mu.Unlock()
	time.Sleep(f.delay)
	if strings.HasPrefix(job.Cmds[0], "slow") {
		time.Sleep(50 * time.Millisecond)
	}
	if job.Cmds[0] == "fail" {
		return &Result{ExitCode: 1, Err: fmt.Errorf("exit status 1")}, nil
	}
	var b strings.Builder
	b.WriteString(strings.Fields(job.Cmds[0])[0]) // "echo x" and "echo y" produce the same bytes
	for _, in := range job.Inputs {
		fmt.Fprintf(&b, " %s", in.Digest.Short())
	}
	var outs []cas.Output
	for _, o := range job.Outs {
		d, err := f.store.PutBytes([]byte(b.String()))
		if err != nil {
			return nil, err
		}
		outs = append(outs, cas.Output{Path: o, Digest: d, Size: int64(b.Len())})
	}
	return &Result{Outputs: outs, Duration: time.Since(start)}, nil
}

func (f *fakeExec) ranLabels() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}

type schedHarness struct {
	t     *testing.T
	root  string
	store *cas.Store
	db    *cas.DB
	exec  *fakeExec
	ag    *graph.ActionGraph
	done  func(*Action, *Outcome) // Options.Done
	// preload is Options.Preload, set for the next run only.
	preload func() (map[cas.Digest]cas.LatestEntry, error)
	prior   func(*Action) *Outcome // Options.Prior
}

func newSchedHarness(t *testing.T) *schedHarness {
	dir := t.TempDir()
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := cas.OpenDB(filepath.Join(dir, "mc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	root := filepath.Join(dir, "ws")
	if err := os.MkdirAll(filepath.Join(root, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &schedHarness{t: t, root: root, store: store, db: db, exec: &fakeExec{store: store},
		ag: &graph.ActionGraph{ByLabel: map[graph.Label]*graph.Action{}}}
}

// add declares stage //p:name running cmd, reading source file name.txt
// (created with content src) and the outputs of deps.
func (h *schedHarness) add(name, cmd, src string, deps ...string) *graph.Action {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.root, "p", name+".txt"), []byte(src), 0o644); err != nil {
		h.t.Fatal(err)
	}
	t := &graph.Target{Label: graph.Label{Pkg: "p", Name: name}, Kind: graph.KindStage, Cmds: []string{cmd},
		Outs: []string{"out/" + name}, Cache: true, Network: true}
	a := &graph.Action{Target: t, Sources: []string{"p/" + name + ".txt"}}
	for _, d := range deps {
		da := h.ag.ByLabel[graph.Label{Pkg: "p", Name: d}]
		a.Inputs = append(a.Inputs, graph.DepInput{Action: da})
		a.Deps = append(a.Deps, da)
		da.Rdeps = append(da.Rdeps, a)
	}
	h.ag.Actions = append(h.ag.Actions, a)
	h.ag.ByLabel[t.Label] = a
	return a
}

func (h *schedHarness) run(jobs int, keepGoing bool) (*Report, []event.Event) {
	h.t.Helper()
	h.exec.mu.Lock()
	h.exec.ran = nil
	h.exec.mu.Unlock()
	sc, err := h.db.StatCache(context.Background(), h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	var mu sync.Mutex
	var events []event.Event
	rep, err := Run(context.Background(), h.ag, Options{
		Root: h.root, Scope: h.root, Jobs: jobs, KeepGoing: keepGoing, Platform: "test",
		Store: h.store, DB: h.db, Files: sc, Executor: h.exec,
		Sink:    event.SinkFunc(func(e event.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
		Getenv:  func(string) (string, bool) { return "", false },
		Done:    h.done,
		Preload: h.preload,
		Prior:   h.prior,
	})
	h.preload = nil
	if err != nil {
		h.t.Fatal(err)
	}
	return rep, events
}

// A preload started before Run (StartPreload) serves its lookups: every
// stage is a hit without Run reading the latest results itself, which the
// preload of another scope (empty) shows.
func TestSchedulerStartPreload(t *testing.T) {
	h := newSchedHarness(t)
	h.add("a", "echo a", "1")
	h.add("b", "echo b", "2", "a")
	h.run(2, false)
	h.preload = StartPreload(context.Background(), h.db, h.root)
	if rep, _ := h.run(2, false); rep.Cached != 2 || rep.Built != 0 {
		t.Errorf("with the workspace's preload: cached %d built %d, want 2 0", rep.Cached, rep.Built)
	}
	var asked atomic.Int32
	other := StartPreload(context.Background(), h.db, "/elsewhere")
	h.preload = func() (map[cas.Digest]cas.LatestEntry, error) { asked.Add(1); return other() }
	if rep, _ := h.run(2, false); rep.Cached != 2 || asked.Load() != 1 {
		// Not preloaded, each key is still found by its own query.
		t.Errorf("with an empty preload: cached %d, preload asked %d times; want 2 cached, 1 ask", rep.Cached, asked.Load())
	}
	m, err := other()
	if err != nil || len(m) != 0 {
		t.Errorf("preload of another scope: %d entries, %v; want none", len(m), err)
	}
}

// Done hears of every action once, with the outcome the report gives it.
func TestSchedulerDone(t *testing.T) {
	h := newSchedHarness(t)
	h.add("bad", "fail", "1")
	h.add("after", "echo", "2", "bad")
	h.add("x1", "echo", "3")
	h.add("x2", "echo", "4", "x1")
	var mu sync.Mutex
	seen := map[*Action][]*Outcome{}
	h.done = func(a *Action, o *Outcome) {
		mu.Lock()
		seen[a] = append(seen[a], o)
		mu.Unlock()
	}
	for run, want := range []string{"first", "cached"} {
		clear(seen)
		rep, _ := h.run(2, true)
		if len(seen) != len(h.ag.Actions) {
			t.Errorf("%s run: Done heard of %d actions, want %d", want, len(seen), len(h.ag.Actions))
		}
		for a, os := range seen {
			if len(os) != 1 || os[0] != rep.Outcomes[a] {
				t.Errorf("%s run: %s: Done called %d times, outcome %v, report says %v", want, a.Label(), len(os), os, rep.Outcomes[a])
			}
		}
		if run == 1 && (rep.Cached != 2 || seen[h.ag.ByLabel[graph.Label{Pkg: "p", Name: "x2"}]][0].Status != StatusCached) {
			t.Errorf("cached run: %d cached, want 2 with //p:x2 among them", rep.Cached)
		}
	}
}

func TestSchedulerCachesAndCutsOff(t *testing.T) {
	h := newSchedHarness(t)
	h.add("a", "echo a", "1")
	h.add("b", "echo b", "2", "a")
	h.add("c", "echo c", "3", "b")
	rep, _ := h.run(2, false)
	if rep.Built != 3 || rep.Cached != 0 {
		t.Fatalf("first run: built %d cached %d, want 3 0", rep.Built, rep.Cached)
	}
	rep, _ = h.run(2, false)
	if rep.Built != 0 || rep.Cached != 3 || len(h.exec.ranLabels()) != 0 {
		t.Fatalf("second run: built %d cached %d ran %v, want everything cached", rep.Built, rep.Cached, h.exec.ranLabels())
	}
	// Changing a's command word keeps its output bytes ("echo" either way):
	// a reruns, b and c are cut off.
	h.ag.ByLabel[graph.Label{Pkg: "p", Name: "a"}].Target.Cmds = []string{"echo A"}
	rep, _ = h.run(2, false)
	if got := h.exec.ranLabels(); len(got) != 1 || got[0] != "//p:a" || rep.Cached != 2 {
		t.Fatalf("early cutoff: ran %v, cached %d; want only //p:a to run", got, rep.Cached)
	}
	// Changing b's source changes its output: b and c rerun, a does not.
	os.WriteFile(filepath.Join(h.root, "p", "b.txt"), []byte("2!"), 0o644)
	h.run(2, false)
	if got := strings.Join(h.exec.ranLabels(), " "); got != "//p:b //p:c" {
		t.Fatalf("after editing b's source ran %q, want //p:b //p:c", got)
	}
}

func TestSchedulerMissingBlobIsAMiss(t *testing.T) {
	h := newSchedHarness(t)
	a := h.add("a", "echo a", "1")
	rep, _ := h.run(1, false)
	out := rep.Outcomes[a].Result.Outputs[0].Digest
	if err := h.store.Remove(out); err != nil {
		t.Fatal(err)
	}
	rep, _ = h.run(1, false)
	if rep.Built != 1 {
		t.Fatalf("a result whose output blob is gone must rerun; built %d", rep.Built)
	}
	if !h.store.Has(out) {
		t.Fatal("rerun did not restore the blob")
	}
}

func TestSchedulerBoundsParallelism(t *testing.T) {
	h := newSchedHarness(t)
	h.exec.delay = 20 * time.Millisecond
	for i := 0; i < 12; i++ {
		h.add(fmt.Sprintf("s%02d", i), "echo", fmt.Sprint(i))
	}
	h.run(3, false)
	if m := h.exec.maxPar.Load(); m != 3 {
		t.Fatalf("max concurrent stages = %d, want exactly -j 3", m)
	}
}

func TestSchedulerFailFastAndKeepGoing(t *testing.T) {
	build := func(keepGoing bool) (*Report, *schedHarness) {
		h := newSchedHarness(t)
		h.add("bad", "fail", "1")
		h.add("after", "echo", "2", "bad") // depends on the failure
		h.add("x1", "echo", "3")           // independent; with -j1 runs after bad
		h.add("x2", "echo", "4", "x1")
		rep, _ := h.run(1, keepGoing)
		return rep, h
	}
	rep, h := build(false)
	ran := h.exec.ranLabels()
	if rep.Failed != 1 || ran[len(ran)-1] != "//p:bad" || rep.Built+rep.Failed+rep.Skipped != 4 {
		// Which of bad and x1 goes first is up to the scheduler; nothing
		// may start after the failure.
		t.Errorf("fail-fast: built %d failed %d skipped %d, ran %v: want nothing started after //p:bad", rep.Built, rep.Failed, rep.Skipped, ran)
	}
	rep, h = build(true)
	if rep.Failed != 1 || rep.Built != 2 || rep.Skipped != 1 {
		t.Errorf("keep-going: built %d failed %d skipped %d (ran %v), want 2 1 1", rep.Built, rep.Failed, rep.Skipped, h.exec.ranLabels())
	}
	// A failed stage is never cached: it runs again.
	h.run(1, true)
	if got := h.exec.ranLabels(); len(got) != 1 || got[0] != "//p:bad" {
		t.Errorf("second keep-going run ran %v, want only the failed stage again", got)
	}
}

func TestCriticalPath(t *testing.T) {
	h := newSchedHarness(t)
	h.exec.delay = 30 * time.Millisecond
	h.add("a", "echo a", "1")
	h.add("b", "echo b", "2", "a")
	h.add("c", "echo c", "3")
	rep, events := h.run(2, false)
	var got []string
	for _, a := range rep.CriticalPath {
		got = append(got, a.Label().String())
	}
	if strings.Join(got, " ") != "//p:a //p:b" {
		t.Errorf("critical path %v, want //p:a //p:b", got)
	}
	if rep.CriticalTime < 60*time.Millisecond {
		t.Errorf("critical time %v, want at least two stages of 30 ms", rep.CriticalTime)
	}
	last := events[len(events)-1]
	if last.Type != event.BuildFinished || last.Summary == nil || last.Summary.Built != 3 {
		t.Errorf("last event %+v, want build_finished with 3 built", last)
	}
}
