package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mc-build/mc/builtins"
	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/sandbox/runc"
)

// mc cache stats|gc|purge: inspect and trim the local and remote cache
// (SPEC §6). The cache directory holds:
//
//	cas/        the blob store (cas.Store)
//	mc.db       the action cache and run history (cas.DB)
//	gc.lock     held exclusively by gc (and purge --all), shared by builds
//	sandbox/    the executor's sandboxes: sb-* per stage, worker-* per worker
//	mounts/     cache mounts (toolchain caches), never touched here

// gcLockWait is how long gc waits for running builds by default (--wait).
const gcLockWait = time.Minute

// staleSandbox is how long a sandbox must have been left untouched before gc
// takes it for the leftover of a killed build: the gc lock keeps builds
// out, but not builds of an mc that does not take it.
const staleSandbox = time.Hour

// defaultRecentRuns is how many runs `mc cache stats` shows (--runs).
const defaultRecentRuns = 10

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

// cacheDirs is an opened local cache, and the workspace around the
// invoking directory if there is one (gc and stats work outside any).
type cacheDirs struct {
	dir   string
	store *cas.Store
	db    *cas.DB
	root  string           // "" outside a workspace
	ws    *graph.Workspace // empty outside a workspace
}

// openCacheDirs opens the cache; with workspace, also the workspace around
// the invoking directory, if any (for its runs and its shared cache). gc
// needs none: a broken WORKSPACE.mc must not keep it from running.
func openCacheDirs(ctx context.Context, e *env, cacheDir string, workspace bool) (*cacheDirs, error) {
	c := &cacheDirs{ws: &graph.Workspace{}}
	var err error
	if workspace {
		root, err := lang.FindWorkspace(e.dir)
		switch {
		case err == nil:
			ws, err := builtins.LoadWorkspace(ctx, root)
			if err != nil {
				return nil, err
			}
			c.root, c.ws = root, ws
		case !errors.Is(err, lang.ErrNoWorkspace):
			return nil, err
		}
	}
	if cacheDir == "" {
		if cacheDir, err = defaultCacheDir(e); err != nil {
			return nil, err
		}
	}
	if c.dir, err = filepath.Abs(cacheDir); err != nil {
		return nil, err
	}
	if c.store, err = cas.OpenStore(filepath.Join(c.dir, "cas")); err != nil {
		return nil, &infraError{fmt.Errorf("opening the cache: %w", err)}
	}
	if c.db, err = cas.OpenDB(filepath.Join(c.dir, "mc.db")); err != nil {
		return nil, &infraError{fmt.Errorf("opening the cache database: %w", err)}
	}
	return c, nil
}

