// Package pipeline is the build as a library: open the workspace and its
// caches, evaluate BUILD files into a graph, select the stages a command
// runs, run them (locally, in the sandbox, or on runners), place the
// requested outputs in mc-out/, and record the run. `mc build` and
// `mc test` are Build; a long-running caller (mc watch) opens a Pipeline
// once, evaluates once, and runs builds against the graph repeatedly,
// reusing the open store, stat cache and executor.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/outdir"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
	"github.com/mc-build/mc/sharedcache"
	"github.com/mc-build/mc/stagelog"
)

// Env is what a build sees of the process: streams, environment, and the
// directory it runs in. Nothing is read from globals, so that builds can
// run in-process side by side (tests, mc watch).
type Env struct {
	Stdout, Stderr io.Writer
	Dir            string
	Getenv         func(string) (string, bool)
}

// Options are the settings of the builds of a Pipeline (mc build's flags).
type Options struct {
	CacheDir string // local cache directory; "": session.DefaultCacheDir
	// Untrusted: read the trusted tier, write only the untrusted one, no
	// secrets, a sandbox required (SPEC §4a).
	Untrusted bool
	NoCache   bool // ignore every cache
	Jobs      int  // stages run in parallel
	// JobsSet says whether Jobs was asked for: without it, ec2 runners run
	// max_instances stages at once.
	JobsSet   bool
	KeepGoing bool
	Deploy    bool // also run deploy stages (and push images)
	// CacheURL is the shared cache (--cache); "" for MC_CACHE or WORKSPACE.mc.
	CacheURL string
	// CacheWrite writes results to the shared cache; when CacheWriteSet is
	// false MC_CACHE_WRITE decides.
	CacheWrite, CacheWriteSet bool
	RemoteRequired            bool   // a failing shared cache is an error
	Runners                   string // none, local, ec2 or "" (MC_RUNNERS, WORKSPACE.mc)
	KeepRunner                string // keep the runner of this stage
	KeepSandbox               bool   // keep each stage's sandbox directory
	Push                      bool   // push the images built that have a repository
	Registry                  string // where images are pushed; "": MC_REGISTRY, WORKSPACE.mc
	Sandbox                   sandbox.SandboxMode
	PrivateNetwork            bool // stages with network = True get a namespace of their own
	// JSON says the events are shown as JSON lines: warnings then go into
	// the event stream instead of to Stderr.
	JSON bool
}

// Pipeline is a workspace opened for building: its session, the shared
// cache, the workspace lock (one build of a workspace at a time) and the
// shared gc lock (`mc cache gc` deletes nothing under a build), held until
// Close.
type Pipeline struct {
	env        Env
	opts       Options
	s          *session.Session
	remote     cas.Remote
	cacheWrite bool
	unlock     []func() error
	preload    func() (map[cas.Digest]cas.LatestEntry, error)
	endPreload context.CancelFunc

	// The local executor, made by the first Run and kept.
	local    *sandbox.Local
	isolated bool
	plat     string

	// sink receives the events of the Run under way (and its warnings).
	sink event.Sink
}

// Open opens the workspace around env.Dir for building: the session (of
// the untrusted tier with o.Untrusted), the shared cache, and the locks.
// It starts reading the latest results, which the first Run uses.
func Open(ctx context.Context, env Env, o Options) (*Pipeline, error) {
	s, err := session.Open(ctx, session.Options{Dir: env.Dir, CacheDir: o.CacheDir, Untrusted: o.Untrusted, Getenv: env.Getenv})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{env: env, opts: o, s: s}
	if err := p.open(ctx); err != nil {
		p.Close(ctx)
		return nil, err
	}
	return p, nil
}

