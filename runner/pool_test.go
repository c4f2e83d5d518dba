package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/internal/testminio"
	"github.com/mc-build/mc/sched"
)

// poolEnv is MinIO plus the clients the executor and agents use.
// testLease is how long a runner may be silent in the tests that are not
// about lost runners: their 200 ms heartbeats would give 600 ms, which a
// machine running the whole suite misses (a lost runner is retried, and the
// count of runners or secrets objects is off).
const testLease = 5 * time.Second

type poolEnv struct {
	srv    *testminio.Server
	url    string
	getenv func(string) (string, bool)
	objs   Objects
	remote cas.Remote
}

func newPoolEnv(t *testing.T) *poolEnv {
	t.Helper()
	srv := testminio.Start(t)
	srv.MakeBucket(t, "mcb")
	cfg := filepath.Join(t.TempDir(), "none")
	getenv := func(k string) (string, bool) {
		if k == "AWS_CONFIG_FILE" || k == "AWS_SHARED_CREDENTIALS_FILE" {
			return cfg, true
		}
		return srv.Getenv(k)
	}
	url := "s3://mcb/c"
	remote, err := s3.Open(context.Background(), url, s3.Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := OpenObjects(context.Background(), url, "", getenv)
	if err != nil {
		t.Fatal(err)
	}
	return &poolEnv{srv: srv, url: url, getenv: getenv, objs: objs, remote: remote}
}

// TestExecutorWarmPool drives the executor as the scheduler would (Ahead
// with the count of unfinished actions, one stage at a time) and checks
// that runners are launched ahead of the stages, that every stage still
// runs on a runner of its own, that no more runners are launched than the
// remaining work can use, and that none is left after Close.
func TestExecutorWarmPool(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	ws := t.TempDir()
	src := filepath.Join(ws, "in.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcDigest := cas.FromBytes([]byte("hello\n"))
	store, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prov := &goProvider{t: t, url: pe.url, ep: pe.srv.Endpoint, getenv: pe.getenv, live: map[string]context.CancelFunc{}}
	// A heartbeat of a second: the lease (three heartbeats) must outlast a
	// busy machine's pauses, or a runner is declared lost, its stage takes
	// another spare and one more is launched than the pool's rule allows.
	ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: pe.objs, Remote: pe.remote, Store: store,
		Workspace: "w", CacheURL: pe.url, Binary: src, Heartbeat: time.Second, Poll: 50 * time.Millisecond,
		MaxInstances: 2, Warm: 2})
	if err != nil {
		t.Fatal(err)
	}
	const stages = 3
	ex.Ahead(stages)
	// Two spares are launched before any stage is dispatched.
	deadline := time.Now().Add(20 * time.Second)
	for {
		prov.mu.Lock()
		n := prov.n
		prov.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runners launched ahead of the stages, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range stages {
		var log lockedBuf
		job := &sched.Job{
			Label: graph.Label{Pkg: "p", Name: fmt.Sprintf("s%d", i)}, Key: cas.FromBytes([]byte{byte(i)}), Pkg: "p",
			Cmds:   []string{fmt.Sprintf("tr a-z A-Z < in.txt > out.txt; echo %d >> out.txt", i)},
			Inputs: []sched.Input{{Path: "p/in.txt", Digest: srcDigest, Size: 6, Source: src}},
			Outs:   []string{"p/out.txt"}, Log: &log,
		}
		res, err := ex.Run(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			t.Fatalf("stage %d failed: %v\nlog:\n%s", i, res.Err, log.String())
		}
		b, err := store.ReadBytes(res.Outputs[0].Digest)
		if want := fmt.Sprintf("HELLO\n%d\n", i); err != nil || string(b) != want {
			t.Fatalf("stage %d output %q, %v; want %q", i, b, err, want)
		}
		ex.Ahead(stages - 1 - i)
	}
	if err := ex.Close(ctx); err != nil {
		t.Fatal(err)
	}
	prov.done.Wait()

	prov.mu.Lock()
	specs := append([]LaunchSpec(nil), prov.specs...)
	prov.mu.Unlock()
	// One runner per stage and no more: the remaining work bounded the pool.
	if len(specs) != stages {
		t.Fatalf("%d runners launched for %d stages: %+v", len(specs), stages, specs)
	}
	seen := map[string]bool{}
	for _, sp := range specs {
		if !strings.HasPrefix(sp.JobID, "w") || sp.Label != "(warm)" || seen[sp.JobID] {
			t.Fatalf("runner %q (%s): want distinct spares launched ahead", sp.JobID, sp.Label)
		}
		seen[sp.JobID] = true
	}
	// Each stage's job went to a different spare's directory.
	jobs := 0
	for _, k := range pe.srv.List(t, "mcb", "c/runs/"+ex.RunID()) {
		if strings.HasSuffix(k, "/job") {
			jobs++
			dir := strings.TrimSuffix(strings.TrimPrefix(k, "c/runs/"+ex.RunID()+"/"), "/job")
			if !seen[dir] {
				t.Errorf("job in %s, not a spare's directory", k)
			}
		}
	}
	if jobs != stages {
		t.Fatalf("%d job objects, want %d", jobs, stages)
	}
	if insts, _ := prov.List(ctx, "w"); len(insts) != 0 {
		t.Fatalf("instances left: %+v", insts)
	}
}

// TestExecutorWarmPoolUnusedSpares: spares that no stage takes (the work
// turned out cached) are terminated by Close.
func TestExecutorWarmPoolUnusedSpares(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	store, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("not really mc"), 0o755); err != nil {
		t.Fatal(err)
	}
	prov := &goProvider{t: t, url: pe.url, ep: pe.srv.Endpoint, getenv: pe.getenv, live: map[string]context.CancelFunc{}}
	ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: pe.objs, Remote: pe.remote, Store: store,
		Workspace: "w", CacheURL: pe.url, Binary: bin, MaxInstances: 3, Warm: 3})
	if err != nil {
		t.Fatal(err)
	}
	ex.Ahead(10)
	deadline := time.Now().Add(20 * time.Second)
	for {
		insts, _ := prov.List(ctx, "w")
		if len(insts) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spares live, want 3", len(insts))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ex.Ahead(0)
	if err := ex.Close(ctx); err != nil {
		t.Fatal(err)
	}
	prov.done.Wait()
	if insts, _ := prov.List(ctx, "w"); len(insts) != 0 {
		t.Fatalf("spares left after Close: %+v", insts)
	}
	if prov.n != 3 {
		t.Fatalf("%d runners launched, want 3 (Ahead(0) launches none)", prov.n)
	}
}

