package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/mc-build/mc/builtins"
	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/exec"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/ui"
	"github.com/mc-build/mc/watch"
)

// Debouncing of mc watch: editors save in bursts of a few events within a
// millisecond or two; 10 ms of quiet ends one without eating the 50 ms
// budget from a save to its stage starting.
const (
	watchQuiet = 10 * time.Millisecond
	watchMax   = 250 * time.Millisecond
)

func runWatch(ctx context.Context, e *env, args []string) error {
	var bf buildFlags
	var test bool
	fs := newFlags(e, "watch", "[FLAGS] PATTERN...")
	bf.register(fs)
	fs.BoolVar(&test, "test", false, "also run the test stages among the patterns, as mc test")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, f := range []string{"affected-since", "report", "explain", "profile", "runners", "keep-runner", "deploy", "push"} {
		if fs.Changed(f) {
			return usagef("watch: --%s is not supported: mc watch builds on this machine what edits affect", f)
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
	sandboxMode, err := exec.ParseSandboxMode(bf.sandbox)
	if err != nil {
		return usagef("%v", err)
	}
	if bf.untrusted {
		sandboxMode = exec.SandboxRequired
	}
	privateNet, err := exec.ParseStageNetwork(bf.stageNetwork)
	if err != nil {
		return usagef("%v", err)
	}
	s, err := openSessionTier(ctx, e, bf.cacheDir, bf.untrusted)
	if err != nil {
		return err
	}
	// Flushes the stat cache and the blobs' fingerprints, also after
	// Ctrl-C: the cache is as consistent as after any build.
	defer s.close(context.WithoutCancel(ctx))
	w := &watcher{e: e, s: s, bf: bf, test: test, args: fs.Args()}
	if err := w.openBuild(ctx, sandboxMode, privateNet); err != nil {
		return err
	}
	defer w.local.Close()
	err = w.loop(ctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// Ctrl-C is how mc watch ends: the build under way was cancelled.
		fmt.Fprintln(e.stderr, "mc watch: stopped")
		return nil
	}
	return err
}

// watcher is mc watch's state between builds: the evaluated packages, the
// graph and action graph, and each action's last outcome.
type watcher struct {
	e    *env
	s    *session
	bf   buildFlags
	test bool
	args []string

	local    *exec.Local
	plat     string
	isolated bool
	remote   cas.Remote
	write    bool

	fsw *watch.Watcher

	patPkgs  []string // the packages the patterns name
	pats     []graph.Pattern
	pkgs     map[string]*graph.Package
	g        *graph.Graph
	ag       *graph.ActionGraph
	roots    []graph.Label
	ix       *watch.Index
	outcomes map[*graph.Action]*exec.Outcome
	// stale are packages to evaluate again at the next change: their
	// evaluation failed, so their old result must not be served.
	stale map[string]bool
	// broken: the last evaluation failed; the next change evaluates again.
	broken bool
}

func (w *watcher) say(format string, args ...any) {
	fmt.Fprintf(w.e.stderr, "mc watch: "+format+"\n", args...)
}

// openBuild makes what every build shares: the executor, the shared cache.
func (w *watcher) openBuild(ctx context.Context, mode exec.SandboxMode, privateNet bool) error {
	s := w.s
	remote, err := openRemote(ctx, w.e, s.ws, w.bf.cacheURL)
	if err != nil {
		return err
	}
	if remote != nil && w.bf.untrusted {
		if remote, err = untrustedRemote(ctx, w.e, remoteURL(w.e, s.ws, w.bf.cacheURL), remote); err != nil {
			return err
		}
	}
	w.remote = remote
	if w.write, err = cacheWriteSetting(w.e, false, w.bf.cacheWrite); err != nil {
		return err
	}
	mode, sandboxed := sandboxState(s.cache, mode)
	lo := exec.LocalOptions{
		Sandbox: mode, Store: s.store,
		SandboxDir: filepath.Join(s.tier, "sandbox"), MountsDir: filepath.Join(s.tier, "mounts"),
		KeepSandbox: w.bf.keepSandbox, Warn: w.warn,
		RootfsDir: filepath.Join(s.tier, "rootfs"), ImagesDir: filepath.Join(s.tier, "images"),
		PrivateNetwork: privateNet,
	}
	if w.bf.untrusted {
		lo.SeedMountsDir = filepath.Join(s.cache, "mounts")
		lo.Hide = []string{s.cache}
	}
	if w.local, err = exec.NewLocal(lo); err != nil {
		return &infraError{err}
	}
	if w.isolated, err = sandboxed(w.local); err != nil {
		w.local.Close()
		if w.bf.untrusted {
			return requireSandbox(err)
		}
		return err
	}
	w.plat = platform()
	if !w.isolated {
		w.plat += unisolatedPlatform
		w.write = false
	}
	return nil
}

func (w *watcher) warn(msg string) {
	if w.bf.output == "json" {
		return
	}
	fmt.Fprintf(w.e.stderr, "mc: warning: %s\n", msg)
}

func (w *watcher) loop(ctx context.Context) error {
	if err := w.startWatch(); err != nil {
		return err
	}
	defer func() { w.fsw.Close() }()
	// The first build: everything the patterns need. A mistake in the
	// BUILD files or patterns now is the user's to fix before watching.
	if err := w.evaluate(ctx, nil, true); err != nil {
		return err
	}
	if err := w.build(ctx, nil, time.Time{}, ""); err != nil {
		return err
	}
	return w.next(ctx)
}

func (w *watcher) startWatch() error {
	ignore := w.s.ws.Ignore
	fsw, err := watch.New(w.s.root, watch.Options{Quiet: watchQuiet, Max: watchMax,
		SkipDir: func(rel string) bool { return lang.Ignored(ignore, rel) }})
	if err != nil {
		return &infraError{err}
	}
	w.fsw = fsw
	return nil
}

// next waits for a batch of changes and rebuilds what it affects.
func (w *watcher) next(ctx context.Context) error {
	for {
		b, err := w.fsw.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &infraError{err}
		}
		if w.verbose() {
			for _, c := range b.Changes {
				w.say("%s %s", c.Op, c.Path)
			}
		}
		plan := w.ix.Plan(b, w.s.eval.IsPackage)
		w.s.eval.Forget(plan.Forget)
		if plan.Reload {
			// WORKSPACE.mc (its ignore list, its settings) or lost events:
			// start over with a new evaluator, and watch anew.
			w.say("WORKSPACE.mc changed: evaluating the workspace again")
			ws, err := builtins.LoadWorkspace(ctx, w.s.root)
			if err != nil {
				w.report(err)
				w.broken = true
				continue
			}
			w.s.ws = ws
			w.s.eval = builtins.NewEvaluator(ws, w.s.db, w.s.stat)
			w.fsw.Close()
			if err := w.startWatch(); err != nil {
				return err
			}
			w.pkgs = nil
			plan.Rescan = true
		}
		if plan.Empty() && !w.broken {
			continue
		}
		save := savedAt(w.s.root, plan.Sources)
		label := strings.Join(plan.Sources, " ")
		if len(plan.Sources) == 0 {
			label = strings.Join(b.Paths(), " ")
		}
		reevaluate := plan.Rescan || len(plan.Reeval) > 0 || w.broken || len(w.stale) > 0
		if !reevaluate {
			// The common case, a source saved: the graph stands, and only
			// the stages reading the file and their dependents run.
			affected := w.ix.Affected(plan.Sources)
			if len(affected) == 0 {
				continue
			}
			prior := w.outcomes
			if err := w.build(ctx, func(a *graph.Action) *exec.Outcome {
				if affected[a] {
					return nil
				}
				return prior[a]
			}, save, label); err != nil {
				return err
			}
			continue
		}
		prevAG, prevOut := w.ag, w.outcomes
		if err := w.evaluate(ctx, plan.Reeval, plan.Rescan || w.broken); err != nil {
			var le *lang.Error
			var ge *graph.Error
			var ue *usageError
			if errors.As(err, &le) || errors.As(err, &ge) || errors.As(err, &ue) {
				w.report(err)
				continue
			}
			return err
		}
		changed := map[string]bool{}
		for _, p := range plan.Sources {
			changed[p] = true
		}
		un := watch.Unaffected(prevAG, w.ag, changed)
		if len(un) == len(w.ag.Actions) && prevAG != nil && len(prevAG.Actions) == len(w.ag.Actions) && len(plan.Sources) == 0 {
			// Evaluated again to the same graph: nothing to build. (Failed
			// stages wait for a change of their own.)
			continue
		}
		if err := w.build(ctx, func(a *graph.Action) *exec.Outcome {
			if o := un[a]; o != nil {
				return prevOut[o]
			}
			return nil
		}, save, label); err != nil {
			return err
		}
	}
}

func (w *watcher) verbose() bool { return w.bf.verbose }

// report prints an evaluation error and keeps watching.
func (w *watcher) report(err error) {
	w.broken = true
	fmt.Fprintf(w.e.stderr, "mc: %v\n", err)
	w.say("fix the error and save: watching for changes")
}

// evaluate evaluates the workspace: all of it (rescan: the patterns are
// resolved again), or the packages reeval again, serving the others from
// memory. It says which packages ran their BUILD.mc again.
func (w *watcher) evaluate(ctx context.Context, reeval []string, rescan bool) error {
	s := w.s
	if rescan || w.patPkgs == nil {
		pats, pkgs, err := s.resolvePatterns(ctx, w.args)
		if err != nil {
			return err
		}
		w.pats, w.patPkgs = pats, pkgs
	}
	have := make(map[string]*graph.Package, len(w.pkgs))
	for n, p := range w.pkgs {
		have[n] = p
	}
	if w.stale == nil {
		w.stale = map[string]bool{}
	}
	for _, p := range reeval {
		w.stale[p] = true
	}
	for p := range w.stale {
		delete(have, p)
	}
	loaded, err := graph.Load(ctx, &watch.Packages{PackageSource: s.eval, Have: have}, w.patPkgs)
	if err != nil {
		w.broken = true
		return err
	}
	if w.pkgs != nil {
		var again []string
		for n, p := range loaded {
			if old, ok := w.pkgs[n]; ok && old != p {
				again = append(again, n)
			}
		}
		sort.Strings(again)
		for _, n := range again {
			w.say("re-evaluated //%s", n)
		}
	}
	w.pkgs = loaded
	clear(w.stale)
	g, err := graph.Link(ctx, s.eval, loaded)
	if err != nil {
		w.broken = true
		return err
	}
	roots, err := selectRoots(g, w.pats, w.args, w.test, false, s.eval.IsSourceFile)
	if err != nil {
		w.broken = true
		return err
	}
	if w.test && !anyTest(g, roots) {
		w.broken = true
		return &noTestsError{strings.Join(w.args, " ")}
	}
	ag, err := g.Actions(roots)
	if err != nil {
		w.broken = true
		return err
	}
	w.g, w.roots, w.ag = g, roots, ag
	w.ix = watch.NewIndex(loaded, ag)
	w.broken = false
	return nil
}

// savedAt is the latest modification time of the changed sources: when
// the save that triggers a build happened, as the file system recorded it.
func savedAt(root string, sources []string) time.Time {
	var t time.Time
	for _, p := range sources {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// build runs one build of the action graph, with prior outcomes for what
// did not change, and reports how long the first stage took to start after
// the save. A failing build is reported and watching goes on; only
// infrastructure failures and Ctrl-C end mc watch.
func (w *watcher) build(ctx context.Context, prior func(*graph.Action) *exec.Outcome, saved time.Time, what string) error {
	s, e := w.s, w.e
	var sink event.Sink
	if w.bf.output == "json" {
		sink = ui.NewJSON(e.stdout)
	} else {
		tty := false
		if f, ok := e.stderr.(*os.File); ok {
			tty = term.IsTerminal(int(f.Fd()))
		}
		text := ui.NewText(e.stderr, tty, w.bf.verbose)
		text.ShowCachedLogs(w.bf.cachedLogs)
		text.SetColor(useColor(e, w.bf.color, tty))
		if f, ok := e.stderr.(*os.File); ok && tty {
			text.SetSize(func() (int, int) {
				c, r, err := term.GetSize(int(f.Fd()))
				if err != nil {
					return 0, 0
				}
				return c, r
			})
		}
		sink = text
	}
	var mu sync.Mutex
	var firstStart time.Time
	inner := sink
	sink = event.SinkFunc(func(ev event.Event) {
		if ev.Type == event.StageStarted {
			mu.Lock()
			if firstStart.IsZero() || ev.Time.Before(firstStart) {
				firstStart = ev.Time
			}
			mu.Unlock()
		}
		inner.Event(ev)
	})
	logs := newLogKeeper(sink)

	unlock, err := lockWorkspace(ctx, e, s.root)
	if err != nil {
		return err
	}
	defer unlock()
	gcLock := filepath.Join(s.cache, "gc.lock")
	unlockGC, ok, err := cas.TryLockShared(gcLock)
	if err == nil && !ok {
		fmt.Fprintln(e.stderr, "mc: waiting for `mc cache gc` to finish with the cache...")
		unlockGC, err = cas.LockShared(ctx, gcLock)
	}
	if err != nil {
		return &infraError{fmt.Errorf("locking the cache: %w", err)}
	}
	defer unlockGC()

	s.stat.DropStats()
	s.store.DeferSync()
	wanted := make(map[*graph.Action]bool, len(w.roots))
	for _, l := range w.roots {
		if a := w.ag.ByLabel[l]; a != nil {
			wanted[a] = true
		}
	}
	images, err := imageOptions(e, w.ag, registrySetting(e, w.bf.images.registry, s.ws), false)
	if err != nil {
		return err
	}
	mat := newMaterializer(s, wanted)
	rep, runErr := exec.Run(ctx, w.ag, exec.Options{
		Root: s.root, Scope: s.root, Jobs: w.bf.jobs, KeepGoing: w.bf.keepGoing, NoCache: w.bf.noCache,
		Platform: w.plat, Store: s.store, DB: s.db, Files: s.stat, Executor: w.local, Sink: logs,
		Getenv:    e.getenv,
		Remote:    exec.RemoteOptions{Cache: w.remote, Write: w.write, Required: w.bf.remoteReq},
		Want:      func(a *graph.Action) bool { return wanted[a] },
		Done:      mat.done,
		Warn:      w.warn,
		Images:    images,
		Untrusted: w.bf.untrusted, Trusted: s.trustedReader(),
		Prior: prior,
		// Only the first build reads every latest result at once; after
		// it, the few stages an edit affects are looked up one by one.
		Preload: func() (map[cas.Digest]cas.LatestEntry, error) {
			if prior == nil {
				return s.db.LatestEntries(ctx, s.root)
			}
			return nil, nil
		},
	})
	matErr := mat.wait(rep == nil || rep.Built+rep.Failed > 0)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return runErr
		}
		return &infraError{runErr}
	}
	w.outcomes = rep.Outcomes
	name := "build"
	if w.test {
		name = "test"
	}
	if err := storeFailures(ctx, s, historyCommand("watch", w.args), w.ag, rep, logs); err != nil {
		w.warn(fmt.Sprintf("storing the logs of failed stages for mc log: %v", err))
	}
	if w.bf.output != "json" {
		printSummary(e, name, w.ag, rep, w.test, logs)
	}
	if matErr != nil {
		w.warn(fmt.Sprintf("writing mc-out: %v", matErr))
	}
	// The stat cache and fingerprints are written after every build, so
	// that a Ctrl-C or a crash later loses nothing learned.
	if err := s.stat.Flush(ctx); err != nil {
		w.warn(fmt.Sprintf("saving the stat cache: %v", err))
	}
	if !saved.IsZero() && !firstStart.IsZero() {
		w.say("first stage started %s after %s was saved", fmtLatency(firstStart.Sub(saved)), what)
	}
	if rep.Failed > 0 || rep.Skipped > 0 {
		w.say("the build failed; fix it and save")
	}
	w.say("watching %d stages for changes (Ctrl-C to stop)", len(w.ag.Actions))
	return nil
}

// fmtLatency prints a latency in milliseconds with one decimal, the unit
// the budget (50 ms from a save to its stage starting) is stated in.
func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
