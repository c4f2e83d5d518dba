package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/sharedcache"
	"github.com/mc-build/mc/ui"
)

type buildFlags struct {
	jobs        int
	keepGoing   bool
	noCache     bool
	deploy      bool
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
	if bf.untrusted && bf.images.pushRequested(bf.deploy) {
		// Deploying and pushing write what trusted systems use.
		return usagef("--untrusted builds deploy nothing and push no images: drop --deploy and --push")
	}
	sandboxMode, err := sandbox.ParseSandboxMode(bf.sandbox)
	if err != nil {
		return usagef("%v", err)
	}
	if bf.untrusted {
		// Untrusted code never runs unsandboxed (SPEC §4a).
		sandboxMode = sandbox.SandboxRequired
	}
	privateNet, err := sandbox.ParseStageNetwork(bf.stageNetwork)
	if err != nil {
		return usagef("%v", err)
	}
	s, err := openSessionTier(ctx, e, bf.cacheDir, bf.untrusted)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	var sink event.Sink
	var text *ui.Text
	if bf.output == "json" {
		sink = ui.NewJSON(e.stdout)
	} else {
		tty := false
		if f, ok := e.stderr.(*os.File); ok {
			tty = term.IsTerminal(int(f.Fd()))
		}
		text = ui.NewText(e.stderr, tty, bf.verbose)
		text.ShowCachedLogs(bf.cachedLogs)
		text.SetColor(useColor(e, bf.color, tty))
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
	obs, sink, err := newObserver(bf.obs, bf.output == "json", sink)
	if err != nil {
		return err
	}
	defer obs.flush()
	reporter, sink := newReporter(ctx, e, bf.report, name, fs.Args(), sink)
	defer reporter.close()
	logs := newLogKeeper(sink)
	sink = logs
	warn := func(msg string) {
		if bf.output == "json" {
			sink.Event(event.Event{Type: event.Log, Time: time.Now(), Line: "warning: " + msg})
			return
		}
		fmt.Fprintf(e.stderr, "mc: warning: %s\n", msg)
	}
	remote, err := openRemote(ctx, e, s.ws, bf.cacheURL)
	if err != nil {
		return err
	}
	if remote != nil && bf.untrusted {
		if remote, err = untrustedRemote(ctx, e, remoteURL(e, s.ws, bf.cacheURL), remote); err != nil {
			return err
		}
	}
	cacheWrite, err := cacheWriteSetting(e, fs.Changed("cache-write"), bf.cacheWrite)
	if err != nil {
		return err
	}

	// Two builds of one workspace must not interleave their mc-out/ writes
	// (nor race on the stat cache of the same files): one build at a time.
	unlock, err := lockWorkspace(ctx, e, s.root)
	if err != nil {
		return err
	}
	defer unlock()

	// `mc cache gc` takes this lock exclusively: it never deletes a blob
	// under a running build.
	gcLock := filepath.Join(s.cache, "gc.lock")
	unlockGC, ok, err := flock.TryLockShared(gcLock)
	if err == nil && !ok {
		fmt.Fprintln(e.stderr, "mc: waiting for `mc cache gc` to finish with the cache...")
		unlockGC, err = flock.LockShared(ctx, gcLock)
	}
	if err != nil {
		return &infraError{fmt.Errorf("locking the cache: %w", err)}
	}
	defer unlockGC()

	// The latest results are read while the graph is evaluated.
	var preload func() (map[cas.Digest]cas.LatestEntry, error)
	if !bf.noCache {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		preload = sched.StartPreload(pctx, s.db, s.root)
	}
	obs.startPhase("evaluate")
	pats, g, err := s.loadGraph(ctx, fs.Args())
	if err != nil {
		return err
	}
	roots, err := selectRoots(g, pats, fs.Args(), test, bf.deploy, s.eval.IsSourceFile)
	if err != nil {
		return err
	}
	hasTests := anyTest(g, roots)
	roots, err = filterAffected(ctx, s, g, roots, bf.affectedSince)
	if err != nil {
		return err
	}
	if test && !hasTests {
		// Before the filter: tests that exist but are not affected are
		// nothing to do (exit 0), not a stale pattern.
		return &noTestsError{strings.Join(fs.Args(), " ")}
	}
	ag, err := g.Actions(roots)
	if err != nil {
		return err
	}
	images, err := imageOptions(e, ag, registrySetting(e, bf.images.registry, s.ws), bf.images.pushRequested(bf.deploy))
	if err != nil {
		return err
	}
	obs.startPhase("execute")
	// sched.Run syncs the store before each batch of results it records
	// (group commit), so blobs need not be fsynced one by one.
	s.store.DeferSync()
	sandboxMode, sandboxed := sandboxState(s.cache, sandboxMode)
	lo := sandbox.LocalOptions{
		Sandbox:     sandboxMode,
		Store:       s.store,
		SandboxDir:  filepath.Join(s.tier, "sandbox"),
		MountsDir:   filepath.Join(s.tier, "mounts"),
		KeepSandbox: bf.keepSandbox,
		Warn:        warn,
		RootfsDir:   filepath.Join(s.tier, "rootfs"),
		ImagesDir:   filepath.Join(s.tier, "images"),
		// A private stage network, when asked for, or the stage fails.
		PrivateNetwork: privateNet,
	}
	if bf.untrusted {
		lo.SeedMountsDir = filepath.Join(s.cache, "mounts")
		lo.Hide = []string{s.cache}
	}
	local, err := sandbox.NewLocal(lo)
	if err != nil {
		return &infraError{err}
	}
	defer local.Close()
	isolated, err := sandboxed(local)
	if err != nil {
		if bf.untrusted {
			return requireSandbox(err)
		}
		return err
	}
	plat := platform()
	if !isolated {
		// Kept apart: other keys, nothing uploaded.
		plat += unisolatedPlatform
		cacheWrite = false
	}
	executor, endRunners, err := setupRunners(ctx, e, s, &bf, fs.Changed("jobs"), remote, local, g, warn)
	if err != nil {
		return err
	}
	defer endRunners()
	wanted := make(map[*graph.Action]bool, len(roots))
	for _, l := range roots {
		if a := ag.ByLabel[l]; a != nil {
			wanted[a] = true
		}
	}
	mat := newMaterializer(s, wanted)
	rep, runErr := sched.Run(ctx, ag, sched.Options{
		Root: s.root, Scope: s.root, Preload: preload, Jobs: bf.jobs, KeepGoing: bf.keepGoing, NoCache: bf.noCache,
		Platform: plat, Store: s.store, DB: s.db, Files: s.stat, Executor: executor, Sink: sink,
		Getenv:    e.getenv,
		Remote:    sharedcache.RemoteOptions{Cache: remote, Write: cacheWrite, Required: bf.remoteReq},
		Want:      func(a *graph.Action) bool { return wanted[a] },
		Done:      mat.done,
		Warn:      warn,
		Images:    images,
		Untrusted: bf.untrusted, Trusted: s.trustedReader(),
	})
	obs.startPhase("materialize")
	matErr := mat.wait(rep == nil || rep.Built+rep.Failed > 0)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return runErr
		}
		return &infraError{runErr}
	}
	obs.record(ctx, s, historyCommand(name, fs.Args()), bf.noCache, ag, rep)
	if err := storeFailures(ctx, s, historyCommand(name, fs.Args()), ag, rep, logs); err != nil {
		warn(fmt.Sprintf("storing the logs of failed stages for mc log: %v", err))
	}
	if text != nil {
		printSummary(e, name, ag, rep, test, logs)
	}
	if !isolated {
		warn("stages ran WITHOUT a sandbox (--sandbox=auto and none works here): their results stay on this machine; install bubblewrap, or use --sandbox=required to refuse")
	}
	if err := obs.finish(e); err != nil {
		return err
	}
	if matErr != nil {
		return &infraError{fmt.Errorf("writing mc-out: %w", matErr)}
	}
	if rep.Failed > 0 || rep.Skipped > 0 {
		return errStageFailed
	}
	return nil
}

