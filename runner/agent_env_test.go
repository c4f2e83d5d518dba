package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// TestAgentCredentialsNotInStage: the agent's own credentials (its
// environment on the machine, as an instance's bootstrap or a local
// runner would give it, and the S3 credentials it works with) never enter
// a stage's environment. The stage, run through the whole runner protocol
// on a real MinIO, prints every variable it has and the environment of its
// sandbox's first process; the positive control is a variable the job
// declares, which the same probe shows.
func TestAgentCredentialsNotInStage(t *testing.T) {
	pe := newPoolEnv(t)
	ctx := context.Background()
	// The agent's process environment: what an attacker's stage would want.
	agentCreds := map[string]string{
		"AWS_ACCESS_KEY_ID":                  "AKIAAGENTPROCESSKEY1",
		"AWS_SECRET_ACCESS_KEY":              "agent-process-secret-value",
		"AWS_SESSION_TOKEN":                  "agent-process-session-token",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/agent-process-creds",
		"MC_GITHUB_TOKEN":                    "agent-process-github-token",
	}
	for k, v := range agentCreds {
		t.Setenv(k, v)
	}
	// And the S3 credentials the agent uses (MinIO's).
	s3Key, _ := pe.getenv("AWS_ACCESS_KEY_ID")
	s3Secret, _ := pe.getenv("AWS_SECRET_ACCESS_KEY")
	if s3Key == "" || s3Secret == "" {
		t.Fatal("the MinIO environment has no credentials")
	}

	store, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prov := &goProvider{t: t, url: pe.url, ep: pe.srv.Endpoint, getenv: pe.getenv, live: map[string]context.CancelFunc{}}
	ex, err := NewExecutor(ctx, Options{Provider: prov, Objects: pe.objs, Remote: pe.remote, Store: store,
		Workspace: "w", CacheURL: pe.url, Binary: "/bin/true", Heartbeat: 200 * time.Millisecond, Lease: testLease, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuf
	job := &sched.Job{
		Label: graph.Label{Pkg: "p", Name: "env"}, Key: cas.FromBytes([]byte("agent env probe")), Pkg: "p",
		Cmds: []string{"env | sort", "echo ---", "tr '\\0' '\\n' < /proc/1/environ || true"},
		Env:  map[string]string{"DECLARED_BY_JOB": "declared-value"},
		Log:  &log,
	}
	res, err := ex.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if cerr := ex.Close(ctx); cerr != nil {
		t.Fatal(cerr)
	}
	prov.done.Wait()
	out := log.String()
	if res.Err != nil {
		t.Fatalf("stage failed: %v\nlog:\n%s", res.Err, out)
	}
	if !strings.Contains(out, "DECLARED_BY_JOB=declared-value") {
		t.Fatalf("positive control: the probe does not show the job's own variable:\n%s", out)
	}
	for k, v := range agentCreds {
		if strings.Contains(out, v) || strings.Contains(out, k+"=") {
			t.Errorf("the stage saw the agent's %s:\n%s", k, out)
		}
	}
	for name, v := range map[string]string{"S3 access key": s3Key, "S3 secret key": s3Secret} {
		if strings.Contains(out, v) {
			t.Errorf("the stage saw the agent's %s:\n%s", name, out)
		}
	}
}
