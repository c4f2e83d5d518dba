package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/runner"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
)

// RunnersSetting is where stages run: --runners, else MC_RUNNERS, else "ec2"
// when WORKSPACE.mc configures runners, else "none" (this machine's sandbox).
func RunnersSetting(getenv func(string) (string, bool), ws *graph.Workspace, flag string) (string, error) {
	v := flag
	if v == "" {
		v, _ = getenv("MC_RUNNERS")
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
	return "", errkind.Usagef("--runners=%s: want none, local or ec2", v)
}

// RunnerWorkspace is the mc:workspace tag: the workspace's name, else a name
// derived from its root.
func RunnerWorkspace(s *session.Session) string {
	if s.WS.Name != "" {
		return s.WS.Name
	}
	h := sha256.Sum256([]byte(s.Root))
	return filepath.Base(s.Root) + "-" + hex.EncodeToString(h[:4])
}

// NewProvider returns the provider named kind ("local" or "ec2").
func NewProvider(ctx context.Context, getenv func(string) (string, bool), s *session.Session, kind string) (runner.Provider, error) {
	switch kind {
	case "local":
		return &runner.LocalProvider{Dir: filepath.Join(s.Tier, "runners", "local")}, nil
	case "ec2":
		r := s.WS.Runners
		if r == nil {
			return nil, errkind.Usagef("--runners=ec2: WORKSPACE.mc sets no runners = ec2(...) (region, subnet, security_groups, ami, instance_type)")
		}
		ep, _ := getenv("MC_EC2_ENDPOINT")
		profile := r.InstanceProfile
		if v, ok := getenv("MC_EC2_INSTANCE_PROFILE"); ok && v != "" {
			profile = v // the environment overrides WORKSPACE.mc, as for every setting
		}
		untrustedProfile := r.UntrustedInstanceProfile
		if v, ok := getenv("MC_EC2_UNTRUSTED_INSTANCE_PROFILE"); ok && v != "" {
			untrustedProfile = v
		}
		p, err := runner.NewEC2(ctx, runner.EC2Options{
			Region: r.Region, Subnet: r.Subnet, SecurityGroups: r.SecurityGroups, AMI: r.AMI,
			InstanceType: r.InstanceType, Endpoint: ep, Getenv: getenv, InstanceProfile: profile,
			UntrustedInstanceProfile: untrustedProfile,
		})
		if err != nil {
			return nil, errkind.Usagef("ec2 runners: %v", err)
		}
		return p, nil
	}
	return nil, errkind.Usagef("--runners=%s: want local or ec2", kind)
}

// envDuration reads a duration tuning variable (MC_RUNNER_*); 0 when unset.
func envDuration(getenv func(string) (string, bool), name string) (time.Duration, error) {
	v, ok := getenv(name)
	if !ok || v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errkind.Usagef("%s=%q: %v", name, v, err)
	}
	return d, nil
}