// termCols is the width of the terminal w is, or 0.
func termCols(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	c, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return c
}

// useColor is --color, with NO_COLOR (no-color.org) turning auto off.
func useColor(e *env, flag string, tty bool) bool {
	switch flag {
	case "always":
		return true
	case "never":
		return false
	}
	if v, ok := e.getenv("NO_COLOR"); ok && v != "" {
		return false
	}
	return tty
}

// anyTest reports whether roots hold a test stage.
func anyTest(g *graph.Graph, roots []graph.Label) bool {
	for _, l := range roots {
		if t := g.Targets[l]; t != nil && t.Test {
			return true
		}
	}
	return false
}

func lockWorkspace(ctx context.Context, e *env, root string) (func() error, error) {
	dir := filepath.Join(root, "mc-out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, &infraError{err}
	}
	lockPath := filepath.Join(dir, ".lock")
	unlock, ok, err := flock.TryLock(lockPath)
	if err != nil {
		return nil, &infraError{err}
	}
	if ok {
		return unlock, nil
	}
	fmt.Fprintln(e.stderr, "mc: another mc command is using this workspace; waiting for it to finish...")
	unlock, err = flock.Lock(ctx, lockPath)
	if err != nil {
		return nil, err
	}
	return unlock, nil
}

// selectRoots turns patterns into the stages to build. Patterns (//..., :all)
// match the stages a command runs: `build` skips test stages, both skip
// deploy stages without --deploy. A label names one target explicitly and
// may not name a stage the command would not run.
func selectRoots(g *graph.Graph, pats []graph.Pattern, args []string, test, deploy bool, isSource func(pkg, name string) bool) ([]graph.Label, error) {
	namedSource := false
	seen := map[graph.Label]bool{}
	var roots []graph.Label
	add := func(l graph.Label) {
		if !seen[l] {
			seen[l] = true
			roots = append(roots, l)
		}
	}
	wanted := func(t *graph.Target) bool {
		if t.Kind == graph.KindImage {
			return true
		}
		if t.Kind != graph.KindStage {
			return false
		}
		if t.Deploy && !deploy {
			return false
		}
		return test || !t.Test
	}
	labels := make([]graph.Label, 0, len(g.Targets))
	for l := range g.Targets {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Less(labels[j]) })
	for i, p := range pats {
		if p.Kind != graph.PatternTarget {
			for _, l := range labels {
				if p.MatchesPkg(l.Pkg) && wanted(g.Targets[l]) {
					add(l)
				}
			}
			continue
		}
		l := p.Label
		t, ok := g.Targets[l]
		if !ok {
			if st, isOut := g.Outputs[graph.Label{Pkg: l.Pkg, Name: strings.TrimSuffix(l.Name, "/")}]; isOut {
				t = st
			} else if isSource(l.Pkg, l.Name) {
				// A source file is a target too (SPEC §2): there is
				// nothing to build for it.
				namedSource = true
				continue
			} else {
				pkg := g.Packages[l.Pkg]
				var cands []string
				for _, x := range pkg.Targets {
					cands = append(cands, ":"+x.Label.Name)
				}
				return nil, usagef("%s names nothing: no target %q in %s%s", args[i], l.Name, pkg.File, suggest(graph.Closest(":"+l.Name, cands)))
			}
		}
		switch {
		case t.Deploy && !deploy:
			return nil, usagef("%s is a deploy stage: it runs only with --deploy", t.Label)
		case t.Test && !test:
			return nil, usagef("%s is a test stage: run it with mc test", t.Label)
		}
		add(t.Label)
	}
	if len(roots) == 0 && !test && !namedSource {
		return nil, usagef("no stages match %s", strings.Join(args, " "))
	}
	return roots, nil
}