func (p *Pipeline) open(ctx context.Context) error {
	s, o := p.s, p.opts
	var err error
	p.remote, err = OpenRemote(ctx, p.env.Getenv, s.WS, o.CacheURL)
	if err != nil {
		return err
	}
	if p.remote != nil && o.Untrusted {
		if p.remote, err = untrustedRemote(ctx, p.env.Getenv, RemoteURL(p.env.Getenv, s.WS, o.CacheURL), p.remote); err != nil {
			return err
		}
	}
	p.cacheWrite, err = cacheWriteSetting(p.env.Getenv, o.CacheWriteSet, o.CacheWrite)
	if err != nil {
		return err
	}
	// Two builds of one workspace must not interleave their mc-out/ writes
	// (nor race on the stat cache of the same files): one build at a time.
	unlock, err := lockWorkspace(ctx, p.env.Stderr, s.Root)
	if err != nil {
		return err
	}
	p.unlock = append(p.unlock, unlock)
	// `mc cache gc` takes this lock exclusively: it never deletes a blob
	// under a running build.
	gcLock := filepath.Join(s.Cache, "gc.lock")
	unlockGC, ok, err := flock.TryLockShared(gcLock)
	if err == nil && !ok {
		fmt.Fprintln(p.env.Stderr, "mc: waiting for `mc cache gc` to finish with the cache...")
		unlockGC, err = flock.LockShared(ctx, gcLock)
	}
	if err != nil {
		return errkind.Infra(fmt.Errorf("locking the cache: %w", err))
	}
	p.unlock = append(p.unlock, unlockGC)
	// The latest results are read while the graph is evaluated.
	if !o.NoCache {
		pctx, cancel := context.WithCancel(ctx)
		p.endPreload = cancel
		p.preload = sched.StartPreload(pctx, s.DB, s.Root)
	}
	return nil
}

// Session is the open workspace and cache.
func (p *Pipeline) Session() *session.Session { return p.s }

// Close ends the executor, releases the locks and closes the session.
func (p *Pipeline) Close(ctx context.Context) error {
	if p.endPreload != nil {
		p.endPreload()
	}
	if p.local != nil {
		p.local.Close()
	}
	for i := len(p.unlock) - 1; i >= 0; i-- {
		p.unlock[i]()
	}
	return p.s.Close(ctx)
}

// Evaluation is an evaluated and linked workspace: the graph of what the
// patterns need.
type Evaluation struct {
	Args     []string        // the patterns as given
	Patterns []graph.Pattern // parsed, relative to the invoking directory
	Graph    *graph.Graph
	// Packages are the evaluated packages the graph was linked from.
	Packages map[string]*graph.Package
}

// Evaluate evaluates what the patterns args need (their packages and every
// package those reference) and links it.
func (p *Pipeline) Evaluate(ctx context.Context, args []string) (*Evaluation, error) {
	pats, pkgs, err := p.s.ResolvePatterns(ctx, args)
	if err != nil {
		return nil, err
	}
	loaded, err := graph.Load(ctx, p.s.Eval, pkgs)
	if err != nil {
		return nil, err
	}
	g, err := graph.Link(ctx, p.s.Eval, loaded)
	if err != nil {
		return nil, err
	}
	return &Evaluation{Args: args, Patterns: pats, Graph: g, Packages: loaded}, nil
}

// Reevaluate evaluates the packages pkgs again (their BUILD.mc or a .star
// file they load changed), with everything they now reference, and links
// them with the other packages of ev, which are not read again. The
// evaluator is made afresh, so no file is taken from memory. A package
// added or removed under a recursive pattern needs Evaluate instead (the
// patterns are not resolved again).
func (p *Pipeline) Reevaluate(ctx context.Context, ev *Evaluation, pkgs []string) (*Evaluation, error) {
	p.s.Reset()
	fresh, err := graph.Load(ctx, p.s.Eval, pkgs)
	if err != nil {
		return nil, err
	}
	merged := make(map[string]*graph.Package, len(ev.Packages)+len(fresh))
	for name, pkg := range ev.Packages {
		merged[name] = pkg
	}
	for name, pkg := range fresh {
		merged[name] = pkg
	}
	g, err := graph.Link(ctx, p.s.Eval, merged)
	if err != nil {
		return nil, err
	}
	return &Evaluation{Args: ev.Args, Patterns: ev.Patterns, Graph: g, Packages: merged}, nil
}