// outputFlag checks --output.
func outputFlag(v string) error {
	if v != "text" && v != "json" {
		return usagef("--output must be text or json, not %q", v)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- stats ----

type runJSON struct {
	ID      int64     `json:"id"`
	Started time.Time `json:"started"`
	Command string    `json:"command"`
	history.RunCounts
	// HitRate is cached/(built+cached+failed); null when nothing was
	// counted. Without Exact, Cached and HitRate are lower bounds.
	HitRate *float64 `json:"hit_rate"`
	Exact   bool     `json:"exact"`
}

type cacheStatsJSON struct {
	CacheDir string `json:"cache_dir"`
	Local    struct {
		cas.StoreUsage
		Results int   `json:"results"`
		DBBytes int64 `json:"db_bytes"`
	} `json:"local"`
	Workspace string    `json:"workspace,omitempty"`
	Runs      []runJSON `json:"runs"`
	// Overall sums the runs whose counts are exact.
	Overall struct {
		Runs int `json:"runs"`
		history.RunCounts
		HitRate *float64 `json:"hit_rate"`
	} `json:"overall"`
	Remote      *string `json:"remote"` // null: no shared cache configured
	RemoteError string  `json:"remote_error,omitempty"`
}

func runCacheStats(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache stats", "[FLAGS]")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	cacheURL := flags.String("cache", "", "shared cache URL (s3://bucket/prefix); overrides WORKSPACE.mc and MC_CACHE")
	output := flags.String("output", "text", "text or json")
	nRuns := flags.Int("runs", defaultRecentRuns, "how many of this workspace's latest runs to show")
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
	c, err := openCacheDirs(ctx, e, *cacheDir, true)
	if err != nil {
		return err
	}
	defer c.db.Close()

	var st cacheStatsJSON
	st.CacheDir = c.dir
	if st.Local.StoreUsage, err = c.store.Usage(ctx); err != nil {
		return &infraError{err}
	}
	if st.Local.Results, err = c.db.CountActions(ctx); err != nil {
		return &infraError{err}
	}
	if st.Local.DBBytes, err = c.db.Size(ctx); err != nil {
		return &infraError{err}
	}
	st.Runs = []runJSON{}
	if c.root != "" && *nRuns > 0 {
		st.Workspace = c.root
		runs, err := history.RecentRuns(ctx, c.db, c.root, *nRuns)
		if err != nil {
			return &infraError{err}
		}
		for _, r := range runs {
			j := runJSON{ID: r.ID, Started: r.Started, Command: r.Command, RunCounts: r.RunCounts, Exact: r.Exact}
			if rate, ok := r.HitRate(); ok {
				j.HitRate = &rate
			} else if !r.Exact {
				// Nothing built or failed, and no counts: a null build.
				one := 1.0
				j.HitRate = &one
			}
			st.Runs = append(st.Runs, j)
			if r.Exact {
				st.Overall.Runs++
				st.Overall.Built += r.Built
				st.Overall.Cached += r.Cached
				st.Overall.Failed += r.Failed
			}
		}
		if rate, ok := st.Overall.RunCounts.HitRate(); ok {
			st.Overall.HitRate = &rate
		}
	}
	remote, rerr := openRemote(ctx, e, c.ws, *cacheURL)
	if rerr != nil {
		st.RemoteError = rerr.Error()
	} else if remote != nil {
		name := remote.String()
		st.Remote = &name
	}

	if *output == "json" {
		if err := writeJSON(e.stdout, st); err != nil {
			return &infraError{err}
		}
	} else {
		printCacheStats(e.stdout, &st)
	}
	return rerr
}

func printCacheStats(w io.Writer, st *cacheStatsJSON) {
	l := &st.Local
	fmt.Fprintf(w, "Local cache %s\n", st.CacheDir)
	fmt.Fprintf(w, "  blobs:    %d (%s)\n", l.Blobs, formatSize(l.Bytes))
	if l.TempFiles > 0 {
		fmt.Fprintf(w, "  temp:     %d files (%s)\n", l.TempFiles, formatSize(l.TempBytes))
	}
	fmt.Fprintf(w, "  results:  %d\n", l.Results)
	fmt.Fprintf(w, "  database: %s\n", formatSize(l.DBBytes))
	switch {
	case st.Workspace == "":
		fmt.Fprintln(w, "Recent runs: none shown (not in a workspace)")
	case len(st.Runs) == 0:
		fmt.Fprintf(w, "Recent runs of %s: none\n", st.Workspace)
	default:
		fmt.Fprintf(w, "Recent runs of %s, newest first:\n", st.Workspace)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  RUN\tSTARTED\tBUILT\tCACHED\tFAILED\tHIT RATE\tCOMMAND")
		inexact := 0
		for _, r := range st.Runs {
			cached, rate := strconv.Itoa(r.Cached), "-"
			if r.HitRate != nil {
				rate = formatRate(*r.HitRate)
			}
			if !r.Exact {
				inexact++
				switch {
				case r.Built+r.Failed == 0 && r.Cached == 0:
					cached = "all"
				case r.Cached == 0:
					cached, rate = "?", "?"
				default:
					cached, rate = ">="+cached, ">="+rate
				}
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%d\t%s\t%s\n", r.ID, r.Started.Local().Format("2006-01-02 15:04:05"),
				r.Built, cached, r.Failed, rate, r.Command)
		}
		tw.Flush()
		o := &st.Overall
		if o.Runs > 0 {
			rate := "-"
			if o.HitRate != nil {
				rate = formatRate(*o.HitRate)
			}
			fmt.Fprintf(w, "  overall (%d runs): %d built, %d cached, %d failed, hit rate %s\n", o.Runs, o.Built, o.Cached, o.Failed, rate)
		}
		if inexact > 0 {
			fmt.Fprintf(w, "  (%s recorded without stage counts: their cache hits are counted from the run\n"+
				"   history, which leaves out hits of the key a stage had before; ? is unknown)\n", plural(inexact, "run"))
		}
	}
	switch {
	case st.RemoteError != "":
		fmt.Fprintf(w, "Shared cache: unavailable (see below)\n")
	case st.Remote == nil:
		fmt.Fprintln(w, "Shared cache: none configured (--cache, MC_CACHE or cache = in WORKSPACE.mc)")
	default:
		fmt.Fprintf(w, "Shared cache: %s\n", *st.Remote)
	}
}

func formatRate(r float64) string { return strconv.Itoa(int(math.Round(r*100))) + "%" }

// ---- gc ----

// gcReportJSON is what gc (and purge --all) did.
type gcReportJSON struct {
	*cas.GCReport
	MaxSize          *int64 `json:"max_size"` // null: no limit
	SandboxesRemoved int    `json:"sandboxes_removed"`
	SandboxBytes     int64  `json:"sandbox_bytes_removed"`
	// Unpacked image filesystems (<cache>/rootfs) and, with --max-size=0,
	// pulled registry images (<cache>/images).
	ImageDirsRemoved int   `json:"image_dirs_removed"`
	ImageDirBytes    int64 `json:"image_dir_bytes_removed"`
	// Untrusted is what gc did to the untrusted tier (tier.go), with the
	// same limit; absent when there is none.
	Untrusted *cas.GCReport `json:"untrusted,omitempty"`
}

func runCacheGC(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache gc", "[FLAGS]")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	output := flags.String("output", "text", "text or json")
	maxSize := flags.String("max-size", "", "trim the blobs to `SIZE` (e.g. 500M, 2G, 0: empty the cache; K, M, G, T are powers of 1024);\n"+
		"without it, gc removes only what no cached result needs")
	wait := flags.Duration("wait", gcLockWait, "how long to wait for running builds to release the cache")
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
		n, err := parseSize(*maxSize)
		if err != nil {
			return usagef("--max-size: %v", err)
		}
		limit = n
	}
	c, err := openCacheDirs(ctx, e, *cacheDir, false)
	if err != nil {
		return err
	}
	defer c.db.Close()
	rep, err := collectGarbage(ctx, e, c, limit, *wait)
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := writeJSON(e.stdout, rep); err != nil {
			return &infraError{err}
		}
		return nil
	}
	r := rep.GCReport
	fmt.Fprintf(e.stdout, "Removed %s (%s), %s", plural(r.BlobsRemoved, "blob"), formatSize(r.BytesRemoved), plural(r.ResultsRemoved, "result"))
	if r.TempFilesRemoved > 0 {
		fmt.Fprintf(e.stdout, ", %s (%s)", plural(r.TempFilesRemoved, "temp file"), formatSize(r.TempBytesRemoved))
	}
	if rep.ImageDirsRemoved > 0 {
		fmt.Fprintf(e.stdout, ", %s (%s)", plural(rep.ImageDirsRemoved, "unpacked image"), formatSize(rep.ImageDirBytes))
	}
	if rep.SandboxesRemoved > 0 {
		fmt.Fprintf(e.stdout, ", %s (%s)", plural(rep.SandboxesRemoved, "leftover sandbox"), formatSize(rep.SandboxBytes))
	}
	fmt.Fprintln(e.stdout, ".")
	limitText := "no limit"
	if rep.MaxSize != nil {
		limitText = "max " + formatSize(*rep.MaxSize)
	}
	fmt.Fprintf(e.stdout, "Local cache: %s, %s -> %s, %s (%s); %d results left.\n",
		plural(r.BlobsBefore, "blob"), formatSize(r.BytesBefore), plural(r.BlobsAfter, "blob"), formatSize(r.BytesAfter),
		limitText, r.ResultsBefore-r.ResultsRemoved)
	if u := rep.Untrusted; u != nil {
		fmt.Fprintf(e.stdout, "Untrusted tier: removed %s (%s), %s; %s, %s left.\n", plural(u.BlobsRemoved, "blob"),
			formatSize(u.BytesRemoved), plural(u.ResultsRemoved, "result"), plural(u.BlobsAfter, "blob"), formatSize(u.BytesAfter))
	}
	return nil
}

// collectGarbage runs cas.GC to limit bytes (negative: no limit) under the
// exclusive gc lock, and removes leftover sandboxes.
func collectGarbage(ctx context.Context, e *env, c *cacheDirs, limit int64, wait time.Duration) (*gcReportJSON, error) {
	unlock, err := lockCacheForGC(ctx, e, c.dir, wait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := cas.GC(ctx, c.store, c.db, cas.GCOptions{MaxSize: limit})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &infraError{err}
	}
	rep := &gcReportJSON{GCReport: r}
	if limit >= 0 {
		rep.MaxSize = &limit
	}
	rep.SandboxesRemoved, rep.SandboxBytes, err = removeStaleSandboxes(ctx, filepath.Join(c.dir, "sandbox"), time.Now().Add(-staleSandbox))
	if err != nil {
		return nil, &infraError{fmt.Errorf("removing leftover sandboxes: %w", err)}
	}
	// Containers of stages whose mc was killed (runc outlived it): with the
	// lock held no build runs one. No runc here: there are none to clean.
	if rt, err := runc.Find(e.getenv); err == nil {
		if err := rt.Cleanup(filepath.Join(c.dir, "sandbox", "runc")); err != nil {
			return nil, &infraError{fmt.Errorf("removing leftover containers: %w", err)}
		}
	}
	// Unpacked image filesystems are derived from the store and unpacked
	// again on demand; no build uses them while gc holds the lock. Pulled
	// registry images would need the network again: only --max-size=0.
	dirs := []string{filepath.Join(c.dir, "rootfs")}
	if limit == 0 {
		dirs = append(dirs, filepath.Join(c.dir, "images"))
	}
	for _, d := range dirs {
		n, size, err := removeChildren(ctx, d)
		rep.ImageDirsRemoved += n
		rep.ImageDirBytes += size
		if err != nil {
			return nil, &infraError{fmt.Errorf("removing %s: %w", d, err)}
		}
	}
	if rep.Untrusted, err = collectUntrusted(ctx, c.dir, limit); err != nil {
		return nil, err
	}
	return rep, nil
}

// removeChildren removes every entry of dir (absent: nothing to do).
func removeChildren(ctx context.Context, dir string) (n int, size int64, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, ent := range ents {
		if err := ctx.Err(); err != nil {
			return n, size, err
		}
		p := filepath.Join(dir, ent.Name())
		bytes := treeSize(p)
		if err := removeTree(p); err != nil {
			return n, size, err
		}
		n++
		size += bytes
	}
	return n, size, nil
}

// lockCacheForGC takes <cache>/gc.lock exclusively, waiting up to wait for
// the builds that hold it shared.
func lockCacheForGC(ctx context.Context, e *env, dir string, wait time.Duration) (func() error, error) {
	p := filepath.Join(dir, "gc.lock")
	unlock, ok, err := flock.TryLock(p)
	if err != nil {
		return nil, &infraError{err}
	}
	if ok {
		return unlock, nil
	}
	fmt.Fprintf(e.stderr, "mc: builds are using the cache %s; waiting up to %s for them to finish...\n", dir, wait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err = flock.Lock(wctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &infraError{fmt.Errorf("the cache %s is still in use by running builds after %s (they hold %s); "+
			"try again when they finish, or pass a longer --wait", dir, wait, p)}
	}
	return unlock, nil
}

// removeStaleSandboxes removes the sandboxes under dir (sb-*, worker-*)
// in which nothing changed since cutoff: those of builds that were killed.
// A sandbox of a running stage keeps changing (its log, its outputs), and a
// sandbox kept with --sandbox-debug stays for a while too.
func removeStaleSandboxes(ctx context.Context, dir string, cutoff time.Time) (n int, size int64, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, ent := range ents {
		name := ent.Name()
		if !ent.IsDir() || !(strings.HasPrefix(name, "sb-") || strings.HasPrefix(name, "worker-")) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, size, err
		}
		p := filepath.Join(dir, name)
		bytes, recent := sandboxAge(p, cutoff)
		if recent {
			continue
		}
		if err := removeTree(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		size += bytes
	}
	return n, size, errors.Join(errs...)
}

// sandboxAge walks the sandbox at p: the bytes of its files, and whether
// anything in it was modified after cutoff (the walk stops there).
func sandboxAge(p string, cutoff time.Time) (bytes int64, recent bool) {
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: judged by the rest
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if info.ModTime().After(cutoff) {
			recent = true
			return filepath.SkipAll
		}
		if info.Mode().IsRegular() {
			bytes += info.Size()
		}
		return nil
	})
	return bytes, recent
}

