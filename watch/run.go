package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/pipeline"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
	"github.com/mc-build/mc/stagelog"
	"github.com/mc-build/mc/ui"
)

// Debouncing of mc watch: editors save in bursts of a few events within a
// millisecond or two; 10 ms of quiet ends one without eating the 50 ms
// budget from a save to its stage starting.
const (
	watchQuiet = 10 * time.Millisecond
	watchMax   = 250 * time.Millisecond
)

// Config is what mc watch is asked to do: its flags, checked by cmd/mc.
type Config struct {
	Env      pipeline.Env
	Options  pipeline.Options // the builds' settings (Runners "none")
	Patterns []string         // the targets, as on the command line
	Test     bool             // also run the test stages, as mc test
	JSON     bool             // events as JSON lines on Stdout (--output=json)
	Verbose  bool             // the changes heard, where the latency went
	// CachedLogs and Color are the text display's --show-cached-logs and
	// --color.
	CachedLogs bool
	Color      string
}

// Run builds the patterns, then rebuilds what each batch of saved files
// affects, until ctx is cancelled (Ctrl-C: nil, after "mc watch: stopped")
// or an error that a save cannot fix: a mistake on the command line, or
// the infrastructure failing. Mistakes in BUILD files and failed stages
// are reported on Stderr and watching goes on.
func Run(ctx context.Context, c Config) error {
	for {
		err := watchOnce(ctx, c)
		if errors.Is(err, errRestart) {
			// WORKSPACE.mc changed (its ignore list, cache, settings), or
			// events were lost: start over as a new mc watch would.
			fmt.Fprintln(c.Env.Stderr, "mc watch: WORKSPACE.mc changed, or file events were lost: starting over")
			continue
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// Ctrl-C is how mc watch ends: the build under way was cancelled.
			fmt.Fprintln(c.Env.Stderr, "mc watch: stopped")
			return nil
		}
		return err
	}
}

// errRestart ends one watchOnce for the next.
var errRestart = errors.New("restart")

// watchOnce opens the workspace, builds and watches it until Ctrl-C, an
// error, or errRestart.
func watchOnce(ctx context.Context, c Config) error {
	p, err := pipeline.Open(ctx, c.Env, c.Options)
	if err != nil {
		return err
	}
	// Saves the stat cache and the blobs' fingerprints, also after Ctrl-C:
	// the cache is as consistent as after any build.
	defer p.Close(context.WithoutCancel(ctx))
	w := &driver{c: c, p: p, s: p.Session()}
	return w.loop(ctx)
}

// driver is mc watch's state between builds: the evaluated packages, the
// graph and action graph, and each action's last outcome.
type driver struct {
	c Config
	p *pipeline.Pipeline
	s *session.Session

	fsw *Watcher

	patPkgs  []string // the packages the patterns name
	ev       *pipeline.Evaluation
	ag       *graph.ActionGraph
	roots    []graph.Label
	ix       *Index
	outcomes map[*graph.Action]*sched.Outcome
	// stale are packages to evaluate again at the next change: their
	// evaluation failed, so their old result must not be served.
	stale map[string]bool
	// broken: the last evaluation failed; the next change evaluates again.
	broken bool
}

func (w *driver) say(format string, args ...any) {
	fmt.Fprintf(w.c.Env.Stderr, "mc watch: "+format+"\n", args...)
}

func (w *driver) warn(msg string) {
	if w.c.JSON {
		return
	}
	fmt.Fprintf(w.c.Env.Stderr, "mc: warning: %s\n", msg)
}

func (w *driver) loop(ctx context.Context) error {
	if err := w.startWatch(); err != nil {
		return err
	}
	defer func() { w.fsw.Close() }()
	// The first build: everything the patterns need. A mistake on the
	// command line ends mc watch (exit 2); one in the BUILD files is shown,
	// and the next save evaluates again.
	if _, err := w.evaluate(ctx, nil, true); err != nil {
		if !fileError(err) {
			return err
		}
		w.ix = NewIndex(nil, nil)
		w.report(err)
		return w.next(ctx)
	}
	if err := w.build(ctx, w.ag, nil, time.Time{}, time.Time{}, ""); err != nil {
		return err
	}
	return w.next(ctx)
}

// fileError reports whether err is a mistake in the workspace's files
// (BUILD.mc, .star), which a save can fix, rather than on the command line
// or in mc's surroundings.
func fileError(err error) bool {
	var le *lang.Error
	var ge *graph.Error
	return errors.As(err, &le) || errors.As(err, &ge)
}

func (w *driver) startWatch() error {
	ignore := w.s.WS.Ignore
	fsw, err := New(w.s.Root, Options{Quiet: watchQuiet, Max: watchMax,
		SkipDir: func(rel string) bool { return lang.Ignored(ignore, rel) }})
	if err != nil {
		return errkind.Infra(err)
	}
	w.fsw = fsw
	return nil
}

