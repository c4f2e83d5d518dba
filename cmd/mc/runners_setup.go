package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/runner"
	"github.com/mc-build/mc/sched"
)

// runnersSetting is where stages run: --runners, else MC_RUNNERS, else "ec2"
// when WORKSPACE.mc configures runners, else "none" (this machine's sandbox).
func runnersSetting(e *env, ws *graph.Workspace, flag string) (string, error) {
	v := flag
	if v == "" {
		v, _ = e.getenv("MC_RUNNERS")
	}
	if v == "" {
		if ws != nil && ws.Runners != nil {
			return "ec2", nil
		}
		return "none", nil
	}
	switch v {
	case "none", "local", "ec2":
		return v, nil
	}
	return "", usagef("--runners=%s: want none, local or ec2", v)
}

// runnerWorkspace is the mc:workspace tag: the workspace's name, else a name
// derived from its root.
func runnerWorkspace(s *session) string {
	if s.ws.Name != "" {
		return s.ws.Name
	}
	h := sha256.Sum256([]byte(s.root))
	return filepath.Base(s.root) + "-" + hex.EncodeToString(h[:4])
}

// newProvider returns the provider named kind ("local" or "ec2").
func newProvider(ctx context.Context, e *env, s *session, kind string) (runner.Provider, error) {
	switch kind {
	case "local":
		return &runner.LocalProvider{Dir: filepath.Join(s.tier, "runners", "local")}, nil
	case "ec2":
		r := s.ws.Runners
		if r == nil {
			return nil, usagef("--runners=ec2: WORKSPACE.mc sets no runners = ec2(...) (region, subnet, security_groups, ami, instance_type)")
		}
		ep, _ := e.getenv("MC_EC2_ENDPOINT")
		profile := r.InstanceProfile
		if v, ok := e.getenv("MC_EC2_INSTANCE_PROFILE"); ok && v != "" {
			profile = v // the environment overrides WORKSPACE.mc, as for every setting
		}
		untrustedProfile := r.UntrustedInstanceProfile
		if v, ok := e.getenv("MC_EC2_UNTRUSTED_INSTANCE_PROFILE"); ok && v != "" {
			untrustedProfile = v
		}
		p, err := runner.NewEC2(ctx, runner.EC2Options{
			Region: r.Region, Subnet: r.Subnet, SecurityGroups: r.SecurityGroups, AMI: r.AMI,
			InstanceType: r.InstanceType, Endpoint: ep, Getenv: e.getenv, InstanceProfile: profile,
			UntrustedInstanceProfile: untrustedProfile,
		})
		if err != nil {
			return nil, usagef("ec2 runners: %v", err)
		}
		return p, nil
	}
	return nil, usagef("--runners=%s: want local or ec2", kind)
}

// envDuration reads a duration tuning variable (MC_RUNNER_*); 0 when unset.
func envDuration(e *env, name string) (time.Duration, error) {
	v, ok := e.getenv(name)
	if !ok || v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("%s=%q: %v", name, v, err)
	}
	return d, nil
}

