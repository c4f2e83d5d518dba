package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/pipeline"
)

// runRunners is `mc runners list|reap`: the workspace's runner machines,
// and terminating those that should not be running (their run is over, or
// their mc:expires-at has passed; --all: every one).
func runRunners(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		printCmdHelp(e.stdout, "runners", "list|reap [FLAGS]", nil)
		fmt.Fprintln(e.stdout, "\nSubcommands:\n  list  the runners of this workspace, strays marked\n  reap  terminate the strays (--all: every runner)\n\nRun 'mc runners list --help' or 'mc runners reap --help' for their flags.")
		return nil
	}
	if len(args) == 0 {
		return usagef("usage: mc runners list|reap [--runners=local|ec2] [--all]")
	}
	if args[0] != "list" && args[0] != "reap" {
		return usagef("runners: unknown subcommand %q%s; the subcommands are list and reap", args[0], suggest(graph.Closest(args[0], []string{"list", "reap"})))
	}
	sub := args[0]
	fs := newFlags(e, "runners "+sub, "[--runners=local|ec2]")
	var kind, cacheURL, cacheDir string
	var all bool
	var stale time.Duration
	fs.StringVar(&kind, "runners", "", "local or ec2 (default: ec2 when WORKSPACE.mc sets runners)")
	fs.StringVar(&cacheURL, "cache", "", "shared cache URL (s3://bucket/prefix)")
	fs.StringVar(&cacheDir, "cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	fs.BoolVar(&all, "all", false, "reap: terminate every runner of the workspace, running builds' and kept ones too")
	fs.DurationVar(&stale, "stale", time.Minute, "a run whose coordinator is silent this long (on another host) is over")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	s, err := openSession(ctx, e, cacheDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	return pipeline.Runners(ctx, e.pipelineEnv(), s, pipeline.RunnersQuery{Sub: sub, Kind: kind, CacheURL: cacheURL, All: all, Stale: stale})
}