// Select turns ev's patterns into the stages to build (test: mc test's
// selection, which includes test stages), keeping with affectedSince only
// those affected by the changes since that git revision. mc test selecting
// no test stage is an *errkind.NoTestsError.
func (p *Pipeline) Select(ctx context.Context, ev *Evaluation, test bool, affectedSince string) ([]graph.Label, error) {
	roots, err := selectRoots(ev.Graph, ev.Patterns, ev.Args, test, p.opts.Deploy, p.s.Eval.IsSourceFile)
	if err != nil {
		return nil, err
	}
	hasTests := anyTest(ev.Graph, roots)
	roots, err = filterAffected(ctx, p.s, ev.Graph, roots, affectedSince)
	if err != nil {
		return nil, err
	}
	if test && !hasTests {
		// Before the filter: tests that exist but are not affected are
		// nothing to do (exit 0), not a stale pattern.
		return nil, &errkind.NoTestsError{Patterns: joinArgs(ev.Args)}
	}
	return roots, nil
}

// RunOptions are the per-build settings of Run.
type RunOptions struct {
	// Sink receives the build's events.
	Sink event.Sink
	// Phase, when set, is told the phase of the build that starts
	// ("execute", "materialize"), for a profile.
	Phase func(name string)
	// Actions, when set, is the action graph of g and roots made before
	// (a Result's), run again instead of a new one: Prior's outcomes are
	// of its actions.
	Actions *graph.ActionGraph
	// Prior gives the outcomes of an earlier Run for the actions nothing
	// changed under (sched.Options.Prior; mc watch). Such a Run keys and
	// looks up only the other actions, one by one, rather than reading
	// every latest result of the workspace first.
	Prior func(*graph.Action) *sched.Outcome
	// GraphEvent puts the action graph in the build_started event (what
	// mc serve draws); off, a terminal build pays nothing for it.
	GraphEvent bool
}

// Result is what a Run did.
type Result struct {
	Actions *graph.ActionGraph
	Report  *sched.Report
	// Logs holds the logs of the stages that failed.
	Logs *stagelog.Keeper
	// Isolated is false when stages ran without a sandbox (Options.Sandbox
	// auto on a machine without one).
	Isolated bool
	// OutErr is what went wrong placing outputs in mc-out/, if anything.
	OutErr error
}