// next waits for batches of changes and rebuilds what each affects.
func (w *driver) next(ctx context.Context) error {
	for {
		b, err := w.fsw.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errkind.Infra(err)
		}
		if w.c.Verbose {
			for _, c := range b.Changes {
				w.say("%s %s", c.Op, c.Path)
			}
		}
		// Answers kept from the last evaluation are not trusted now.
		w.s.Stat.DropStats()
		plan := w.ix.Plan(b, w.s.Eval.IsPackage)
		w.s.Eval.Forget(plan.Forget)
		if plan.Reload {
			return errRestart
		}
		if plan.Empty() && !w.broken {
			continue
		}
		save := savedAt(w.s.Root, plan.Sources)
		what := strings.Join(plan.Sources, " ")
		same := !w.broken && !plan.Rescan && len(plan.Reeval) == 0 && len(w.stale) == 0
		prevAG, prevOut := w.ag, w.outcomes
		if !same {
			var err error
			same, err = w.evaluate(ctx, plan.Reeval, plan.Rescan || w.broken)
			if err != nil {
				// Once watching, a package or test gone (a BUILD.mc
				// removed) is the workspace's state too: it can come back.
				var ue *errkind.UsageError
				var nt *errkind.NoTestsError
				if fileError(err) || errors.As(err, &ue) || errors.As(err, &nt) {
					w.report(err)
					continue
				}
				return err
			}
		}
		if same {
			// The common case, a source saved (an editor's atomic save
			// also has its package's globs checked, which find them the
			// same): the graph stands, and only the stages reading the
			// file and their dependents run.
			affected := w.ix.Affected(plan.Sources)
			if len(affected) == 0 {
				continue
			}
			prior := w.outcomes
			if err := w.build(ctx, Subgraph(w.ag, affected), func(a *graph.Action) *sched.Outcome {
				if affected[a] {
					return nil
				}
				return prior[a]
			}, save, b.First, what); err != nil {
				return err
			}
			continue
		}
		changed := map[string]bool{}
		for _, p := range plan.Sources {
			changed[p] = true
		}
		un := Unaffected(prevAG, w.ag, changed)
		if prevAG != nil && len(un) == len(w.ag.Actions) && len(prevAG.Actions) == len(w.ag.Actions) {
			// Evaluated again to the same stages: nothing to build.
			// (Failed stages wait for a change of their own.)
			continue
		}
		if err := w.build(ctx, w.ag, func(a *graph.Action) *sched.Outcome {
			if o := un[a]; o != nil {
				return prevOut[o]
			}
			return nil
		}, save, b.First, what); err != nil {
			return err
		}
	}
}

// report prints an evaluation error and keeps watching.
func (w *driver) report(err error) {
	w.broken = true
	fmt.Fprintf(w.c.Env.Stderr, "mc: %v\n", err)
	w.say("fix the error and save: watching for changes")
}

// evaluate evaluates the workspace: all of it (rescan: the patterns are
// resolved again), or the packages reeval again, serving the others from
// memory (a new evaluator, as pipeline.Reevaluate makes, would read
// every package's files again). It says which packages ran their BUILD.mc
// again. same is true when the packages are those of the graph already
// held, which then stands.
func (w *driver) evaluate(ctx context.Context, reeval []string, rescan bool) (same bool, err error) {
	s := w.s
	var pats []graph.Pattern
	if w.ev != nil {
		pats = w.ev.Patterns
	}
	if rescan || w.patPkgs == nil {
		ps, pkgs, err := s.ResolvePatterns(ctx, w.c.Patterns)
		if err != nil {
			w.broken = true
			return false, err
		}
		pats, w.patPkgs = ps, pkgs
	}
	var old map[string]*graph.Package
	if w.ev != nil {
		old = w.ev.Packages
	}
	have := make(map[string]*graph.Package, len(old))
	for n, p := range old {
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
	if old != nil && !rescan && !w.broken && len(w.stale) > 0 {
		// Most often (an editor's atomic save makes the package's globs
		// be checked) the packages come back as they were: then the graph
		// stands, without walking every package to link it again.
		names := make([]string, 0, len(w.stale))
		for p := range w.stale {
			names = append(names, p)
		}
		sort.Strings(names)
		got, err := s.Eval.Packages(ctx, names)
		if err != nil {
			w.broken = true
			return false, err
		}
		unchanged := true
		for i, p := range got {
			if o, ok := old[names[i]]; !ok || o != p {
				unchanged = false
			}
		}
		if unchanged {
			clear(w.stale)
			return true, nil
		}
	}
	loaded, err := graph.Load(ctx, &Packages{PackageSource: s.Eval, Have: have}, w.patPkgs)
	if err != nil {
		w.broken = true
		return false, err
	}
	clear(w.stale)
	if old != nil {
		var again []string
		for n, p := range loaded {
			if o, ok := old[n]; ok && o != p {
				again = append(again, n)
			}
		}
		sort.Strings(again)
		for _, n := range again {
			w.say("re-evaluated //%s", n)
		}
		if len(again) == 0 && len(loaded) == len(old) && !w.broken && !rescan {
			return true, nil
		}
	}
	g, err := graph.Link(ctx, s.Eval, loaded)
	if err != nil {
		w.broken = true
		return false, err
	}
	ev := &pipeline.Evaluation{Args: w.c.Patterns, Patterns: pats, Graph: g, Packages: loaded}
	roots, err := w.p.Select(ctx, ev, w.c.Test, "")
	if err != nil {
		w.broken = true
		return false, err
	}
	ag, err := g.Actions(roots)
	if err != nil {
		w.broken = true
		return false, err
	}
	w.ev, w.roots, w.ag = ev, roots, ag
	w.ix = NewIndex(loaded, ag)
	w.broken = false
	return false, nil
}

// savedAt is the latest change time (ctime) of the changed sources: when
// the save that triggers a build happened, as the file system recorded it
// (a write, or an editor's rename of the new file over the old one, which
// the mtime of the file, written before, would not show).
func savedAt(root string, sources []string) time.Time {
	var t time.Time
	for _, p := range sources {
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			continue
		}
		c := fi.ModTime()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			c = time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
		}
		if c.After(t) {
			t = c
		}
	}
	return t
}