// materializer places the outputs of the requested stages under mc-out/ as
// read-only hard links into the store (as Bazel's outputs are read-only):
// a copy would cost a new inode per output, which on many filesystems is
// the most expensive part of a cold build. Executables are read-only copies
// (a blob's mode is 0444). Like every blob, a linked file that is edited in
// place is caught by verify-on-read and dropped from the store. Files that
// already hold the right bytes are skipped (the stat cache knows them), and
// so are directory outputs that hold exactly their tree, so a null build
// writes nothing; what it places, it records in the stat cache (learn), so
// the next build does not read it back.
//
// It works while the build runs: sched.Options.Done hands it each requested
// stage's result as the stage finishes (its blobs are local by then), so
// mc-out/ fills up behind the build instead of after it.
type materializer struct {
	s      *session
	outDir string
	want   map[*graph.Action]bool
	queue  chan *cas.ActionResult
	wg     sync.WaitGroup

	mu     sync.Mutex
	errs   []error
	placed []placedFile
	// dirs are the directories made so far. They are made one at a time:
	// from several goroutines they queued on the parent directory's lock,
	// and the kernel spins while it waits, burning CPU the build needs.
	dirMu sync.Mutex
	dirs  map[string]bool
}

// materializeWorkers hide the latency of creating files (and of the stat
// calls that find them already right), which dominates for small outputs.
const materializeWorkers = 4

