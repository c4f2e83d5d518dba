package main

import (
	"context"

	"github.com/mc-build/mc/pipeline"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/watch"
)

func runWatch(ctx context.Context, e *env, args []string) error {
	var bf buildFlags
	var test bool
	fs := newFlags(e, "watch", "[FLAGS] PATTERN...")
	bf.register(fs)
	fs.BoolVar(&test, "test", false, "also run the test stages among the patterns, as mc test")
	// mc build's flags that make no sense for rebuilds on this machine of
	// what saves affect: not shown, and refused.
	unsupported := []string{"affected-since", "report", "explain", "profile", "history", "runners", "keep-runner", "deploy", "push", "check"}
	for _, f := range unsupported {
		_ = fs.MarkHidden(f)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, f := range unsupported {
		if fs.Changed(f) {
			return usagef("watch: --%s is not supported: mc watch builds, on this machine, what saved files affect (mc build has it)", f)
		}
	}
	if fs.NArg() == 0 {
		return usagef("watch: no targets given (try //...)")
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
	sandboxMode, err := sandbox.ParseSandboxMode(bf.sandbox)
	if err != nil {
		return usagef("%v", err)
	}
	privateNet, err := sandbox.ParseStageNetwork(bf.stageNetwork)
	if err != nil {
		return usagef("%v", err)
	}
	opts := pipeline.Options{
		CacheDir: bf.cacheDir, Untrusted: bf.untrusted, NoCache: bf.noCache,
		Jobs: bf.jobs, JobsSet: fs.Changed("jobs"), KeepGoing: bf.keepGoing,
		CacheURL: bf.cacheURL, CacheWrite: bf.cacheWrite, CacheWriteSet: fs.Changed("cache-write"),
		RemoteRequired: bf.remoteReq, Runners: "none", KeepSandbox: bf.keepSandbox,
		Registry: bf.images.registry, Sandbox: sandboxMode, PrivateNetwork: privateNet,
		JSON: bf.output == "json",
	}
	return watch.Run(ctx, watch.Config{
		Env: e.pipelineEnv(), Options: opts, Patterns: fs.Args(), Test: test,
		JSON: bf.output == "json", Verbose: bf.verbose, CachedLogs: bf.cachedLogs, Color: bf.color,
	})
}