// TestAgentWaitsThenEnds: an agent without a job waits for one, and ends by
// itself, without a result, when its run is marked done or its idle time
// is over.
func TestAgentWaitsThenEnds(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		idle time.Duration
		done bool
		want string
	}{
		{"run marked done", time.Hour, true, "the run is over before a job came"},
		{"idle timeout", 300 * time.Millisecond, false, "no job within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := NewRunID()
			var stderr lockedBuf
			errc := make(chan error, 1)
			go func() {
				errc <- RunAgent(ctx, AgentOptions{CacheURL: pe.url, Endpoint: pe.srv.Endpoint, RunID: run, JobID: "w00001",
					Dir: t.TempDir(), Getenv: pe.getenv, Stderr: &stderr, IdleTimeout: tc.idle, Heartbeat: 100 * time.Millisecond})
			}()
			// It heartbeats while it waits (the coordinator's lease covers
			// spares too).
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, err := pe.objs.Get(ctx, JobDir(run, "w00001")+objHeartbeat); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no heartbeat from a waiting agent")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if tc.done {
				if err := pe.objs.Put(ctx, RunDir(run)+objDone, []byte("{}")); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("agent: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the agent did not end")
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("agent said %q, want %q", stderr.String(), tc.want)
			}
			if _, err := pe.objs.Get(ctx, JobDir(run, "w00001")+objResult); err == nil {
				t.Fatal("a result was written without a job")
			}
		})
	}
}

