package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// goProvider runs each "instance" as RunAgent in a goroutine of this test
// (the protocol without the bootstrap, which the script tests cover); the
// first neverBoot launches run nothing.
type goProvider struct {
	t         *testing.T
	url, ep   string
	getenv    func(string) (string, bool)
	mu        sync.Mutex
	neverBoot int
	n         int
	specs     []LaunchSpec
	notify    string // the wake-up URL given to agents
	agentPoll time.Duration
	stderr    lockedBuf // the agents' diagnostics
	live      map[string]context.CancelFunc
	done      sync.WaitGroup
	objs      Objects // the agents' Objects; nil: opened from url
}

func (p *goProvider) Name() string { return "go" }
func (p *goProvider) Launch(ctx context.Context, spec LaunchSpec) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.specs = append(p.specs, spec)
	id := fmt.Sprintf("go-%d", p.n)
	actx, cancel := context.WithCancel(context.Background())
	p.live[id] = cancel
	if p.neverBoot > 0 {
		p.neverBoot--
		return id, nil
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		err := RunAgent(actx, AgentOptions{CacheURL: p.url, Endpoint: p.ep, RunID: spec.RunID, JobID: spec.JobID,
			Dir: p.t.TempDir(), Getenv: p.getenv, Stderr: &p.stderr, Notify: p.notify, Poll: p.agentPoll,
			Objects: p.objs, Untrusted: spec.Untrusted})
		if err != nil && actx.Err() == nil {
			p.t.Errorf("agent %s: %v", id, err)
		}
		p.mu.Lock()
		delete(p.live, id)
		p.mu.Unlock()
	}()
	return id, nil
}
func (p *goProvider) Terminate(_ context.Context, ids []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if c, ok := p.live[id]; ok {
			c()
			delete(p.live, id)
		}
	}
	return nil
}
func (p *goProvider) List(context.Context, string) ([]Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Instance
	for id := range p.live {
		out = append(out, Instance{ID: id, State: StateRunning, Tags: map[string]string{}})
	}
	return out, nil
}
func (p *goProvider) Reach(id string) string { return id }

// lockedBuf is a log writer safe for the executor's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestExecutorAgent(t *testing.T) {
	pe := newPoolEnv(t)
	srv, url, getenv, objs, remote := pe.srv, pe.url, pe.getenv, pe.objs, pe.remote
	ctx := context.Background()
	ws := t.TempDir()
	src := filepath.Join(ws, "in.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcDigest := cas.FromBytes([]byte("hello\n"))

	for _, tc := range []struct {
		name      string
		neverBoot int
		wantLog   string
	}{
		{"first runner", 0, ""},
		{"a runner that never boots is replaced", 1, "did not start within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := cas.OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			prov := &goProvider{t: t, url: url, ep: srv.Endpoint, getenv: getenv, live: map[string]context.CancelFunc{}, neverBoot: tc.neverBoot}
			var notes lockedBuf
			ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: objs, Remote: remote, Store: store,
				Workspace: "w", CacheURL: url, Binary: src, Heartbeat: 200 * time.Millisecond, Lease: testLease, Poll: 50 * time.Millisecond,
				BootTimeout: time.Second, Notify: func(s string) { notes.Write([]byte(s + "\n")) }})
			if err != nil {
				t.Fatal(err)
			}
			secret := "sekrit-" + strings.ReplaceAll(tc.name, " ", "-")
			var log lockedBuf
			job := &sched.Job{
				Label: graph.Label{Pkg: "p", Name: "s"}, Key: cas.FromBytes([]byte(tc.name)), Pkg: "p",
				Cmds:    []string{"echo secret=$TOKEN", "tr a-z A-Z < in.txt > out.txt"},
				Secrets: map[string]string{"TOKEN": secret},
				Inputs:  []sched.Input{{Path: "p/in.txt", Digest: srcDigest, Size: 6, Source: src}},
				Outs:    []string{"p/out.txt"}, Log: &log,
			}
			res, err := ex.Run(ctx, job)
			if err != nil {
				t.Fatal(err)
			}
			if cerr := ex.Close(ctx); cerr != nil {
				t.Fatal(cerr)
			}
			prov.done.Wait()
			if res.Err != nil {
				t.Fatalf("stage failed: %v\nlog:\n%s", res.Err, log.String())
			}
			if len(res.Outputs) != 1 {
				t.Fatalf("outputs %+v", res.Outputs)
			}
			b, err := store.ReadBytes(res.Outputs[0].Digest)
			if err != nil || string(b) != "HELLO\n" {
				t.Fatalf("output in the local store: %q, %v", b, err)
			}
			if !strings.Contains(log.String(), "secret=****") || strings.Contains(log.String(), secret) {
				t.Fatalf("log not masked as expected:\n%s", log.String())
			}
			if !strings.Contains(notes.String(), tc.wantLog) {
				t.Fatalf("notes %q, want %q", notes.String(), tc.wantLog)
			}
			for _, k := range srv.List(t, "mcb", "c/runs/"+ex.RunID()) {
				if strings.HasSuffix(k, "/secrets") {
					t.Errorf("secrets object left: %s", k)
				}
			}
			if insts, _ := prov.List(ctx, "w"); len(insts) != 0 {
				t.Fatalf("instances left: %+v", insts)
			}
		})
	}
}