// build runs ag (the action graph, or the part of it an edit affects),
// with prior outcomes for what did not change, and reports how long the
// first stage took to start after the save. A failing build is reported
// and watching goes on; only infrastructure failures and Ctrl-C end mc
// watch.
func (w *driver) build(ctx context.Context, ag *graph.ActionGraph, prior func(*graph.Action) *sched.Outcome, saved, seen time.Time, what string) error {
	e := w.c.Env
	var sink event.Sink
	if w.c.JSON {
		sink = ui.NewJSON(e.Stdout)
	} else {
		sink = ui.NewTextFor(e.Stderr, w.c.Verbose, w.c.CachedLogs, w.c.Color, e.Getenv)
	}
	var mu sync.Mutex
	var firstStart, buildStart time.Time
	inner := sink
	sink = event.SinkFunc(func(ev event.Event) {
		if ev.Type == event.BuildStarted {
			buildStart = ev.Time
		}
		if ev.Type == event.StageStarted {
			mu.Lock()
			if firstStart.IsZero() || ev.Time.Before(firstStart) {
				firstStart = ev.Time
			}
			mu.Unlock()
		}
		inner.Event(ev)
	})
	runAt := time.Now()
	res, err := w.p.Run(ctx, w.ev.Graph, w.roots, pipeline.RunOptions{Sink: sink, Actions: ag, Prior: prior})
	if err != nil {
		return err
	}
	rep := res.Report
	if ag == w.ag {
		w.outcomes = rep.Outcomes
	} else {
		// A part of the graph ran: the rest keeps its outcomes.
		for a, o := range rep.Outcomes {
			w.outcomes[a] = o
		}
	}
	name := "build"
	if w.c.Test {
		name = "test"
	}
	s := w.s
	if err := stagelog.Store(ctx, s.Store, s.DB, s.Root, "watch "+strings.Join(w.c.Patterns, " "), ag, rep, res.Logs); err != nil {
		w.warn(fmt.Sprintf("storing the logs of failed stages for mc log: %v", err))
	}
	if !w.c.JSON {
		pipeline.PrintSummary(e, name, res, w.c.Test)
	}
	if res.OutErr != nil {
		w.warn(fmt.Sprintf("writing mc-out: %v", res.OutErr))
	}
	// The stat cache is written after every build, so that a crash later
	// loses nothing learnt.
	if err := s.Stat.Flush(ctx); err != nil {
		w.warn(fmt.Sprintf("saving the stat cache: %v", err))
	}
	if !saved.IsZero() && !firstStart.IsZero() {
		w.say("first stage started %s after %s was saved (%s after mc heard of it)", fmtLatency(firstStart.Sub(saved)), what, fmtLatency(firstStart.Sub(seen)))
		if w.c.Verbose {
			// Where the time went: the debounce and planning, the build's
			// setup, the scheduler until the first stage starts.
			w.say("heard -> build %s -> build_started %s -> stage started %s", fmtLatency(runAt.Sub(seen)),
				fmtLatency(buildStart.Sub(runAt)), fmtLatency(firstStart.Sub(buildStart)))
		}
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
