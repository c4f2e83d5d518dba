package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mc-build/mc/runner"
	"github.com/mc-build/mc/sandbox"
)

// runAgent is `mc agent`: the runner side of the remote protocol, started by
// a runner's bootstrap (user-data). It reaches S3 only; credentials come from
// the instance role (EC2) or the environment (local runners).
func runAgent(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "agent", "--cache s3://BUCKET/PREFIX --run RUN --job JOB")
	var o runner.AgentOptions
	var region, stageNet string
	fs.StringVar(&o.CacheURL, "cache", "", "the shared cache the coordinator uses")
	fs.StringVar(&o.Endpoint, "endpoint", "", "S3-compatible endpoint (default: AWS, or MC_S3_ENDPOINT)")
	fs.StringVar(&region, "region", "", "the bucket's AWS region")
	fs.StringVar(&o.RunID, "run", "", "the run ID")
	fs.StringVar(&o.JobID, "job", "", "the job ID")
	fs.StringVar(&o.Dir, "dir", "", "scratch directory (default: a temporary one)")
	fs.StringVar(&o.Notify, "notify", "", "the coordinator's wake-up URL, when runners can reach it")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 2*time.Second, "heartbeat interval until the job sets its own")
	fs.DurationVar(&o.Poll, "poll", 50*time.Millisecond, "how often to look for the job while waiting for one")
	fs.BoolVar(&o.Untrusted, "untrusted", false, "an untrusted build's job: under the untrusted tier, outputs written there only")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", time.Hour, "end when no job came within this long (the run's end ends it sooner)")
	fs.StringVar(&stageNet, "stage-network", "private", "stages with network = True get a namespace of their own with NAT, cut off from the metadata service and the agent (private), or the machine's (host)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.CacheURL == "" || o.RunID == "" || o.JobID == "" {
		return usagef("agent: --cache, --run and --job are required")
	}
	var err error
	if o.PrivateNetwork, err = sandbox.ParseStageNetwork(stageNet); err != nil {
		return usagef("agent: %v", err)
	}
	// A runner runs others' stages: never without the sandbox (exit 3).
	if err := sandbox.CheckSandbox(ctx, o.PrivateNetwork); err != nil {
		return &infraError{fmt.Errorf("agent: %w", err)}
	}
	o.Getenv = func(k string) (string, bool) {
		if k == "AWS_REGION" && region != "" {
			return region, true
		}
		return e.getenv(k)
	}
	o.Stderr = e.stderr
	if err := runner.RunAgent(ctx, o); err != nil {
		return &infraError{err}
	}
	return nil
}