// TestExecutorWakeUps: when runners can reach the coordinator, the job and
// the result travel by S3 as always but nobody waits for a poll: with every
// S3 polling interval at a minute, a stage on a spare still completes at
// once. An agent given an address it cannot reach says so and polls S3.
func TestExecutorWakeUps(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	ws := t.TempDir()
	src := filepath.Join(ws, "in.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcDigest := cas.FromBytes([]byte("hello\n"))
	for _, tc := range []struct {
		name      string
		reachable bool
	}{
		{"coordinator reachable", true},
		{"coordinator unreachable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := cas.OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			prov := &goProvider{t: t, url: pe.url, ep: pe.srv.Endpoint, getenv: pe.getenv, live: map[string]context.CancelFunc{}}
			o := Options{Provider: prov, Objects: pe.objs, Remote: pe.remote, Store: store,
				Workspace: "w", CacheURL: pe.url, Binary: src, Heartbeat: 200 * time.Millisecond,
				Lease: time.Minute, MaxInstances: 1, Warm: 1, NotifyListen: "127.0.0.1:0"}
			if tc.reachable {
				o.Poll, o.ResultPoll, prov.agentPoll = time.Minute, time.Minute, time.Minute
			} else {
				// Nothing listens on port 1: the agent falls back to S3.
				prov.notify = "http://127.0.0.1:1"
				o.Poll, o.ResultPoll, prov.agentPoll = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
			}
			ex, err := NewExecutor(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reachable {
				prov.notify = ex.wake.url
			}
			ex.Ahead(1)
			// The spare is up and waiting: on the coordinator, or (having
			// failed to reach it) on S3.
			deadline := time.Now().Add(20 * time.Second)
			for !ex.wake.agentReached("w00001") && !strings.Contains(prov.stderr.String(), "cannot be reached") {
				if time.Now().After(deadline) {
					t.Fatal("the spare did not come up")
				}
				time.Sleep(20 * time.Millisecond)
			}
			var log lockedBuf
			job := &sched.Job{
				Label: graph.Label{Pkg: "p", Name: "s"}, Key: cas.FromBytes([]byte(tc.name)), Pkg: "p",
				Cmds:   []string{"tr a-z A-Z < in.txt > out.txt"},
				Inputs: []sched.Input{{Path: "p/in.txt", Digest: srcDigest, Size: 6, Source: src}},
				Outs:   []string{"p/out.txt"}, Log: &log,
			}
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			res, err := ex.Run(rctx, job)
			if err != nil {
				t.Fatalf("the stage did not complete within 15 s though every poll is a minute apart: %v", err)
			}
			if res.Err != nil {
				t.Fatalf("stage failed: %v\nlog:\n%s", res.Err, log.String())
			}
			ex.Ahead(0)
			if err := ex.Close(ctx); err != nil {
				t.Fatal(err)
			}
			prov.done.Wait()
			said := prov.stderr.String()
			if got := strings.Contains(said, "cannot be reached"); got == tc.reachable {
				t.Fatalf("agent diagnostics %q: fallback reported = %v, want %v", said, got, !tc.reachable)
			}
			if insts, _ := prov.List(ctx, "w"); len(insts) != 0 {
				t.Fatalf("instances left: %+v", insts)
			}
		})
	}
}

// TestAgentHearsRunOver: a waiting spare ends when the coordinator closes
// the run, without waiting for its next look at S3.
func TestAgentHearsRunOver(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	n, err := startNotifier("127.0.0.1:0", "run1")
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	errc := make(chan error, 1)
	go func() {
		errc <- RunAgent(ctx, AgentOptions{CacheURL: pe.url, Endpoint: pe.srv.Endpoint, RunID: "run1", JobID: "w00001",
			Dir: t.TempDir(), Getenv: pe.getenv, Stderr: &stderr, Notify: n.url, Poll: time.Minute})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !n.agentReached("w00001") {
		if time.Now().After(deadline) {
			t.Fatal("the agent never waited on the coordinator")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.close()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not end when the run closed")
	}
	if !strings.Contains(stderr.String(), "the coordinator says the run is over") {
		t.Fatalf("agent said %q", stderr.String())
	}
}
