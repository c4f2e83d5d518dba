package runner

import (
	"context"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// memObjects is Objects in memory.
type memObjects struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (o *memObjects) Put(_ context.Context, k string, b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[k] = b
	return nil
}
func (o *memObjects) Get(_ context.Context, k string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.m[k]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}
func (o *memObjects) Delete(_ context.Context, k string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, k)
	return nil
}
func (o *memObjects) List(_ context.Context, p string) ([]ObjectInfo, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []ObjectInfo
	for k := range o.m {
		if strings.HasPrefix(k, p) {
			out = append(out, ObjectInfo{Key: k})
		}
	}
	return out, nil
}
func (o *memObjects) PresignGet(_ context.Context, k string, _ time.Duration) (string, error) {
	return "mem://" + k, nil
}

// fakeProvider holds instances in memory.
type fakeProvider struct {
	insts      []Instance
	terminated []string
}

func (p *fakeProvider) Name() string { return "fake" }
func (p *fakeProvider) Launch(context.Context, LaunchSpec) (string, error) {
	return "", ErrCapacity
}
func (p *fakeProvider) Terminate(_ context.Context, ids []string) error {
	p.terminated = append(p.terminated, ids...)
	return nil
}
func (p *fakeProvider) List(context.Context, string) ([]Instance, error) { return p.insts, nil }
func (p *fakeProvider) Reach(id string) string                           { return id }

func TestReap(t *testing.T) {
	now := time.Now()
	host, _ := os.Hostname()
	start, _ := procStart(os.Getpid())
	objs := &memObjects{m: map[string][]byte{
		RunDir("done") + objDone:                        []byte("{}"),
		UntrustedTier + "/" + RunDir("udone") + objDone: []byte("{}"),
		RunDir("alive") + objCoordinator:                encode(CoordinatorBeat{Host: host, PID: os.Getpid(), Start: start, Time: now}),
		RunDir("deadpid") + objCoordinator:              encode(CoordinatorBeat{Host: host, PID: os.Getpid(), Start: start + 1, Time: now}),
		RunDir("silent") + objCoordinator:               encode(CoordinatorBeat{Host: "elsewhere", PID: 1, Time: now.Add(-time.Hour)}),
		RunDir("elsewhere") + objCoordinator:            encode(CoordinatorBeat{Host: "elsewhere", PID: 1, Time: now}),
	}}
	inst := func(id, run string, expires time.Time, state string) Instance {
		return Instance{ID: id, State: state, Launched: now,
			Tags: map[string]string{TagRun: run, TagExpiresAt: expires.UTC().Format(time.RFC3339)}}
	}
	later := now.Add(time.Hour)
	insts := []Instance{
		inst("i-alive", "alive", later, StateRunning),
		inst("i-done", "done", later, StateRunning),
		inst("i-deadpid", "deadpid", later, StateRunning),
		inst("i-silent", "silent", later, StateRunning),
		inst("i-elsewhere", "elsewhere", later, StateRunning),
		inst("i-expired", "alive", now.Add(-time.Minute), StateRunning),
		inst("i-ended", "done", later, StateTerminated),
		inst("i-booting", "nobeat", later, StatePending),
		inst("i-kept", "done", later, StateRunning),
		inst("i-kept-expired", "done", now.Add(-time.Second), StateRunning),
		// Untrusted builds' runs are under untrusted/runs/: "done" is over
		// in the trusted tier only, so its untrusted namesake is not.
		inst("i-u-done", "udone", later, StateRunning),
		inst("i-u-notdone", "done", later, StateRunning),
	}
	insts[8].Tags[TagKeep] = "true"
	insts[9].Tags[TagKeep] = "true"
	insts[10].Tags[TagTier] = UntrustedTier
	insts[11].Tags[TagTier] = UntrustedTier
	for _, tc := range []struct {
		name string
		all  bool
		want []string
	}{
		{"strays", false, []string{"i-deadpid", "i-done", "i-expired", "i-kept-expired", "i-silent", "i-u-done"}},
		{"all", true, []string{"i-alive", "i-booting", "i-deadpid", "i-done", "i-elsewhere", "i-expired", "i-kept", "i-kept-expired", "i-silent", "i-u-done", "i-u-notdone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakeProvider{insts: insts}
			reaped, err := Reap(context.Background(), ReapOptions{Provider: p, Objects: objs, Workspace: "w", All: tc.all})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(p.terminated)
			if strings.Join(p.terminated, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("terminated %q, want %q", p.terminated, tc.want)
			}
			for _, r := range reaped {
				if r.Stray == "" {
					t.Errorf("%s reaped without a reason", r.ID)
				}
			}
		})
	}
}