func newMaterializer(s *session, want map[*graph.Action]bool) *materializer {
	m := &materializer{s: s, outDir: filepath.Join(s.root, "mc-out"), want: want,
		queue: make(chan *cas.ActionResult, len(want)), dirs: map[string]bool{}}
	for range materializeWorkers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for res := range m.queue {
				for _, out := range res.Outputs {
					m.place(out)
				}
			}
		}()
	}
	return m
}

// done is sched.Options.Done. The queue holds one entry per requested
// stage, each finishing once, so it never blocks the scheduler.
func (m *materializer) done(a *graph.Action, o *sched.Outcome) {
	if m.want[a] && o.Result != nil {
		m.queue <- o.Result
	}
}

// wait lets the workers finish and returns what went wrong, each error
// naming its output. stagesRan says whether any stage ran (see learn).
func (m *materializer) wait(stagesRan bool) error {
	close(m.queue)
	m.wg.Wait()
	m.learn(stagesRan)
	return errors.Join(m.errs...)
}

func (m *materializer) fail(err error) {
	m.mu.Lock()
	m.errs = append(m.errs, err)
	m.mu.Unlock()
}

func (m *materializer) place(out cas.Output) {
	dst := filepath.Join(m.outDir, filepath.FromSlash(out.Path))
	if out.IsDir {
		t, err := m.s.store.GetTree(out.Digest)
		if err != nil {
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		if m.treeHolds(t, dst) {
			return
		}
		// Built aside and swapped in whole by the store.
		if err := m.s.store.MaterializeTree(out.Digest, dst, true); err != nil {
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		for _, e := range t.Entries {
			if e.Dir || e.Symlink != "" {
				continue
			}
			p := filepath.Join(dst, filepath.FromSlash(e.Path))
			m.placedNow(p, cas.Output{Path: path.Join(out.Path, e.Path), Digest: e.Digest, Size: e.Size, Exec: e.Exec})
		}
		return
	}
	if fi, err := m.s.stat.Digest(dst); err == nil && fi.Digest == out.Digest && fi.Exec == out.Exec {
		return
	}
	dir := filepath.Dir(dst)
	m.dirMu.Lock()
	if !m.dirs[dir] {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			m.dirMu.Unlock()
			m.fail(fmt.Errorf("%s: %w", out.Path, err))
			return
		}
		m.dirs[dir] = true
	}
	m.dirMu.Unlock()
	if err := m.s.store.Materialize(out.Digest, dst, out.Exec, true); err != nil {
		m.fail(fmt.Errorf("%s: %w", out.Path, err))
		return
	}
	m.placedNow(dst, out)
}

// placedNow remembers the file just placed at p, to be recorded in the stat
// cache once the build is over (learn).
func (m *materializer) placedNow(p string, out cas.Output) {
	if fi, err := os.Lstat(p); err == nil {
		m.mu.Lock()
		m.placed = append(m.placed, placedFile{path: p, out: out, fi: fi})
		m.mu.Unlock()
	}
}

// treeHolds reports whether the directory dst holds exactly the tree t:
// its files (known to the stat cache: a stat each), executable bits,
// symlinks and empty directories, and nothing else. A build that finds a
// directory output in place then leaves it alone, where rebuilding it
// would make every null build link each of its files again.
func (m *materializer) treeHolds(t *cas.Tree, dst string) bool {
	// The names each directory of the tree must hold, "." for dst itself.
	want := map[string]map[string]bool{".": {}}
	var dirOf func(rel string) map[string]bool
	dirOf = func(rel string) map[string]bool {
		d, ok := want[rel]
		if !ok {
			d = map[string]bool{}
			want[rel] = d
			dirOf(path.Dir(rel))[path.Base(rel)] = true
		}
		return d
	}
	for _, e := range t.Entries {
		if e.Dir {
			dirOf(e.Path)
		} else {
			dirOf(path.Dir(e.Path))[path.Base(e.Path)] = true
		}
	}
	for rel, names := range want {
		dir := filepath.Join(dst, filepath.FromSlash(rel))
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() { // a symlink to a directory is not one
			return false
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != len(names) {
			return false
		}
		for _, e := range ents {
			if !names[e.Name()] {
				return false
			}
		}
	}
	for _, e := range t.Entries {
		p := filepath.Join(dst, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			return false
		}
		switch {
		case e.Dir:
			if !fi.IsDir() {
				return false
			}
		case e.Symlink != "":
			if target, err := os.Readlink(p); err != nil || target != e.Symlink {
				return false
			}
		default:
			if !fi.Mode().IsRegular() {
				return false
			}
			if got, err := m.s.stat.Digest(p); err != nil || got.Digest != e.Digest || got.Exec != e.Exec {
				return false
			}
		}
	}
	return true
}

// placedFile is a file the materializer placed, as it found it then.
type placedFile struct {
	path string
	out  cas.Output
	fi   os.FileInfo
}

// learn records the placed files in the stat cache without reading them
// back (cas.StatCache.Learn), so that the next build finds them right with
// a stat instead of reading every output. It runs once no stage is left
// to link a placed blob into its sandbox, which moves the file's ctime;
// when no stage ran (a build of cache hits) the files are as placed.
// Errors are ignored: a file not recorded is only read by the next build.
func (m *materializer) learn(restat bool) {
	// A stat each, on the materializer's workers: it ends the build.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range materializeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(m.placed); i = int(next.Add(1)) - 1 {
				p := m.placed[i]
				_ = m.s.stat.Learn(p.path, cas.FileInfo{Digest: p.out.Digest, Size: p.out.Size, Exec: p.out.Exec}, p.fi, restat)
			}
		}()
	}
	wg.Wait()
}

