// Package cachegc inspects and trims a local cache directory (mc cache
// stats, gc and purge): what it holds and the recent runs' hit rates, gc to
// a size (least recently used results first) with leftover sandboxes,
// containers and unpacked images, and purges of results by label. The
// cache directory holds:
//
//	cas/        the blob store (cas.Store)
//	mc.db       the action cache and run history (cas.DB)
//	gc.lock     held exclusively by gc (and purge --all), shared by builds
//	sandbox/    the executor's sandboxes: sb-* per stage, worker-* per worker
//	mounts/     cache mounts (toolchain caches), never touched here
package cachegc

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
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/sandbox/runc"
	"github.com/mc-build/mc/session"
)

// GCLockWait is how long gc waits for running builds by default (--wait).
const GCLockWait = time.Minute

// staleSandbox is how long a sandbox must have been left untouched before gc
// takes it for the leftover of a killed build: the gc lock keeps builds
// out, but not builds of an mc that does not take it.
const staleSandbox = time.Hour

// DefaultRecentRuns is how many runs `mc cache stats` shows (--runs).
const DefaultRecentRuns = 10

// Dirs is an opened local cache, and the workspace around the
// invoking directory if there is one (gc and stats work outside any).
type Dirs struct {
	Dir   string
	Store *cas.Store
	DB    *cas.DB
	Root  string           // "" outside a workspace
	WS    *graph.Workspace // empty outside a workspace
}

// OpenDirs opens the cache cacheDir ("": the default); with workspace,
// also the workspace around dir, if any (for its runs and its shared cache). gc
// needs none: a broken WORKSPACE.mc must not keep it from running.
func OpenDirs(ctx context.Context, dir, cacheDir string, getenv func(string) (string, bool), workspace bool) (*Dirs, error) {
	c := &Dirs{WS: &graph.Workspace{}}
	var err error
	if workspace {
		root, err := lang.FindWorkspace(dir)
		switch {
		case err == nil:
			ws, err := builtins.LoadWorkspace(ctx, root)
			if err != nil {
				return nil, err
			}
			c.Root, c.WS = root, ws
		case !errors.Is(err, lang.ErrNoWorkspace):
			return nil, err
		}
	}
	if cacheDir == "" {
		if cacheDir, err = session.DefaultCacheDir(getenv); err != nil {
			return nil, err
		}
	}
	if c.Dir, err = filepath.Abs(cacheDir); err != nil {
		return nil, err
	}
	if c.Store, err = cas.OpenStore(filepath.Join(c.Dir, "cas")); err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the cache: %w", err))
	}
	if c.DB, err = cas.OpenDB(filepath.Join(c.Dir, "mc.db")); err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the cache database: %w", err))
	}
	return c, nil
}

// Close closes the cache database.
func (c *Dirs) Close() error { return c.DB.Close() }