// Run builds roots of g: keys, cache lookups, the stages that must run,
// their requested outputs placed in mc-out/ as the build goes. A stage
// failing is not an error (see Result.Report); an error is the build not
// being able to run (usage, infrastructure, cancellation).
func (p *Pipeline) Run(ctx context.Context, g *graph.Graph, roots []graph.Label, ro RunOptions) (*Result, error) {
	s, o := p.s, p.opts
	phase := ro.Phase
	if phase == nil {
		phase = func(string) {}
	}
	logs := stagelog.NewKeeper(ro.Sink)
	p.sink = logs
	ag := ro.Actions
	if ag == nil {
		var err error
		if ag, err = g.Actions(roots); err != nil {
			return nil, err
		}
	}
	images, err := imageOptions(ag, registrySetting(p.env.Getenv, o.Registry, s.WS), pushRequested(o.Push, o.Deploy))
	if err != nil {
		return nil, err
	}
	phase("execute")
	// sched.Run syncs the store before each batch of results it records
	// (group commit), so blobs need not be fsynced one by one.
	s.Store.DeferSync()
	if err := p.startLocal(); err != nil {
		return nil, err
	}
	cacheWrite := p.cacheWrite && p.isolated
	jobs := o.Jobs
	executor, endRunners, err := p.setupRunners(ctx, &jobs, g)
	if err != nil {
		return nil, err
	}
	defer endRunners()
	wanted := make(map[*graph.Action]bool, len(roots))
	for _, l := range roots {
		if a := ag.ByLabel[l]; a != nil {
			wanted[a] = true
		}
	}
	mat := outdir.New(s.Store, s.Stat, filepath.Join(s.Root, "mc-out"), wanted)
	preload := p.preload
	p.preload = nil // read once; later runs read the latest results themselves
	if ro.Prior != nil {
		// The few actions an edit affects are looked up one by one.
		preload = func() (map[cas.Digest]cas.LatestEntry, error) { return nil, nil }
	}
	rep, runErr := sched.Run(ctx, ag, sched.Options{
		Root: s.Root, Scope: s.Root, Preload: preload, Jobs: jobs, KeepGoing: o.KeepGoing, NoCache: o.NoCache,
		Platform: p.plat, Store: s.Store, DB: s.DB, Files: s.Stat, Executor: executor, Sink: logs,
		Getenv:    p.env.Getenv,
		Remote:    sharedcache.RemoteOptions{Cache: p.remote, Write: cacheWrite, Required: o.RemoteRequired},
		Want:      func(a *graph.Action) bool { return wanted[a] },
		Done:      mat.Done,
		Warn:      p.warn,
		Images:    images,
		Untrusted: o.Untrusted, Trusted: s.TrustedReader(),
		Prior:      ro.Prior,
		GraphEvent: ro.GraphEvent,
	})
	phase("materialize")
	matErr := mat.Wait(rep == nil || rep.Built+rep.Failed > 0)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return nil, runErr
		}
		return nil, errkind.Infra(runErr)
	}
	return &Result{Actions: ag, Report: rep, Logs: logs, Isolated: p.isolated, OutErr: matErr}, nil
}

// startLocal makes the local executor, once, and decides whether stages
// are isolated (sandboxState).
func (p *Pipeline) startLocal() error {
	if p.local != nil {
		return nil
	}
	s, o := p.s, p.opts
	sandboxMode := o.Sandbox
	if o.Untrusted {
		// Untrusted code never runs unsandboxed (SPEC §4a).
		sandboxMode = sandbox.SandboxRequired
	}
	sandboxMode, probed, sandboxed := sandboxState(s.Cache, sandboxMode)
	lo := sandbox.LocalOptions{
		Sandbox:     sandboxMode,
		Probed:      probed,
		Jobs:        o.Jobs,
		Store:       s.Store,
		SandboxDir:  filepath.Join(s.Tier, "sandbox"),
		MountsDir:   filepath.Join(s.Tier, "mounts"),
		KeepSandbox: o.KeepSandbox,
		Warn:        p.warn,
		RootfsDir:   filepath.Join(s.Tier, "rootfs"),
		ImagesDir:   filepath.Join(s.Tier, "images"),
		// A private stage network, when asked for, or the stage fails.
		PrivateNetwork: o.PrivateNetwork,
	}
	if o.Untrusted {
		lo.SeedMountsDir = filepath.Join(s.Cache, "mounts")
		lo.Hide = []string{s.Cache}
	}
	local, err := sandbox.NewLocal(lo)
	if err != nil {
		return errkind.Infra(err)
	}
	isolated, err := sandboxed(local)
	if err != nil {
		local.Close()
		if o.Untrusted {
			return requireSandbox(err)
		}
		return err
	}
	p.local, p.isolated, p.plat = local, isolated, Platform()
	if !isolated {
		// Kept apart: other keys, nothing uploaded.
		p.plat += unisolatedPlatform
	}
	return nil
}

// warn tells the user about something that does not stop the build: a
// log event in a JSON stream, else a line on stderr.
func (p *Pipeline) warn(msg string) {
	if p.opts.JSON && p.sink != nil {
		p.sink.Event(event.Event{Type: event.Log, Time: time.Now(), Line: "warning: " + msg})
		return
	}
	fmt.Fprintf(p.env.Stderr, "mc: warning: %s\n", msg)
}

// Platform is the platform of this machine's action keys.
func Platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
