package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mc-build/mc/cachegc"
	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/pipeline"
)

// mc cache stats|gc|purge: inspect and trim the local and remote cache
// (SPEC §6), over package cachegc.

type cacheCommand struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

func cacheCommands() []cacheCommand {
	return []cacheCommand{
		{"stats", "what the local cache holds, recent runs' hit rates, the shared cache in use", runCacheStats},
		{"gc", "trim the local cache to --max-size, least recently used results first", runCacheGC},
		{"purge", "forget the cached results of LABELs (or --all), locally and with --remote remotely", runCachePurge},
	}
}

func runCache(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		printCacheUsage(e.stderr)
		return usagef("cache: no subcommand given (stats, gc or purge)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		printCacheUsage(e.stdout)
		return nil
	}
	var names []string
	for _, c := range cacheCommands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
		names = append(names, c.name)
	}
	return usagef("cache: unknown subcommand %q%s; the subcommands are stats, gc and purge", args[0], suggest(graph.Closest(args[0], names)))
}

func printCacheUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: mc cache SUBCOMMAND [FLAGS]\n\nSubcommands:")
	for _, c := range cacheCommands() {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mc cache SUBCOMMAND --help' for its flags.")
}

// outputFlag checks --output.
func outputFlag(v string) error {
	if v != "text" && v != "json" {
		return usagef("--output must be text or json, not %q", v)
	}
	return nil
}

func runCacheStats(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache stats", "[FLAGS]")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	cacheURL := flags.String("cache", "", "shared cache URL (s3://bucket/prefix); overrides WORKSPACE.mc and MC_CACHE")
	output := flags.String("output", "text", "text or json")
	nRuns := flags.Int("runs", cachegc.DefaultRecentRuns, "how many of this workspace's latest runs to show")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("cache stats takes no arguments")
	}
	if err := outputFlag(*output); err != nil {
		return err
	}
	if *nRuns < 0 {
		return usagef("--runs must not be negative")
	}
	c, err := cachegc.OpenDirs(ctx, e.dir, *cacheDir, e.getenv, true)
	if err != nil {
		return err
	}
	defer c.Close()
	remote, rerr := pipeline.OpenRemote(ctx, e.getenv, c.WS, *cacheURL)
	st, err := cachegc.CollectStats(ctx, c, *nRuns, remote, rerr)
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := cachegc.WriteJSON(e.stdout, st); err != nil {
			return errkind.Infra(err)
		}
	} else {
		cachegc.PrintStats(e.stdout, st)
	}
	return rerr
}

func runCacheGC(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache gc", "[FLAGS]")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	output := flags.String("output", "text", "text or json")
	maxSize := flags.String("max-size", "", "trim the blobs to `SIZE` (e.g. 500M, 2G, 0: empty the cache; K, M, G, T are powers of 1024);\n"+
		"without it, gc removes only what no cached result needs")
	wait := flags.Duration("wait", cachegc.GCLockWait, "how long to wait for running builds to release the cache")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("cache gc takes no arguments (did you mean --max-size=%s?)", flags.Arg(0))
	}
	if err := outputFlag(*output); err != nil {
		return err
	}
	limit := int64(-1)
	if flags.Changed("max-size") {
		n, err := cachegc.ParseSize(*maxSize)
		if err != nil {
			return usagef("--max-size: %v", err)
		}
		limit = n
	}
	c, err := cachegc.OpenDirs(ctx, e.dir, *cacheDir, e.getenv, false)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := cachegc.Collect(ctx, c, limit, *wait, e.stderr, e.getenv)
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := cachegc.WriteJSON(e.stdout, rep); err != nil {
			return errkind.Infra(err)
		}
		return nil
	}
	cachegc.PrintReport(e.stdout, rep)
	return nil
}

func runCachePurge(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache purge", "[FLAGS] LABEL... | --all")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	cacheURL := flags.String("cache", "", "shared cache URL (s3://bucket/prefix); overrides WORKSPACE.mc and MC_CACHE")
	output := flags.String("output", "text", "text or json")
	all := flags.Bool("all", false, "forget every result and remove every blob of the local cache")
	remoteToo := flags.Bool("remote", false, "also delete them from the shared cache (--all: everything under its prefix)")
	wait := flags.Duration("wait", cachegc.GCLockWait, "--all: how long to wait for running builds to release the cache")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if err := outputFlag(*output); err != nil {
		return err
	}
	switch {
	case *all && flags.NArg() > 0:
		return usagef("cache purge: give LABELs or --all, not both")
	case !*all && flags.NArg() == 0:
		return usagef("cache purge: no labels given (or --all for everything)")
	}
	var res cachegc.Purged
	if *all {
		c, err := cachegc.OpenDirs(ctx, e.dir, *cacheDir, e.getenv, *remoteToo)
		if err != nil {
			return err
		}
		defer c.Close()
		remote, err := purgeRemote(ctx, e, c.WS, *cacheURL, *remoteToo)
		if err != nil {
			return err
		}
		if err := cachegc.PurgeAll(ctx, c, remote, *wait, e.stderr, e.getenv, &res); err != nil {
			return err
		}
	} else {
		s, err := openSession(ctx, e, *cacheDir)
		if err != nil {
			return err
		}
		defer s.Close(ctx)
		remote, err := purgeRemote(ctx, e, s.WS, *cacheURL, *remoteToo)
		if err != nil {
			return err
		}
		if err := cachegc.PurgeLabels(ctx, s, remote, flags.Args(), &res); err != nil {
			return err
		}
	}
	if *output == "json" {
		if err := cachegc.WriteJSON(e.stdout, &res); err != nil {
			return errkind.Infra(err)
		}
		return nil
	}
	cachegc.PrintPurged(e.stdout, &res)
	return nil
}

// purgeRemote opens the shared cache for --remote (nil without it); it is
// an error to ask for it with none configured.
func purgeRemote(ctx context.Context, e *env, ws *graph.Workspace, cacheURL string, remoteToo bool) (cas.Remote, error) {
	if !remoteToo {
		return nil, nil
	}
	r, err := pipeline.OpenRemote(ctx, e.getenv, ws, cacheURL)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, usagef("cache purge --remote: no shared cache is configured (--cache, MC_CACHE or cache = in WORKSPACE.mc)")
	}
	return r, nil
}