// setupRunners returns the executor stages run on: local itself with
// --runners=none, else a runner.Executor (and the function ending its run,
// which terminates every runner it launched). jobsSet says whether -j was
// given: without it, ec2 runs max_instances stages at once.
func setupRunners(ctx context.Context, e *env, s *session, bf *buildFlags, jobsSet bool, remote cas.Remote,
	local sched.Executor, g *graph.Graph, notify func(string)) (sched.Executor, func(), error) {
	kind, err := runnersSetting(e, s.ws, bf.runners)
	if err != nil {
		return nil, nil, err
	}
	if kind == "none" {
		if bf.keepRunner != "" {
			return nil, nil, usagef("--keep-runner needs remote runners (--runners=local or ec2)")
		}
		return local, func() {}, nil
	}
	if remote == nil {
		return nil, nil, usagef("--runners=%s needs a shared cache: runners exchange jobs, inputs and outputs through it; set cache = \"s3://…\" in WORKSPACE.mc, --cache or MC_CACHE", kind)
	}
	var keep graph.Label
	if bf.keepRunner != "" {
		keep, err = graph.ParseLabel(bf.keepRunner, s.relDir)
		if err != nil {
			return nil, nil, usagef("--keep-runner: %v", err)
		}
		if g.Targets[keep] == nil {
			return nil, nil, usagef("--keep-runner: %s names no target", keep)
		}
	}
	if bf.output != "json" {
		notify = func(msg string) { fmt.Fprintf(e.stderr, "mc: %s\n", msg) }
	}
	prov, err := newProvider(ctx, e, s, kind)
	if err != nil {
		return nil, nil, err
	}
	url := remoteURL(e, s.ws, bf.cacheURL)
	ep, _ := e.getenv("MC_S3_ENDPOINT")
	region, _ := e.getenv("AWS_REGION")
	objs, err := runner.OpenObjects(ctx, url, ep, e.getenv)
	if err != nil {
		return nil, nil, usagef("shared cache: %v", err)
	}
	opts := runner.Options{
		Provider: prov, Objects: objs, Remote: remote, Store: s.store, Workspace: runnerWorkspace(s),
		CacheURL: url, Endpoint: ep, Region: region, Keep: keep, Fallback: local, Notify: notify,
		Untrusted: bf.untrusted, // runnersecrets: untrusted/runs/, the untrusted identity, no secrets
		Machine: func(l graph.Label) map[string]string {
			if t := g.Targets[l]; t != nil {
				return t.Machine
			}
			return nil
		},
	}
	opts.Binary, _ = e.getenv("MC_RUNNER_BINARY")
	opts.BakedDir, _ = e.getenv("MC_RUNNER_BAKED_DIR")
	// Wake-ups (runner/notify.go): local runners reach this machine; EC2
	// runners only when MC_RUNNER_NOTIFY names an address they can reach.
	if kind == "local" {
		opts.NotifyListen = "127.0.0.1:0"
	}
	if v, ok := e.getenv("MC_RUNNER_NOTIFY"); ok && v != "" {
		opts.NotifyListen = v
		if v == "none" {
			opts.NotifyListen = ""
		} else if host, _, err := net.SplitHostPort(v); err != nil || host == "" || host == "0.0.0.0" || host == "::" {
			return nil, nil, usagef("MC_RUNNER_NOTIFY=%q: want HOST:PORT, the address runners reach this machine at (not a wildcard), or none", v)
		}
	}
	if v, _ := e.getenv("MC_RUNNER_DEBUG"); v == "1" {
		opts.Debug = func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "mc: %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	// Local runners: -j bounds them; the pool's cap is the default.
	opts.MaxInstances, opts.Warm = bf.jobs, -1
	if r := s.ws.Runners; r != nil && kind == "ec2" {
		opts.MaxInstances, opts.TTL, opts.Warm = r.MaxInstances, r.TTL, r.Warm
		if !jobsSet {
			bf.jobs = r.MaxInstances
		}
	}
	if v, ok := e.getenv("MC_RUNNER_WARM"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, usagef("MC_RUNNER_WARM=%q: want a number of spare runners (0 or more)", v)
		}
		opts.Warm = n
	}
	// Tuning (and test) knobs: the protocol's timing.
	for name, d := range map[string]*time.Duration{
		"MC_RUNNER_TTL": &opts.TTL, "MC_RUNNER_HEARTBEAT": &opts.Heartbeat, "MC_RUNNER_LEASE": &opts.Lease,
		"MC_RUNNER_BOOT_TIMEOUT": &opts.BootTimeout, "MC_RUNNER_POLL": &opts.Poll,
		"MC_RUNNER_RESULT_POLL": &opts.ResultPoll, "MC_RUNNER_AGENT_POLL": &opts.AgentPoll,
		"MC_RUNNER_CAPACITY_BACKOFF": &opts.CapacityBackoff,
	} {
		v, err := envDuration(e, name)
		if err != nil {
			return nil, nil, err
		}
		if v > 0 {
			*d = v
		}
	}
	if v, ok := e.getenv("MC_RUNNER_RETRIES"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, usagef("MC_RUNNER_RETRIES=%q: want a number of retries (0 or more)", v)
		}
		opts.MaxRetries = n
		if n == 0 {
			opts.MaxRetries = -1
		}
	}
	ex, err := runner.NewExecutor(ctx, opts)
	if err != nil {
		return nil, nil, &infraError{err}
	}
	if notify != nil {
		notify(fmt.Sprintf("runners: %s, run %s", kind, ex.RunID()))
	}
	closeFn := func() {
		// Not the build's context: a Ctrl-C'd build must still end its runners.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ex.Close(cctx); err != nil && notify != nil {
			notify(err.Error())
		}
	}
	return ex, closeFn, nil
}
