package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/iampolicy"
	"github.com/mc-build/mc/sched"
)

// putRecorder records every object written through it.
type putRecorder struct {
	Objects
	mu   sync.Mutex
	puts map[string][][]byte
}

func (r *putRecorder) Put(ctx context.Context, key string, b []byte) error {
	r.mu.Lock()
	r.puts[key] = append(r.puts[key], bytes.Clone(b))
	r.mu.Unlock()
	return r.Objects.Put(ctx, key, b)
}

// bucketHolds reports the keys of the objects of bucket mcb whose content
// contains needle.
func bucketHolds(t *testing.T, pe *poolEnv, needle string) []string {
	var hits []string
	for _, k := range pe.srv.List(t, "mcb", "") {
		if b, ok := pe.srv.GetRaw(t, "mcb", k); ok && bytes.Contains(b, []byte(needle)) {
			hits = append(hits, k)
		}
	}
	return hits
}

// TestSecretsSealedEndToEnd runs a stage that names a secret on a runner
// (the protocol with real S3) and records every object the coordinator and
// the agent write: the secret's value is never among them in plain text,
// nor anywhere in the bucket afterwards, yet the stage got it (its output
// file holds it: the positive control that the probe sees the value where
// it is). The same stage also looks for the agent's own credentials, in its
// environment and in every /proc/*/environ it can read: the agent's S3 key
// (its getenv) and an AWS key in the agent process's environment must not
// be there, while a value the stage is given in env is (the probe's
// positive control).
func TestSecretsSealedEndToEnd(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	const procCanary = "agent-process-env-canary-5150"
	t.Setenv("AWS_SECRET_ACCESS_KEY", procCanary)
	t.Setenv("MC_TEST_AGENT_CANARY", procCanary)
	agentKey, _ := pe.getenv("AWS_SECRET_ACCESS_KEY")

	rec := &putRecorder{Objects: pe.objs, puts: map[string][][]byte{}}
	ws := t.TempDir()
	bin := filepath.Join(ws, "bin")
	if err := os.WriteFile(bin, []byte("not really mc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prov := &goProvider{t: t, url: pe.url, ep: pe.srv.Endpoint, getenv: pe.getenv, live: map[string]context.CancelFunc{}, objs: rec}
	ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: rec, Remote: pe.remote, Store: store,
		Workspace: "w", CacheURL: pe.url, Binary: bin, Heartbeat: 200 * time.Millisecond, Lease: testLease, Poll: 50 * time.Millisecond,
		BootTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "sealed-secret-value-8086"
	var log lockedBuf
	job := &sched.Job{
		Label: graph.Label{Pkg: "p", Name: "s"}, Key: cas.FromBytes([]byte("sealed e2e")), Pkg: "p",
		Cmds: []string{
			`printf %s "$TOKEN" > out.txt`,
			`env; for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f"; done 2>/dev/null; true`,
		},
		Env:     map[string]string{"PROBE_CONTROL": "control-" + procCanary},
		Secrets: map[string]string{"TOKEN": secret},
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
		t.Fatalf("stage failed: %v\nlog:\n%s\nagents:\n%s", res.Err, log.String(), prov.stderr.String())
	}
	if len(res.Outputs) != 1 {
		t.Fatalf("outputs %+v", res.Outputs)
	}
	if b, err := store.ReadBytes(res.Outputs[0].Digest); err != nil || string(b) != secret {
		t.Fatalf("the stage did not get its secret: output %q, %v", b, err)
	}
	// The output blob is in the bucket (the stage wrote the secret into an
	// output: README says don't); it is the one place the value may be.
	outKey := "c/" + BlobKey(res.Outputs[0].Digest)

	var sealedPuts int
	rec.mu.Lock()
	for k, bodies := range rec.puts {
		for _, b := range bodies {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s written with the secret in plain text", k)
			}
		}
		if strings.HasSuffix(k, "/"+objSecrets) {
			sealedPuts += len(bodies)
		}
	}
	rec.mu.Unlock()
	if sealedPuts != 1 {
		t.Errorf("%d secrets objects written, want 1 (sealed)", sealedPuts)
	}
	for _, k := range bucketHolds(t, pe, secret) {
		if k != outKey {
			t.Errorf("the bucket holds the secret in %s", k)
		}
	}

	l := log.String()
	// Once from env, once at least from the stage's own /proc/<pid>/environ:
	// the probe reads both places.
	if n := strings.Count(l, "PROBE_CONTROL=control-"+procCanary); n < 2 {
		t.Fatalf("the probe printed the stage's env %d times, want env and /proc (positive control):\n%s", n, l)
	}
	if strings.Contains(strings.ReplaceAll(l, "control-"+procCanary, ""), procCanary) {
		t.Errorf("the agent process's environment reached the stage:\n%s", l)
	}
	if strings.Contains(l, agentKey) {
		t.Errorf("the agent's S3 key reached the stage:\n%s", l)
	}
}

// TestUntrustedRunnersOnMinIO runs an untrusted build's stage on a runner
// with nothing but the untrusted identity's credentials (coordinator and
// agent, real MinIO users under iampolicy): it works, its objects and
// outputs land in the untrusted tier, and nothing of it in the trusted
// tier or the trusted runs/. A stage of the same build that names a secret
// fails with why, and no secrets object is ever written. That the identity
// cannot write the trusted tier at all is TestPoliciesOnMinIO.
func TestUntrustedRunnersOnMinIO(t *testing.T) {
	pol := newPolicyEnv(t)
	ctx := context.Background()
	url := "s3://mcb/v1"
	u := pol.users[iampolicy.Untrusted]
	cfg := filepath.Join(t.TempDir(), "none")
	getenv := func(k string) (string, bool) {
		if k == "AWS_CONFIG_FILE" || k == "AWS_SHARED_CREDENTIALS_FILE" {
			return cfg, true
		}
		return u.Getenv(k)
	}
	// A trusted input, already in the trusted tier (read, never written).
	ws := t.TempDir()
	src := filepath.Join(ws, "in.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcDigest := cas.FromBytes([]byte("hello\n"))
	pol.srv.PutRaw(t, "mcb", "v1/"+BlobKey(srcDigest), []byte("hello\n"))
	before := pol.srv.List(t, "mcb", "v1/")

	objs, err := OpenObjects(ctx, url, "", getenv)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := s3.Open(ctx, url, s3.Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	own, err := s3.Open(ctx, TierURL(url), s3.Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prov := &goProvider{t: t, url: url, ep: pol.srv.Endpoint, getenv: getenv, live: map[string]context.CancelFunc{}}
	ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: objs, Remote: cas.UntrustedRemote(own, trusted), Store: store,
		Workspace: "w", CacheURL: url, Binary: src, Heartbeat: 200 * time.Millisecond, Lease: testLease, Poll: 50 * time.Millisecond,
		BootTimeout: 10 * time.Second, Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuf
	res, err := ex.Run(ctx, &sched.Job{
		Label: graph.Label{Pkg: "p", Name: "s"}, Key: cas.FromBytes([]byte("untrusted e2e")), Pkg: "p",
		Cmds:   []string{"tr a-z A-Z < in.txt > out.txt"},
		Inputs: []sched.Input{{Path: "p/in.txt", Digest: srcDigest, Size: 6, Source: src}},
		Outs:   []string{"p/out.txt"}, Log: &log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var slog lockedBuf
	sres, serr := ex.Run(ctx, &sched.Job{
		Label: graph.Label{Pkg: "p", Name: "deploy"}, Key: cas.FromBytes([]byte("untrusted secret")), Pkg: "p",
		Cmds: []string{"true"}, Secrets: map[string]string{"TOKEN": "never-sent"}, Log: &slog,
	})
	if cerr := ex.Close(ctx); cerr != nil {
		t.Fatal(cerr)
	}
	prov.done.Wait()
	if res.Err != nil {
		t.Fatalf("untrusted stage failed: %v\nlog:\n%s\nagents:\n%s", res.Err, log.String(), prov.stderr.String())
	}
	if len(prov.specs) == 0 || !prov.specs[0].Untrusted || prov.specs[0].Tags()[TagTier] != UntrustedTier {
		t.Fatalf("the runner was not launched as untrusted: %+v", prov.specs)
	}
	if len(res.Outputs) != 1 {
		t.Fatalf("outputs %+v", res.Outputs)
	}
	out := res.Outputs[0].Digest
	if _, ok := pol.srv.GetRaw(t, "mcb", "v1/untrusted/"+BlobKey(out)); !ok {
		t.Errorf("the output is not in the untrusted tier")
	}
	after := pol.srv.List(t, "mcb", "v1/")
	for _, k := range after {
		if !strings.HasPrefix(k, "v1/untrusted/") && !contains(before, k) {
			t.Errorf("the untrusted build wrote %s, outside its tier", k)
		}
	}
	if !contains(after, "v1/untrusted/"+RunDir(ex.RunID())+objDone) {
		t.Errorf("the run's objects are not under untrusted/runs/: %v", after)
	}
	if serr != nil || sres.Err == nil || !strings.Contains(sres.Err.Error(), "untrusted build's runners get none") {
		t.Errorf("an untrusted stage naming a secret: %v, %v; want refused", sres, serr)
	}
	for _, k := range after {
		if strings.HasSuffix(k, "/"+objSecrets) {
			t.Errorf("secrets object written: %s", k)
		}
	}
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// TestUntrustedAgentRefusesSecrets: a job under untrusted/runs/ that names
// secrets (the coordinator never writes one; the untrusted identity can)
// ends at once with why on an untrusted runner, which never waits for or
// reads a secrets object.
func TestUntrustedAgentRefusesSecrets(t *testing.T) {
	pe := newPoolEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := UntrustedTier + "/" + JobDir("r1", "j1")
	spec := JobSpec{Label: "//p:s", Cmds: []string{"true"}, SecretNames: []string{"TOKEN"}}
	if err := pe.objs.Put(ctx, dir+objJob, encode(spec)); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	err := RunAgent(ctx, AgentOptions{CacheURL: pe.url, RunID: "r1", JobID: "j1", Dir: t.TempDir(), Getenv: pe.getenv,
		Stderr: &stderr, Objects: pe.objs, Remote: pe.remote, Untrusted: true, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pe.objs.Get(ctx, dir+objResult)
	if err != nil {
		t.Fatalf("no result: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(raw), "its runners get none") {
		t.Fatalf("result %s, want the job refused", raw)
	}
}