// setupRunners returns the executor stages run on: local itself with
// --runners=none, else a runner.Executor (and the function ending its run,
// which terminates every runner it launched). jobsSet says whether -j was
// given: without it, ec2 runs max_instances stages at once.
func (p *Pipeline) setupRunners(ctx context.Context, jobs *int, g *graph.Graph) (sched.Executor, func(), error) {
	e, s, bf, remote, local, notify := p.env, p.s, p.opts, p.remote, p.local, p.warn
	jobsSet := bf.JobsSet
	kind, err := RunnersSetting(e.Getenv, s.WS, bf.Runners)
	if err != nil {
		return nil, nil, err
	}
	if kind == "none" {
		if bf.KeepRunner != "" {
			return nil, nil, errkind.Usagef("--keep-runner needs remote runners (--runners=local or ec2)")
		}
		return local, func() {}, nil
	}
	if remote == nil {
		return nil, nil, errkind.Usagef("--runners=%s needs a shared cache: runners exchange jobs, inputs and outputs through it; set cache = \"s3://…\" in WORKSPACE.mc, --cache or MC_CACHE", kind)
	}
	var keep graph.Label
	if bf.KeepRunner != "" {
		keep, err = graph.ParseLabel(bf.KeepRunner, s.RelDir)
		if err != nil {
			return nil, nil, errkind.Usagef("--keep-runner: %v", err)
		}
		if g.Targets[keep] == nil {
			return nil, nil, errkind.Usagef("--keep-runner: %s names no target", keep)
		}
	}
	if !bf.JSON {
		notify = func(msg string) { fmt.Fprintf(e.Stderr, "mc: %s\n", msg) }
	}
	prov, err := NewProvider(ctx, e.Getenv, s, kind)
	if err != nil {
		return nil, nil, err
	}
	url := RemoteURL(e.Getenv, s.WS, bf.CacheURL)
	ep, _ := e.Getenv("MC_S3_ENDPOINT")
	region, _ := e.Getenv("AWS_REGION")
	objs, err := runner.OpenObjects(ctx, url, ep, e.Getenv)
	if err != nil {
		return nil, nil, errkind.Usagef("shared cache: %v", err)
	}
	opts := runner.Options{
		Provider: prov, Objects: objs, Remote: remote, Store: s.Store, Workspace: RunnerWorkspace(s),
		CacheURL: url, Endpoint: ep, Region: region, Keep: keep, Fallback: local, Notify: notify,
		Untrusted: bf.Untrusted, // runnersecrets: untrusted/runs/, the untrusted identity, no secrets
		Machine: func(l graph.Label) map[string]string {
			if t := g.Targets[l]; t != nil {
				return t.Machine
			}
			return nil
		},
	}
	opts.Binary, _ = e.Getenv("MC_RUNNER_BINARY")
	opts.BakedDir, _ = e.Getenv("MC_RUNNER_BAKED_DIR")
	// Wake-ups (runner/notify.go): local runners reach this machine; EC2
	// runners only when MC_RUNNER_NOTIFY names an address they can reach.
	if kind == "local" {
		opts.NotifyListen = "127.0.0.1:0"
	}
	if v, ok := e.Getenv("MC_RUNNER_NOTIFY"); ok && v != "" {
		opts.NotifyListen = v
		if v == "none" {
			opts.NotifyListen = ""
		} else if host, _, err := net.SplitHostPort(v); err != nil || host == "" || host == "0.0.0.0" || host == "::" {
			return nil, nil, errkind.Usagef("MC_RUNNER_NOTIFY=%q: want HOST:PORT, the address runners reach this machine at (not a wildcard), or none", v)
		}
	}
	if v, _ := e.Getenv("MC_RUNNER_DEBUG"); v == "1" {
		opts.Debug = func(format string, args ...any) {
			fmt.Fprintf(e.Stderr, "mc: %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	// Local runners: -j bounds them; the pool's cap is the default.
	opts.MaxInstances, opts.Warm = *jobs, -1
	if r := s.WS.Runners; r != nil && kind == "ec2" {
		opts.MaxInstances, opts.TTL, opts.Warm = r.MaxInstances, r.TTL, r.Warm
		if !jobsSet {
			*jobs = r.MaxInstances
		}
	}
	if v, ok := e.Getenv("MC_RUNNER_WARM"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, errkind.Usagef("MC_RUNNER_WARM=%q: want a number of spare runners (0 or more)", v)
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
		v, err := envDuration(e.Getenv, name)
		if err != nil {
			return nil, nil, err
		}
		if v > 0 {
			*d = v
		}
	}
	if v, ok := e.Getenv("MC_RUNNER_RETRIES"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, errkind.Usagef("MC_RUNNER_RETRIES=%q: want a number of retries (0 or more)", v)
		}
		opts.MaxRetries = n
		if n == 0 {
			opts.MaxRetries = -1
		}
	}
	ex, err := runner.NewExecutor(ctx, opts)
	if err != nil {
		return nil, nil, errkind.Infra(err)
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
