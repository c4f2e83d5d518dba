package sandbox

// The scheduler's test harness (sched/scheduler_test.go), copied for
// TestSchedulerPushesImages, which runs the scheduler with this package's
// real image builds: a test package cannot import another's test files.

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
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
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

func (f *fakeExec) Run(ctx context.Context, job *sched.Job) (*sched.Result, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxPar.Load()
		if n <= m || f.maxPar.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.ran = append(f.ran, job.Label.String())
	f.mu.Unlock()
	time.Sleep(f.delay)
	if job.Cmds[0] == "fail" {
		return &sched.Result{ExitCode: 1, Err: fmt.Errorf("exit status 1")}, nil
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
	return &sched.Result{Outputs: outs}, nil
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
	done  func(*sched.Action, *sched.Outcome) // Options.Done
	// preload is Options.Preload, set for the next run only.
	preload func() (map[cas.Digest]cas.LatestEntry, error)
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