// treeSize is the total size of the regular files under p.
func treeSize(p string) (bytes int64) {
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				bytes += info.Size()
			}
		}
		return nil
	})
	return bytes
}

// removeTree removes p; a stage may have left read-only directories, which
// are made writable (directories only: files may be hard links to blobs)
// before trying again.
func removeTree(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// ---- purge ----

type purgeLabelJSON struct {
	Label   string `json:"label"`
	Results int    `json:"results"`          // local results deleted
	Remote  int    `json:"remote,omitempty"` // remote results deleted (keys tried)
	Note    string `json:"note,omitempty"`
}

type purgeJSON struct {
	Labels        []purgeLabelJSON `json:"labels,omitempty"`
	All           *gcReportJSON    `json:"all,omitempty"`
	Results       int              `json:"results"`
	Remote        *string          `json:"remote"`
	RemoteDeleted int              `json:"remote_deleted"`
}

func runCachePurge(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cache purge", "[FLAGS] LABEL... | --all")
	cacheDir := flags.String("cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	cacheURL := flags.String("cache", "", "shared cache URL (s3://bucket/prefix); overrides WORKSPACE.mc and MC_CACHE")
	output := flags.String("output", "text", "text or json")
	all := flags.Bool("all", false, "forget every result and remove every blob of the local cache")
	remoteToo := flags.Bool("remote", false, "also delete them from the shared cache (--all: everything under its prefix)")
	wait := flags.Duration("wait", gcLockWait, "--all: how long to wait for running builds to release the cache")
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
	var (
		res purgeJSON
		err error
	)
	if *all {
		err = purgeAll(ctx, e, *cacheDir, *cacheURL, *remoteToo, *wait, &res)
	} else {
		err = purgeLabels(ctx, e, *cacheDir, *cacheURL, *remoteToo, flags.Args(), &res)
	}
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := writeJSON(e.stdout, &res); err != nil {
			return &infraError{err}
		}
		return nil
	}
	for _, l := range res.Labels {
		switch {
		case l.Note != "":
			fmt.Fprintf(e.stdout, "%s: %s\n", l.Label, l.Note)
		case res.Remote != nil:
			fmt.Fprintf(e.stdout, "%s: purged %s locally; deleted %s from %s\n", l.Label, plural(l.Results, "result"),
				plural(l.Remote, "action key"), *res.Remote)
		default:
			fmt.Fprintf(e.stdout, "%s: purged %s\n", l.Label, plural(l.Results, "result"))
		}
	}
	if a := res.All; a != nil {
		fmt.Fprintf(e.stdout, "Purged %s and %s (%s) from the local cache.\n",
			plural(a.ResultsRemoved, "result"), plural(a.BlobsRemoved, "blob"), formatSize(a.BytesRemoved))
		if res.Remote != nil {
			fmt.Fprintf(e.stdout, "Deleted %s from %s.\n", plural(res.RemoteDeleted, "object"), *res.Remote)
		}
	}
	return nil
}

// purgeRemote opens the shared cache for --remote; it is an error to ask
// for it with none configured.
func purgeRemote(ctx context.Context, e *env, ws *graph.Workspace, cacheURL string) (cas.Remote, error) {
	r, err := openRemote(ctx, e, ws, cacheURL)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, usagef("cache purge --remote: no shared cache is configured (--cache, MC_CACHE or cache = in WORKSPACE.mc)")
	}
	return r, nil
}

// purgeAll empties the local cache (gc to zero bytes) and, with remote,
// the shared one.
func purgeAll(ctx context.Context, e *env, cacheDir, cacheURL string, remoteToo bool, wait time.Duration, res *purgeJSON) error {
	c, err := openCacheDirs(ctx, e, cacheDir, remoteToo)
	if err != nil {
		return err
	}
	defer c.db.Close()
	var remote cas.Remote
	if remoteToo {
		if remote, err = purgeRemote(ctx, e, c.ws, cacheURL); err != nil {
			return err
		}
	}
	if res.All, err = collectGarbage(ctx, e, c, 0, wait); err != nil {
		return err
	}
	res.Results = res.All.ResultsRemoved
	if remote != nil {
		name := remote.String()
		res.Remote = &name
		if res.RemoteDeleted, err = remote.Purge(ctx); err != nil {
			return &infraError{fmt.Errorf("purging %s: %w", name, err)}
		}
	}
	return nil
}

// purgeLabels forgets the results of the stages named by args (labels or
// patterns, relative to the invoking directory) in every workspace sharing
// the cache. Their blobs go at the next gc. A label with no results that
// names nothing in the workspace is a usage error with the closest names.
func purgeLabels(ctx context.Context, e *env, cacheDir, cacheURL string, remoteToo bool, args []string, res *purgeJSON) error {
	s, err := openSession(ctx, e, cacheDir)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	var remote cas.Remote
	if remoteToo {
		if remote, err = purgeRemote(ctx, e, s.ws, cacheURL); err != nil {
			return err
		}
		name := remote.String()
		res.Remote = &name
	}
	var known []string // labels with results or history, loaded for the first pattern
	seen := map[string]bool{}
	var labels []string
	for _, a := range args {
		p, err := graph.ParsePattern(a, s.relDir)
		if err != nil {
			return err
		}
		var matched []string
		if p.Kind == graph.PatternTarget {
			l, err := purgeTarget(ctx, s, a, p.Label)
			if err != nil {
				return err
			}
			matched = []string{l}
		} else {
			if known == nil {
				if known, err = s.db.KnownLabels(ctx); err != nil {
					return &infraError{err}
				}
			}
			for _, k := range known {
				if l, err := graph.ParseLabel(k, ""); err == nil && p.MatchesPkg(l.Pkg) {
					matched = append(matched, k)
				}
			}
			if len(matched) == 0 {
				res.Labels = append(res.Labels, purgeLabelJSON{Label: p.String(), Note: "nothing cached matches"})
			}
		}
		for _, l := range matched {
			if !seen[l] {
				seen[l] = true
				labels = append(labels, l)
			}
		}
	}
	return purgeResults(ctx, s.db, remote, labels, res)
}

// purgeResults deletes the local results of labels and, with remote, every
// key the database knows for them from the shared cache.
func purgeResults(ctx context.Context, db *cas.DB, remote cas.Remote, labels []string, res *purgeJSON) error {
	for _, l := range labels {
		keys, local, err := db.KeysOf(ctx, l)
		if err != nil {
			return &infraError{err}
		}
		var localKeys []cas.Digest
		for _, k := range keys {
			if local[k] {
				localKeys = append(localKeys, k)
			}
		}
		entry := purgeLabelJSON{Label: l}
		if entry.Results, err = db.DeleteActions(ctx, localKeys); err != nil {
			return &infraError{err}
		}
		res.Results += entry.Results
		if remote != nil {
			// Every key the history knows: the shared cache may hold
			// results this machine no longer does.
			for _, k := range keys {
				if err := remote.DeleteAction(ctx, k); err != nil {
					return &infraError{fmt.Errorf("%s: deleting %s from %s: %w", l, k.Short(), remote.String(), err)}
				}
			}
			entry.Remote = len(keys)
			res.RemoteDeleted += len(keys)
		} else if entry.Results == 0 {
			entry.Note = "nothing cached"
		}
		res.Labels = append(res.Labels, entry)
	}
	return nil
}

// purgeTarget returns the label whose results `purge arg` (parsed as l)
// removes: l itself when the cache knows it, else the stage l names in the
// workspace (a stage, or one of its outputs). Anything else is a usage
// error naming the closest targets.
func purgeTarget(ctx context.Context, s *session, arg string, l graph.Label) (string, error) {
	keys, _, err := s.db.KeysOf(ctx, l.String())
	if err != nil {
		return "", &infraError{err}
	}
	if len(keys) > 0 {
		return l.String(), nil
	}
	_, g, err := s.loadGraph(ctx, []string{arg})
	if err != nil {
		return "", err
	}
	if t, ok := g.Targets[l]; ok {
		return t.Label.String(), nil
	}
	if st, ok := g.Outputs[graph.Label{Pkg: l.Pkg, Name: strings.TrimSuffix(l.Name, "/")}]; ok {
		return st.Label.String(), nil
	}
	pkg := g.Packages[l.Pkg]
	var cands []string
	for _, t := range pkg.Targets {
		cands = append(cands, ":"+t.Label.Name)
	}
	return "", usagef("%s names nothing: no target %q in %s%s", arg, l.Name, pkg.File, suggest(graph.Closest(":"+l.Name, cands)))
}

// ---- sizes ----

// parseSize reads a byte count: a number with an optional unit K, M, G, T
// (powers of 1024; "KB", "KiB" and lower case mean the same), or B.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (try 500M, 2G or 0)", s)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[strings.ToLower(m[2])]
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (try 500M, 2G or 0)", s)
	}
	v := f * float64(uint64(1)<<shift)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// sizeRE is a size: digits, maybe a fraction, maybe a unit.
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?(?:([kKmMgGtT])(?:[iI]?[bB])?|[bB])?$`)

// formatSize shows n bytes with a binary unit: "512 B", "1.5 KiB".
func formatSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || u == "TiB" {
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
		}
	}
	return "" // unreachable
}

func plural(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "x"):
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