func printSummary(e *env, name string, ag *graph.ActionGraph, rep *sched.Report, test bool, logs *logKeeper) {
	w := e.stderr
	if test {
		var tests []*graph.Action
		for _, a := range ag.Actions {
			if a.Target.Test {
				tests = append(tests, a)
			}
		}
		pass, fail := 0, 0
		for _, a := range tests {
			o := rep.Outcomes[a]
			status := "NOT RUN"
			switch {
			case o == nil:
			case o.Status == sched.StatusBuilt:
				status, pass = "PASSED", pass+1
			case o.Status == sched.StatusCached:
				status, pass = "PASSED (cached)", pass+1
			case o.Status == sched.StatusFailed:
				status, fail = "FAILED", fail+1
			}
			fmt.Fprintf(w, "%-40s %s\n", a.Label(), status)
		}
		fmt.Fprintf(w, "Tests: %d passed, %d failed, %d not run\n", pass, fail, len(tests)-pass-fail)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d built, %d cached, %d failed", strings.ToUpper(name[:1])+name[1:], rep.Built, rep.Cached, rep.Failed)
	if rep.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", rep.Skipped)
	}
	fmt.Fprintf(&b, " in %s", fmtDur(rep.Wall))
	if len(rep.CriticalPath) > 0 {
		var ls []string
		for _, a := range rep.CriticalPath {
			ls = append(ls, a.Label().String())
		}
		if len(ls) > 4 {
			ls = append(ls[:2], "…("+fmt.Sprint(len(ls)-3)+" more)…", ls[len(ls)-1])
		}
		fmt.Fprintf(&b, " · critical path %s: %s", fmtDur(rep.CriticalTime), strings.Join(ls, " -> "))
	}
	line := b.String()
	if cols := termCols(w); cols > 0 {
		// Wrapped at spaces, not by the terminal in the middle of a word.
		line = wrapLines(line, cols-1)
	}
	fmt.Fprintln(w, line)
	printRemoteSummary(w, rep.Remote)
	printFailures(w, e.getenv, ag, rep, logs)
}