// WriteJSON writes v as indented JSON: the --output=json of the commands.
func WriteJSON(w io.Writer, v any) error {
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

// Stats is what `mc cache stats` shows.
type Stats struct {
	CacheDir string `json:"cache_dir"`
	Local    struct {
		StoreUsage
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

// CollectStats gathers what the cache c holds and the nRuns latest runs of
// its workspace. remote names the shared cache in use (nil: none), or
// remoteErr why it could not be opened.
func CollectStats(ctx context.Context, c *Dirs, nRuns int, remote cas.Remote, remoteErr error) (*Stats, error) {
	var err error
	var st Stats
	st.CacheDir = c.Dir
	if st.Local.StoreUsage, err = Usage(ctx, c.Store); err != nil {
		return nil, errkind.Infra(err)
	}
	if st.Local.Results, err = CountActions(ctx, c.DB); err != nil {
		return nil, errkind.Infra(err)
	}
	if st.Local.DBBytes, err = DBSize(ctx, c.DB); err != nil {
		return nil, errkind.Infra(err)
	}
	st.Runs = []runJSON{}
	if c.Root != "" && nRuns > 0 {
		st.Workspace = c.Root
		runs, err := history.RecentRuns(ctx, c.DB, c.Root, nRuns)
		if err != nil {
			return nil, errkind.Infra(err)
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
	if remoteErr != nil {
		st.RemoteError = remoteErr.Error()
	} else if remote != nil {
		name := remote.String()
		st.Remote = &name
	}
	return &st, nil
}

// PrintStats shows st as text.
func PrintStats(w io.Writer, st *Stats) {
	l := &st.Local
	fmt.Fprintf(w, "Local cache %s\n", st.CacheDir)
	fmt.Fprintf(w, "  blobs:    %d (%s)\n", l.Blobs, FormatSize(l.Bytes))
	if l.TempFiles > 0 {
		fmt.Fprintf(w, "  temp:     %d files (%s)\n", l.TempFiles, FormatSize(l.TempBytes))
	}
	fmt.Fprintf(w, "  results:  %d\n", l.Results)
	fmt.Fprintf(w, "  database: %s\n", FormatSize(l.DBBytes))
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

// Report is what gc (and purge --all) did.
type Report struct {
	*GCReport
	MaxSize          *int64 `json:"max_size"` // null: no limit
	SandboxesRemoved int    `json:"sandboxes_removed"`
	SandboxBytes     int64  `json:"sandbox_bytes_removed"`
	// Unpacked image filesystems (<cache>/rootfs) and, with --max-size=0,
	// pulled registry images (<cache>/images).
	ImageDirsRemoved int   `json:"image_dirs_removed"`
	ImageDirBytes    int64 `json:"image_dir_bytes_removed"`
	// Untrusted is what gc did to the untrusted tier (tier.go), with the
	// same limit; absent when there is none.
	Untrusted *GCReport `json:"untrusted,omitempty"`
}

// PrintReport shows what gc did, as text.
func PrintReport(w io.Writer, rep *Report) {
	r := rep.GCReport
	fmt.Fprintf(w, "Removed %s (%s), %s", plural(r.BlobsRemoved, "blob"), FormatSize(r.BytesRemoved), plural(r.ResultsRemoved, "result"))
	if r.TempFilesRemoved > 0 {
		fmt.Fprintf(w, ", %s (%s)", plural(r.TempFilesRemoved, "temp file"), FormatSize(r.TempBytesRemoved))
	}
	if rep.ImageDirsRemoved > 0 {
		fmt.Fprintf(w, ", %s (%s)", plural(rep.ImageDirsRemoved, "unpacked image"), FormatSize(rep.ImageDirBytes))
	}
	if rep.SandboxesRemoved > 0 {
		fmt.Fprintf(w, ", %s (%s)", plural(rep.SandboxesRemoved, "leftover sandbox"), FormatSize(rep.SandboxBytes))
	}
	fmt.Fprintln(w, ".")
	limitText := "no limit"
	if rep.MaxSize != nil {
		limitText = "max " + FormatSize(*rep.MaxSize)
	}
	fmt.Fprintf(w, "Local cache: %s, %s -> %s, %s (%s); %d results left.\n",
		plural(r.BlobsBefore, "blob"), FormatSize(r.BytesBefore), plural(r.BlobsAfter, "blob"), FormatSize(r.BytesAfter),
		limitText, r.ResultsBefore-r.ResultsRemoved)
	if u := rep.Untrusted; u != nil {
		fmt.Fprintf(w, "Untrusted tier: removed %s (%s), %s; %s, %s left.\n", plural(u.BlobsRemoved, "blob"),
			FormatSize(u.BytesRemoved), plural(u.ResultsRemoved, "result"), plural(u.BlobsAfter, "blob"), FormatSize(u.BytesAfter))
	}
}

// Collect runs cas.GC on c to limit bytes (negative: no limit) under the
// exclusive gc lock, waiting up to wait for running builds (saying so on
// stderr), and removes leftover sandboxes, containers and unpacked images.
func Collect(ctx context.Context, c *Dirs, limit int64, wait time.Duration, stderr io.Writer, getenv func(string) (string, bool)) (*Report, error) {
	unlock, err := lockCacheForGC(ctx, stderr, c.Dir, wait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := GC(ctx, c.Store, c.DB, GCOptions{MaxSize: limit})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, errkind.Infra(err)
	}
	rep := &Report{GCReport: r}
	if limit >= 0 {
		rep.MaxSize = &limit
	}
	rep.SandboxesRemoved, rep.SandboxBytes, err = removeStaleSandboxes(ctx, filepath.Join(c.Dir, "sandbox"), time.Now().Add(-staleSandbox))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("removing leftover sandboxes: %w", err))
	}
	// Containers of stages whose mc was killed (runc outlived it): with the
	// lock held no build runs one. No runc here: there are none to clean.
	if rt, err := runc.Find(getenv); err == nil {
		if err := rt.Cleanup(filepath.Join(c.Dir, "sandbox", "runc")); err != nil {
			return nil, errkind.Infra(fmt.Errorf("removing leftover containers: %w", err))
		}
	}
	// Unpacked image filesystems are derived from the store and unpacked
	// again on demand; no build uses them while gc holds the lock. Pulled
	// registry images would need the network again: only --max-size=0.
	dirs := []string{filepath.Join(c.Dir, "rootfs")}
	if limit == 0 {
		dirs = append(dirs, filepath.Join(c.Dir, "images"))
	}
	for _, d := range dirs {
		n, size, err := removeChildren(ctx, d)
		rep.ImageDirsRemoved += n
		rep.ImageDirBytes += size
		if err != nil {
			return nil, errkind.Infra(fmt.Errorf("removing %s: %w", d, err))
		}
	}
	if rep.Untrusted, err = collectUntrusted(ctx, c.Dir, limit); err != nil {
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
func lockCacheForGC(ctx context.Context, stderr io.Writer, dir string, wait time.Duration) (func() error, error) {
	p := filepath.Join(dir, "gc.lock")
	unlock, ok, err := flock.TryLock(p)
	if err != nil {
		return nil, errkind.Infra(err)
	}
	if ok {
		return unlock, nil
	}
	fmt.Fprintf(stderr, "mc: builds are using the cache %s; waiting up to %s for them to finish...\n", dir, wait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err = flock.Lock(wctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errkind.Infra(fmt.Errorf("the cache %s is still in use by running builds after %s (they hold %s); "+
			"try again when they finish, or pass a longer --wait", dir, wait, p))
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

// PurgedLabel is what purge did for one label.
type PurgedLabel struct {
	Label   string `json:"label"`
	Results int    `json:"results"`          // local results deleted
	Remote  int    `json:"remote,omitempty"` // remote results deleted (keys tried)
	Note    string `json:"note,omitempty"`
}

// Purged is what purge did.
type Purged struct {
	Labels        []PurgedLabel `json:"labels,omitempty"`
	All           *Report       `json:"all,omitempty"`
	Results       int           `json:"results"`
	Remote        *string       `json:"remote"`
	RemoteDeleted int           `json:"remote_deleted"`
}

// PrintPurged shows what purge did, as text.
func PrintPurged(w io.Writer, res *Purged) {
	for _, l := range res.Labels {
		switch {
		case l.Note != "":
			fmt.Fprintf(w, "%s: %s\n", l.Label, l.Note)
		case res.Remote != nil:
			fmt.Fprintf(w, "%s: purged %s locally; deleted %s from %s\n", l.Label, plural(l.Results, "result"),
				plural(l.Remote, "action key"), *res.Remote)
		default:
			fmt.Fprintf(w, "%s: purged %s\n", l.Label, plural(l.Results, "result"))
		}
	}
	if a := res.All; a != nil {
		fmt.Fprintf(w, "Purged %s and %s (%s) from the local cache.\n",
			plural(a.ResultsRemoved, "result"), plural(a.BlobsRemoved, "blob"), FormatSize(a.BytesRemoved))
		if res.Remote != nil {
			fmt.Fprintf(w, "Deleted %s from %s.\n", plural(res.RemoteDeleted, "object"), *res.Remote)
		}
	}
}

// PurgeAll empties the local cache c (gc to zero bytes) and, when remote
// is not nil, the shared one.
func PurgeAll(ctx context.Context, c *Dirs, remote cas.Remote, wait time.Duration, stderr io.Writer, getenv func(string) (string, bool), res *Purged) error {
	var err error
	if res.All, err = Collect(ctx, c, 0, wait, stderr, getenv); err != nil {
		return err
	}
	res.Results = res.All.ResultsRemoved
	if remote != nil {
		name := remote.String()
		res.Remote = &name
		if res.RemoteDeleted, err = remote.Purge(ctx); err != nil {
			return errkind.Infra(fmt.Errorf("purging %s: %w", name, err))
		}
	}
	return nil
}

// PurgeLabels forgets the results of the stages named by args (labels or
// patterns, relative to the invoking directory) in every workspace sharing
// the cache of s, and with remote not nil in the shared cache too. Their
// blobs go at the next gc. A label with no results that names nothing in
// the workspace is a usage error with the closest names.
func PurgeLabels(ctx context.Context, s *session.Session, remote cas.Remote, args []string, res *Purged) error {
	if remote != nil {
		name := remote.String()
		res.Remote = &name
	}
	var known []string // labels with results or history, loaded for the first pattern
	seen := map[string]bool{}
	var labels []string
	for _, a := range args {
		p, err := graph.ParsePattern(a, s.RelDir)
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
				if known, err = KnownLabels(ctx, s.DB); err != nil {
					return errkind.Infra(err)
				}
			}
			for _, k := range known {
				if l, err := graph.ParseLabel(k, ""); err == nil && p.MatchesPkg(l.Pkg) {
					matched = append(matched, k)
				}
			}
			if len(matched) == 0 {
				res.Labels = append(res.Labels, PurgedLabel{Label: p.String(), Note: "nothing cached matches"})
			}
		}
		for _, l := range matched {
			if !seen[l] {
				seen[l] = true
				labels = append(labels, l)
			}
		}
	}
	return purgeResults(ctx, s.DB, remote, labels, res)
}

// purgeResults deletes the local results of labels and, with remote, every
// key the database knows for them from the shared cache.
func purgeResults(ctx context.Context, db *cas.DB, remote cas.Remote, labels []string, res *Purged) error {
	for _, l := range labels {
		keys, local, err := KeysOf(ctx, db, l)
		if err != nil {
			return errkind.Infra(err)
		}
		var localKeys []cas.Digest
		for _, k := range keys {
			if local[k] {
				localKeys = append(localKeys, k)
			}
		}
		entry := PurgedLabel{Label: l}
		if entry.Results, err = DeleteActions(ctx, db, localKeys); err != nil {
			return errkind.Infra(err)
		}
		res.Results += entry.Results
		if remote != nil {
			// Every key the history knows: the shared cache may hold
			// results this machine no longer does.
			for _, k := range keys {
				if err := remote.DeleteAction(ctx, k); err != nil {
					return errkind.Infra(fmt.Errorf("%s: deleting %s from %s: %w", l, k.Short(), remote.String(), err))
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
func purgeTarget(ctx context.Context, s *session.Session, arg string, l graph.Label) (string, error) {
	keys, _, err := KeysOf(ctx, s.DB, l.String())
	if err != nil {
		return "", errkind.Infra(err)
	}
	if len(keys) > 0 {
		return l.String(), nil
	}
	_, g, err := s.LoadGraph(ctx, []string{arg})
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
	return "", errkind.Usagef("%s names nothing: no target %q in %s%s", arg, l.Name, pkg.File, errkind.Suggest(graph.Closest(":"+l.Name, cands)))
}

// ---- sizes ----

// ParseSize reads a byte count: a number with an optional unit K, M, G, T
// (powers of 1024; "KB", "KiB" and lower case mean the same), or B.
func ParseSize(s string) (int64, error) {
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

// FormatSize shows n bytes with a binary unit: "512 B", "1.5 KiB".
func FormatSize(n int64) string {
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

// collectUntrusted runs gc on the untrusted tier of cacheDir (if any) to
// limit bytes, with the gc lock held: its blobs and results, and the
// sandboxes its killed builds left. Its cache mounts stay, as the trusted
// tier's do.
func collectUntrusted(ctx context.Context, cacheDir string, limit int64) (*GCReport, error) {
	dir := cas.UntrustedDir(cacheDir)
	if _, err := os.Stat(filepath.Join(dir, "mc.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the untrusted tier: %w", err))
	}
	db, err := cas.OpenDB(filepath.Join(dir, "mc.db"))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the untrusted tier's database: %w", err))
	}
	defer db.Close()
	r, err := GC(ctx, store, db, GCOptions{MaxSize: limit})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, errkind.Infra(fmt.Errorf("untrusted tier: %w", err))
	}
	if _, _, err := removeStaleSandboxes(ctx, filepath.Join(dir, "sandbox"), time.Now().Add(-staleSandbox)); err != nil {
		return nil, errkind.Infra(fmt.Errorf("removing the untrusted tier's leftover sandboxes: %w", err))
	}
	return r, nil
}
