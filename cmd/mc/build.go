package main

import (
	"context"
	"runtime"

	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/pipeline"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/ui"
)

type buildFlags struct {
	jobs        int
	keepGoing   bool
	noCache     bool
	deploy      bool
	check       bool // --check: preflight only (pipeline.Preflight)
	cacheDir    string
	output      string
	verbose     bool
	cachedLogs  bool   // --show-cached-logs
	color       string // --color
	keepSandbox bool
	cacheURL    string
	cacheWrite  bool
	remoteReq   bool
	runners     string
	keepRunner  string // --keep-runner (runners_setup.go)
	// affectedSince: build only what changed since this git revision (affected.go).
	affectedSince string
	obs           observeFlags // --explain, --profile, --history (observe.go)
	report        string       // --report=URL: tee events to mc serve (report.go)
	images        imageFlags   // --push, --registry (images.go)
	// untrusted: read the trusted tier, write only the untrusted one, no
	// secrets, a sandbox required (tier.go; SPEC §4a). mc serve sets it
	// for pull requests.
	untrusted bool
	sandbox   string // --sandbox: auto or required (sandbox.go)
	// stageNetwork: host or private (sandbox.LocalOptions.PrivateNetwork).
	stageNetwork string
}

func (b *buildFlags) register(fs interface {
	IntVarP(*int, string, string, int, string)
	BoolVarP(*bool, string, string, bool, string)
	BoolVar(*bool, string, bool, string)
	StringVar(*string, string, string, string)
}) {
	fs.IntVarP(&b.jobs, "jobs", "j", runtime.NumCPU(), "stages run in parallel")
	fs.BoolVarP(&b.keepGoing, "keep-going", "k", false, "after a failure, go on with everything that does not depend on it")
	fs.BoolVar(&b.noCache, "nocache", false, "ignore every cache for this invocation")
	fs.BoolVar(&b.deploy, "deploy", false, "also run deploy stages")
	fs.BoolVar(&b.check, "check", false, "run nothing: check that the build has what it needs (with --deploy: a registry for the images it pushes, the secrets of its deploy stages); exit 2 listing what is missing")
	fs.StringVar(&b.cacheDir, "cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	fs.StringVar(&b.output, "output", "text", "text, or json: one event per line")
	fs.BoolVarP(&b.verbose, "verbose", "v", false, "also show cached and skipped stages, and the logs of cached ones")
	fs.BoolVar(&b.cachedLogs, "show-cached-logs", false, "replay the stored logs of cached stages (marked \"(replayed)\")")
	fs.StringVar(&b.color, "color", "auto", "auto (on a terminal, unless NO_COLOR is set), always or never")
	fs.BoolVar(&b.keepSandbox, "sandbox-debug", false, "keep each stage's sandbox directory and print where it is")
	fs.StringVar(&b.cacheURL, "cache", "", "shared cache URL (s3://bucket/prefix); overrides WORKSPACE.mc and MC_CACHE")
	fs.BoolVar(&b.cacheWrite, "cache-write", true, "write results to the shared cache (false: read it only; also MC_CACHE_WRITE=0)")
	fs.BoolVar(&b.remoteReq, "remote-required", false, "a failing shared cache is an error (exit 3) instead of a warning")
	fs.StringVar(&b.runners, "runners", "", "where stages run: none (this machine), local (agent processes here, the runner protocol) or ec2; default ec2 when WORKSPACE.mc sets runners (also MC_RUNNERS)")
	fs.StringVar(&b.keepRunner, "keep-runner", "", "keep the runner of this stage (until its TTL) and print how to reach it")
	fs.StringVar(&b.affectedSince, "affected-since", "", "only the stages affected by changes since git revision REV (no pattern: //...)")
	fs.BoolVar(&b.images.push, "push", false, "push the images built that have a repository (--deploy pushes too)")
	fs.StringVar(&b.images.registry, "registry", "", "registry HOST[:PORT][/PATH] images are pushed to; overrides MC_REGISTRY and WORKSPACE.mc")
	fs.StringVar(&b.sandbox, "sandbox", "auto", "auto: without a working sandbox, run stages unsandboxed (said, results kept on this machine); required: exit 3 instead")
	b.obs.register(fs)
	fs.StringVar(&b.report, "report", "", "also stream the events to the mc serve at URL (token: MC_REPORT_TOKEN)")
	fs.BoolVar(&b.untrusted, "untrusted", false, "build untrusted code (a pull request): read trusted results, write only the untrusted tier; no secrets; a sandbox is required")
	fs.StringVar(&b.stageNetwork, "stage-network", "host", "stages with network = True use the host's network (host), or a namespace of their own with NAT that cannot reach the metadata service, loopback or the host's addresses (private; needs root, pasta and nft)")
}

func runBuild(ctx context.Context, e *env, args []string) error {
	return build(ctx, e, args, false)
}

func runTest(ctx context.Context, e *env, args []string) error {
	return build(ctx, e, args, true)
}

func build(ctx context.Context, e *env, args []string, test bool) error {
	name := "build"
	if test {
		name = "test"
	}
	var bf buildFlags
	fs := newFlags(e, name, "[FLAGS] PATTERN...")
	bf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	defaultAffectedPatterns(fs, bf.affectedSince)
	if fs.NArg() == 0 {
		return usagef("%s: no targets given (try //...)", name)
	}
	if bf.output != "text" && bf.output != "json" {
		return usagef("--output must be text or json, not %q", bf.output)
	}
	if bf.jobs < 1 {
		return usagef("-j must be at least 1")
	}
	if bf.color != "auto" && bf.color != "always" && bf.color != "never" {
		return usagef("--color must be auto, always or never, not %q", bf.color)
	}
	if bf.untrusted && (bf.images.push || bf.deploy) {
		// Deploying and pushing write what trusted systems use.
		return usagef("--untrusted builds deploy nothing and push no images: drop --deploy and --push")
	}
	sandboxMode, err := sandbox.ParseSandboxMode(bf.sandbox)
	if err != nil {
		return usagef("%v", err)
	}
	privateNet, err := sandbox.ParseStageNetwork(bf.stageNetwork)
	if err != nil {
		return usagef("%v", err)
	}
	var sink event.Sink
	if bf.output == "json" {
		sink = ui.NewJSON(e.stdout)
	} else {
		sink = ui.NewTextFor(e.stderr, bf.verbose, bf.cachedLogs, bf.color, e.getenv)
	}
	return pipeline.Build(ctx, e.pipelineEnv(), pipeline.BuildOptions{
		Options: pipeline.Options{
			CacheDir: bf.cacheDir, Untrusted: bf.untrusted, NoCache: bf.noCache,
			Jobs: bf.jobs, JobsSet: fs.Changed("jobs"), KeepGoing: bf.keepGoing, Deploy: bf.deploy,
			CacheURL: bf.cacheURL, CacheWrite: bf.cacheWrite, CacheWriteSet: fs.Changed("cache-write"),
			RemoteRequired: bf.remoteReq, Runners: bf.runners, KeepRunner: bf.keepRunner, KeepSandbox: bf.keepSandbox,
			Push: bf.images.push, Registry: bf.images.registry, Sandbox: sandboxMode, PrivateNetwork: privateNet,
			JSON: bf.output == "json",
		},
		Command: name, Test: test, Patterns: fs.Args(), AffectedSince: bf.affectedSince,
		Sink: sink, Summary: bf.output != "json", Report: bf.report,
		Explain: bf.obs.explain, Profile: bf.obs.profile, History: bf.obs.history,
		Check: bf.check,
	})
}

// imageFlags are the build flags about images.
type imageFlags struct {
	push     bool
	registry string
}

// observeFlags are the build flags about looking at a build rather than
// running it: --explain, --profile, --history.
type observeFlags struct {
	explain bool
	profile string
	history int
}

func (f *observeFlags) register(fs interface {
	IntVarP(*int, string, string, int, string)
	BoolVar(*bool, string, bool, string)
	StringVar(*string, string, string, string)
}) {
	fs.BoolVar(&f.explain, "explain", false, "print why each stage that ran had to run")
	fs.StringVar(&f.profile, "profile", "", "write a Chrome trace of the build to `FILE` (chrome://tracing, ui.perfetto.dev)")
	fs.IntVarP(&f.history, "history", "", pipeline.DefaultHistory, "entries of each stage's run history to keep (for mc explain)")
}

// pipelineEnv is e as the build pipeline sees it.
func (e *env) pipelineEnv() pipeline.Env {
	return pipeline.Env{Stdout: e.stdout, Stderr: e.stderr, Dir: e.dir, Getenv: e.getenv}
}
