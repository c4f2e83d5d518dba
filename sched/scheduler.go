package sched

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sharedcache"
)

// Digester gives file digests through the stat cache (*cas.StatCache).
type Digester interface {
	Digest(absPath string) (cas.FileInfo, error)
}

// StartPreload starts reading the latest result of every label of scope
// (DB.LatestEntries), which Run otherwise reads first, and returns what
// waits for it (Options.Preload): a caller starts it before evaluating the
// graph, which leaves a core free.
func StartPreload(ctx context.Context, db *cas.DB, scope string) func() (map[cas.Digest]cas.LatestEntry, error) {
	type loaded struct {
		m   map[cas.Digest]cas.LatestEntry
		err error
	}
	ch := make(chan loaded, 1)
	go func() {
		m, err := db.LatestEntries(ctx, scope)
		ch <- loaded{m, err}
	}()
	var once sync.Once
	var res loaded
	return func() (map[cas.Digest]cas.LatestEntry, error) {
		once.Do(func() { res = <-ch })
		return res.m, res.err
	}
}

// Options configures one run of the scheduler.
type Options struct {
	Root string // workspace root on this machine: where sources are read
	// Scope names this workspace in the action cache's table of latest
	// results (the workspace root); "" disables the preload.
	Scope string
	// Preload, when set, gives the preload (see StartPreload) instead of
	// Run reading it.
	Preload   func() (map[cas.Digest]cas.LatestEntry, error)
	Jobs      int    // stages run at once; cache lookups are not limited
	KeepGoing bool   // go on after a failure with everything that does not depend on it
	NoCache   bool   // neither read nor write the action cache
	Platform  string // part of every key, e.g. "linux/amd64"
	Store     *cas.Store
	DB        *cas.DB
	Files     Digester
	Executor  Executor
	Sink      event.Sink
	// Getenv looks up secret values in the invoking environment.
	Getenv func(string) (string, bool)
	// Remote is the shared cache tier; its zero value is none.
	Remote sharedcache.RemoteOptions
	// Want reports the actions whose outputs must be in the local store
	// when Run returns (the requested targets, for mc-out/). Outputs of
	// other actions found in the shared cache are downloaded only when a
	// stage that runs needs them. Nil: every action.
	Want func(*Action) bool
	// Done, if set, is told of each action's outcome as the action
	// finishes (built, cached, failed or skipped), once, on the goroutine
	// that finished it and outside the scheduler's lock. The outputs of a
	// wanted action with a result are in the local store by then: mc
	// writes mc-out/ while the rest of the graph builds. It must not block.
	Done func(*Action, *Outcome)
	// Warn reports a non-fatal problem (the shared cache failing); nil
	// sends it as a log event.
	Warn func(string)
	// Images resolves registry images and pushes built ones (image_sched.go).
	Images ImageOptions
	// Untrusted makes this an untrusted build (SPEC §4a): a stage that
	// names a secret fails, cache hit or not (a trusted result of such a
	// stage may hold what the secret unlocked). Store, DB and Remote are
	// then the untrusted tier's; Trusted is what it may read of the
	// trusted one.
	Untrusted bool
	// Trusted, if set, is the trusted tier's action cache, looked up after
	// DB misses and never written: an untrusted build reuses trusted
	// results (their blobs come through Store, which reads through to the
	// trusted store by copy) but records its own in DB only.
	Trusted cas.ActionReader
	// Prior, if set, gives the outcome an action had in an earlier Run of
	// this process when nothing it depends on has changed since (mc watch
	// rebuilds only what an edit affects). An action with a prior outcome
	// holding a result is taken as done with it: no key, no lookup, no
	// event, not counted in the Report's tallies; its dependents use its
	// result. Nil, or an outcome without a result, runs the action. The
	// graph run may then be a part of a larger one, holding the direct
	// dependencies of its actions: Prior answers for those beyond.
	Prior func(*Action) *Outcome
	// GraphEvent puts the action graph in the build_started event (for
	// --output=json and --report: what mc serve draws); off, the terminal
	// build pays nothing for it.
	GraphEvent bool
}

// Action is graph.Action, named here for Options.Want.
type Action = graph.Action

// Status is the state an action ended in.
type Status int

const (
	StatusPending Status = iota
	StatusCached
	StatusBuilt
	StatusFailed
	StatusSkipped // not run: a dependency failed, or fail-fast stopped the build
)

// Outcome is what happened to one action.
type Outcome struct {
	Status Status
	Key    cas.Digest
	Parts  *graph.KeyParts
	Result *cas.ActionResult // Built or Cached
	Err    error             // Failed: why; Skipped: the reason
	// Start and End bound the stage's execution (zero for cache hits).
	Start, End time.Time
}

// Report is the result of Run.
type Report struct {
	Outcomes                       map[*graph.Action]*Outcome
	Built, Cached, Failed, Skipped int
	Wall                           time.Duration
	CriticalPath                   []*graph.Action
	CriticalTime                   time.Duration
	// Remote is what the shared cache did; nil without one.
	Remote *event.RemoteStats
}

// Run builds every action of ag: each one whose key is in the action cache is
// restored from it, the others run on the executor once their dependencies
// are done. Stage failures are reported in the Report (exit 1); the error is
// for infrastructure failures (exit 3) and cancellation.
func Run(ctx context.Context, ag *graph.ActionGraph, opts Options) (*Report, error) {
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	s := &scheduler{
		opts:     opts,
		ag:       ag,
		outcomes: make(map[*graph.Action]*Outcome, len(ag.Actions)),
		waiting:  make(map[*graph.Action]int, len(ag.Actions)),
		slots:    newSlots(opts.Jobs),
		inflight: map[cas.Digest]*flight{},
	}
	start := time.Now()
	if !opts.NoCache && opts.Scope != "" {
		// One query for the latest result of every label: in a null build
		// every key is among them.
		load := opts.Preload
		if load == nil {
			load = func() (map[cas.Digest]cas.LatestEntry, error) { return opts.DB.LatestEntries(ctx, opts.Scope) }
		}
		pre, err := load()
		if err != nil {
			return nil, err
		}
		s.preload = pre
	}
	s.takePrior()
	started := event.Event{Type: event.BuildStarted, Time: start, Total: len(ag.Actions) - s.nprior}
	if opts.GraphEvent {
		started.Graph = graphEvent(ag)
	}
	opts.Sink.Event(started)
	if la, ok := opts.Executor.(Lookahead); ok {
		s.ahead = la
		la.Ahead(len(ag.Actions) - s.nprior)
	}
	s.commit = newCommitter(opts.Store, opts.DB, opts.Scope)
	if opts.Remote.Cache != nil && !opts.NoCache {
		warn := opts.Warn
		if warn == nil {
			warn = func(msg string) {
				opts.Sink.Event(event.Event{Type: event.Log, Time: time.Now(), Line: "warning: " + msg})
			}
		}
		s.remote = sharedcache.NewTier(opts.Remote, opts.Store, warn)
	}
	s.run(ctx)
	var remote *event.RemoteStats
	if s.remote != nil {
		remote = s.remote.Finish()
	}
	if err := s.commit.close(); err != nil {
		s.setInfraErr(fmt.Errorf("recording results in the action cache: %w", err))
	}
	if len(s.hitKeys) > 0 {
		// Last-use times for `mc cache gc` (least recently used goes
		// first). Not the build's context: a Ctrl-C'd build's hits count.
		if err := opts.DB.TouchActions(context.Background(), s.hitKeys, time.Now()); err != nil {
			s.setInfraErr(fmt.Errorf("recording cache use: %w", err))
		}
	}
	r := s.report(time.Since(start))
	r.Remote = remote
	counts := &event.Summary{Built: r.Built, Cached: r.Cached, Failed: r.Failed, Skipped: r.Skipped,
		CriticalPathMS: r.CriticalTime.Milliseconds(), Remote: remote}
	for _, a := range r.CriticalPath {
		counts.CriticalPath = append(counts.CriticalPath, a.Label().String())
	}
	opts.Sink.Event(event.Event{Type: event.BuildFinished, Time: time.Now(), DurationMS: r.Wall.Milliseconds(), Summary: counts})
	if s.infraErr != nil {
		return r, s.infraErr
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}

type scheduler struct {
	opts Options
	ag   *graph.ActionGraph
	// slots are the -j job slots, given out by priority (slots.go).
	slots    *slots
	prioOnce sync.Once
	prio     map[*graph.Action]time.Duration // see priority

	mu       sync.Mutex
	outcomes map[*graph.Action]*Outcome
	waiting  map[*graph.Action]int // deps not yet done
	stopped  bool                  // fail-fast: start nothing new
	infraErr error
	wg       sync.WaitGroup
	inflight map[cas.Digest]*flight
	preload  map[cas.Digest]cas.LatestEntry // read-only after Run starts
	commit   *committer
	remote   *sharedcache.Tier // nil: no shared cache
	hitKeys  []cas.Digest      // cache hits, for TouchActions; guarded by mu
	images   imageHooks        // registry references resolved, image builds (image_sched.go)
	ahead    Lookahead         // nil unless the executor prepares ahead of demand

	// rewinds are the producers running again (rewind.go); guarded by mu.
	rewinds map[*graph.Action]*flight
	// prior holds the actions done before Run started (Options.Prior).
	prior  map[*graph.Action]bool
	nprior int
}

// takePrior records the outcomes Options.Prior gives as done.
func (s *scheduler) takePrior() {
	if s.opts.Prior == nil {
		return
	}
	s.prior = map[*graph.Action]bool{}
	for _, a := range s.ag.Actions {
		if o := s.opts.Prior(a); o != nil && o.Result != nil {
			s.outcomes[a] = o
			s.prior[a] = true
		}
	}
	s.nprior = len(s.prior)
}

// flight lets actions with the same digest share one execution.
type flight struct {
	done chan struct{}
	res  *cas.ActionResult
	err  error
	fail error
}

func (s *scheduler) run(ctx context.Context) {
	var ready []*graph.Action
	s.mu.Lock()
	for _, a := range s.ag.Actions {
		if s.prior[a] {
			continue
		}
		n := 0
		for _, d := range a.Deps {
			if !s.prior[d] {
				n++
			}
		}
		s.waiting[a] = n
		if n == 0 {
			ready = append(ready, a)
		}
	}
	for _, a := range ready {
		s.launch(ctx, a, false)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// launch starts a goroutine for a ready action; with slot, the action
// holds a job slot already (passed on by the action that made it ready).
// Called with s.mu held.
//
// An action keeps its slot until its dependents are launched: finish hands
// it to the one with the longest chain after it, if no waiting action's is
// longer. Released before, the slot went to whatever was waiting, ahead of
// the next stage on the chain to the end of the build, which was still
// computing its key.
func (s *scheduler) launch(ctx context.Context, a *graph.Action, slot bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		held := slot
		o := s.doAction(ctx, a, false, &held)
		if held && s.pushes(a) {
			// A push is network time, not a job: others run meanwhile.
			s.slots.release()
			held = false
		}
		o = s.afterImage(ctx, a, o) // pushed before any dependent starts
		s.finish(ctx, a, o, &held)
		if held {
			s.slots.release()
		}
	}()
}

// finish records an outcome and releases dependents. A failed or skipped
// dependency makes its dependents skipped without running them. With *held,
// a holds a job slot, which may go to a dependent (then *held is false).
func (s *scheduler) finish(ctx context.Context, a *graph.Action, o *Outcome, held *bool) {
	if s.opts.Done != nil {
		s.opts.Done(a, o)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[a] = o
	if s.ahead != nil {
		s.ahead.Ahead(len(s.ag.Actions) - len(s.outcomes))
	}
	// (Prior outcomes are in s.outcomes from the start, so the count above
	// is of actions still to do.)
	if o.Status == StatusFailed && !s.opts.KeepGoing {
		s.stopped = true
	}
	var next []*graph.Action
	for _, r := range a.Rdeps {
		if s.prior[r] {
			continue // done before this Run
		}
		s.waiting[r]--
		if s.waiting[r] > 0 {
			continue
		}
		var failedDep *graph.Action
		for _, d := range r.Deps {
			if st := s.outcomes[d].Status; st == StatusFailed || st == StatusSkipped {
				failedDep = d
				break
			}
		}
		switch {
		case failedDep != nil:
			s.skip(ctx, r, fmt.Errorf("dependency %s did not build", failedDep.Label()))
		case s.stopped || ctx.Err() != nil:
			s.skip(ctx, r, errors.New("build stopped after a failure (use -k to keep going)"))
		default:
			next = append(next, r)
		}
	}
	pass := -1 // the dependent given a's slot
	if *held {
		for i, r := range next {
			if pass < 0 || s.priority(r) > s.priority(next[pass]) {
				pass = i
			}
		}
		if pass >= 0 && s.priority(next[pass]) < s.slots.first() {
			pass = -1
		}
	}
	for i, r := range next {
		s.launch(ctx, r, i == pass)
	}
	if pass >= 0 {
		*held = false
	}
}

// skip marks r skipped and propagates through finish. Called with s.mu held;
// finish is re-entered on a goroutine to keep the lock discipline simple.
func (s *scheduler) skip(ctx context.Context, r *graph.Action, why error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.opts.Sink.Event(event.Event{Type: event.StageSkipped, Time: time.Now(), Label: r.Label().String(), Reason: why.Error()})
		s.finish(ctx, r, &Outcome{Status: StatusSkipped, Err: why}, new(bool))
	}()
}

func (s *scheduler) outcome(a *graph.Action) *Outcome {
	s.mu.Lock()
	o := s.outcomes[a]
	s.mu.Unlock()
	if o == nil && s.opts.Prior != nil {
		// A dependency outside the graph run (mc watch runs the actions an
		// edit affects and their direct dependencies): a rewind of one of
		// those keys it from its own dependencies' prior results.
		o = s.opts.Prior(a)
	}
	return o
}

func (s *scheduler) setInfraErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.infraErr == nil {
		s.infraErr = err
	}
	s.stopped = true
}

func (s *scheduler) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// doAction computes the action's key, tries the cache, and runs it on a
// miss, in a job slot: *held says whether it holds one (taken here when
// not; see launch). With rerun (a rewind, see rewind.go) the action runs
// whatever the cache holds, in the job slot of the dependent that needs it
// and without sharing another action's execution.
func (s *scheduler) doAction(ctx context.Context, a *graph.Action, rerun bool, held *bool) *Outcome {
	t := a.Target
	label := t.Label.String()
	ready := time.Now()
	fail := func(err error) *Outcome {
		s.opts.Sink.Event(event.Event{Type: event.StageFailed, Time: time.Now(), Label: label, Pos: t.Pos.String(), Error: err.Error()})
		return &Outcome{Status: StatusFailed, Err: err}
	}
	if ctx.Err() != nil {
		return &Outcome{Status: StatusSkipped, Err: ctx.Err()}
	}
	parts, inputs, err := s.keyParts(ctx, a)
	if err != nil {
		return fail(err)
	}
	key := parts.Digest()
	o := &Outcome{Key: key, Parts: parts}
	if s.opts.Untrusted && len(t.Secrets) > 0 {
		return fail(fmt.Errorf("secret %s: an untrusted build sees no secrets (a pull request's code must not read "+
			"what trusted builds are given); build this stage in a trusted build", t.Secrets[0]))
	}
	cacheable := t.Cache && !t.Deploy && !s.opts.NoCache
	if cacheable && !rerun {
		res, fromRemote, err := s.lookup(ctx, a, key)
		if err != nil {
			s.setInfraErr(err)
			return &Outcome{Status: StatusSkipped, Err: err, Key: key, Parts: parts}
		}
		if res != nil {
			// Only hits not recorded as used within the hour need a write:
			// a repeated null build touches nothing.
			if e, ok := s.preload[key]; !ok || time.Since(e.LastUse) > cas.TouchGranularity {
				s.mu.Lock()
				s.hitKeys = append(s.hitKeys, key)
				s.mu.Unlock()
			}
			o.Status, o.Result = StatusCached, res
			s.replayLog(ctx, label, res.Log)
			s.opts.Sink.Event(event.Event{Type: event.StageCached, Time: time.Now(), Label: label, Key: key.String(),
				DurationMS: res.Duration.Milliseconds(), Outputs: eventOutputs(res.Outputs), Remote: fromRemote})
			return o
		}
	}
	secrets := map[string]string{}
	for _, name := range t.Secrets {
		v, ok := s.opts.Getenv(name)
		if !ok {
			return fail(fmt.Errorf("secret %s is not set in the environment", name))
		}
		secrets[name] = v
	}

	// One execution per digest at a time; a second action with the same key
	// waits for the first and shares its result.
	if rerun {
		return s.execute(ctx, a, o, inputs, secrets, &flight{}, ready)
	}
	s.mu.Lock()
	if f, ok := s.inflight[key]; ok {
		s.mu.Unlock()
		if *held {
			// Not kept while waiting: the execution waited for may need it.
			s.slots.release()
			*held = false
		}
		<-f.done
		if f.err != nil || f.fail != nil {
			if f.fail != nil {
				return fail(f.fail)
			}
			return &Outcome{Status: StatusSkipped, Err: f.err}
		}
		o.Status, o.Result = StatusCached, f.res
		return o
	}
	f := &flight{done: make(chan struct{})}
	s.inflight[key] = f
	s.mu.Unlock()
	defer close(f.done)

	if !*held {
		if err := s.slots.acquire(ctx, s.priority(a)); err != nil {
			f.err = err
			return &Outcome{Status: StatusSkipped, Err: err}
		}
		*held = true
	}
	return s.execute(ctx, a, o, inputs, secrets, f, ready)
}

// execute runs the action a (its key and key parts in o) on the executor,
// once its dependencies' outputs are local and good, and records the
// result in o and f.
func (s *scheduler) execute(ctx context.Context, a *graph.Action, o *Outcome, inputs []Input, secrets map[string]string, f *flight, ready time.Time) *Outcome {
	t := a.Target
	label := t.Label.String()
	fail := func(err error) *Outcome {
		s.opts.Sink.Event(event.Event{Type: event.StageFailed, Time: time.Now(), Label: label, Pos: t.Pos.String(), Error: err.Error()})
		return &Outcome{Status: StatusFailed, Err: err}
	}
	cacheable := t.Cache && !t.Deploy && !s.opts.NoCache
	if s.isStopped() && !s.opts.KeepGoing {
		f.err = errors.New("build stopped after a failure")
		return &Outcome{Status: StatusSkipped, Err: f.err}
	}

	rewound, err := s.readyInputs(ctx, a)
	if err != nil {
		f.err = err
		if ctx.Err() != nil {
			return &Outcome{Status: StatusSkipped, Err: ctx.Err()}
		}
		var re *rewindError
		if !errors.As(err, &re) {
			s.setInfraErr(fmt.Errorf("%s: %w", label, err))
		}
		return fail(err)
	}
	if rewound {
		// A producer ran again: a stage that is not reproducible may have
		// made other bytes, which changes this action's inputs and key.
		parts, in, err := s.keyParts(ctx, a)
		if err != nil {
			f.err = err
			return fail(err)
		}
		inputs, o.Key, o.Parts = in, parts.Digest(), parts
	}
	key, parts := o.Key, o.Parts
	started := time.Now()
	s.opts.Sink.Event(event.Event{Type: event.StageStarted, Time: started, Label: label, Key: key.String(),
		QueuedMS: started.Sub(ready).Milliseconds()})
	lw := &lineWriter{sink: s.opts.Sink, label: label}
	job := &Job{
		Label: t.Label, Key: key, Pkg: t.Label.Pkg, Cmds: t.Cmds, Env: t.Env, Secrets: secrets,
		Inputs: inputs, Outs: pkgPaths(t.Label.Pkg, t.Outs), Timeout: t.Timeout, Network: t.Network,
		CacheMounts: t.CacheMounts, Image: t.Image, Log: lw,
	}
	s.imageJob(a, parts, job)
	o.Start = time.Now()
	res, err := s.opts.Executor.Run(ctx, job)
	o.End = time.Now()
	lw.Close()
	if err != nil {
		f.err = err
		if ctx.Err() != nil {
			// Every stage_started gets a terminal event, also when killed.
			s.opts.Sink.Event(event.Event{Type: event.StageFailed, Time: time.Now(), Label: label, Pos: t.Pos.String(), Key: key.String(),
				DurationMS: o.End.Sub(o.Start).Milliseconds(), Error: "interrupted"})
			return &Outcome{Status: StatusFailed, Err: ctx.Err(), Key: key, Parts: parts, Start: o.Start, End: o.End}
		}
		s.setInfraErr(fmt.Errorf("%s: %w", label, err))
		return fail(err)
	}
	if res.Err != nil {
		f.fail = res.Err
		ev := event.Event{Type: event.StageFailed, Time: time.Now(), Label: label, Pos: t.Pos.String(), Key: key.String(),
			DurationMS: res.Duration.Milliseconds(), ExitCode: res.ExitCode, Error: res.Err.Error(),
			Phases: eventPhases(res.Phases)}
		s.opts.Sink.Event(ev)
		o.Status, o.Err = StatusFailed, res.Err
		return o
	}
	ar := &cas.ActionResult{Label: label, Outputs: res.Outputs, Log: res.Log, ExitCode: 0,
		Duration: res.Duration, Created: time.Now()}
	if cacheable {
		s.commit.add(key, ar)
		if s.remote != nil {
			s.remote.Upload(ctx, key, ar, s.setInfraErr)
		}
	}
	f.res = ar
	o.Status, o.Result = StatusBuilt, ar
	s.opts.Sink.Event(event.Event{Type: event.StageFinished, Time: time.Now(), Label: label, Key: key.String(),
		DurationMS: res.Duration.Milliseconds(), Outputs: eventOutputs(ar.Outputs), Phases: eventPhases(res.Phases)})
	return o
}

// lookup returns a cached result whose every blob is in the local store,
// or else, through the shared cache, in the remote one (then fromRemote).
// A result referring to a missing blob is a miss: the stage runs again.
func (s *scheduler) lookup(ctx context.Context, a *graph.Action, key cas.Digest) (res *cas.ActionResult, fromRemote bool, err error) {
	if e, ok := s.preload[key]; ok {
		res, _ = cas.DecodeResult(e.Result) // undecodable: fall through to the query
	}
	if res == nil {
		if res, err = s.opts.DB.GetAction(ctx, key); err != nil {
			return nil, false, err
		}
	}
	if res == nil && s.opts.Trusted != nil {
		if res, err = s.opts.Trusted.GetAction(ctx, key); err != nil {
			return nil, false, err
		}
		if res != nil && s.allLocal(res) {
			// Recorded in this tier's own action cache, as a shared-cache
			// hit is: the next lookup needs no second query.
			s.commit.add(key, res)
			return res, false, nil
		}
	}
	if res != nil && s.allLocal(res) {
		return res, false, nil
	}
	if s.remote == nil {
		return nil, false, nil
	}
	local := res
	want := s.opts.Want == nil || s.opts.Want(a)
	res, err = s.remote.Lookup(ctx, key, local, want)
	if err != nil || res == nil {
		return nil, false, err
	}
	if want {
		// Needed in mc-out/: download now, while the rest of the graph is
		// looked up. A blob that is gone or corrupt means running the stage.
		if err := s.remote.Ensure(ctx, res.Outputs); err != nil {
			s.remote.Miss()
			if s.opts.Remote.Required && !lost(err) {
				return nil, false, err
			}
			return nil, false, nil
		}
	}
	s.remote.Hit()
	if local == nil {
		// Remembered locally: the next lookup needs no round trip for the
		// result, only for blobs that are still not local.
		s.commit.add(key, res)
	}
	return res, true, nil
}

// allLocal reports whether every output blob of res is in the local store
// and good (verified, see cas.Store.Check): a corrupt one is removed, and
// the action runs again. A missing log blob is not a reason to rerun:
// replayLog says it is gone.
func (s *scheduler) allLocal(res *cas.ActionResult) bool {
	return len(s.badOutputs(res.Outputs)) == 0
}

func (s *scheduler) replayLog(ctx context.Context, label string, d cas.Digest) {
	if d.IsZero() || d == cas.Empty {
		return
	}
	if s.remote != nil && s.opts.Store.Check(d) != nil {
		// A failure shows up below as an unavailable log.
		_ = s.remote.Fetch(ctx, d, -1)
	}
	b, err := s.opts.Store.ReadBytes(d)
	if err != nil {
		s.opts.Sink.Event(event.Event{Type: event.Log, Time: time.Now(), Label: label, Cached: true,
			Line: fmt.Sprintf("(stored log unavailable: %v)", err)})
		return
	}
	lw := &lineWriter{sink: s.opts.Sink, label: label, cached: true}
	lw.Write(b)
	lw.Close()
}

func pkgPaths(pkg string, outs []string) []string {
	r := make([]string, len(outs))
	for i, o := range outs {
		r[i] = path.Join(pkg, o)
		if strings.HasSuffix(o, "/") {
			r[i] += "/"
		}
	}
	return r
}

func eventOutputs(outs []cas.Output) []event.Output {
	r := make([]event.Output, len(outs))
	for i, o := range outs {
		r[i] = event.Output{Path: o.Path, Digest: o.Digest.String(), Size: o.Size}
	}
	return r
}

func (s *scheduler) report(wall time.Duration) *Report {
	r := &Report{Outcomes: s.outcomes, Wall: wall}
	for a, o := range s.outcomes {
		if s.prior[a] {
			continue
		}
		switch o.Status {
		case StatusBuilt:
			r.Built++
		case StatusCached:
			r.Cached++
		case StatusFailed:
			r.Failed++
		default:
			r.Skipped++
		}
	}
	// Actions never reached (a cancelled build) count as skipped.
	r.Skipped += len(s.ag.Actions) - len(s.outcomes)
	outs := s.outcomes
	if s.nprior > 0 {
		// Only this Run's stages make its critical path.
		outs = make(map[*graph.Action]*Outcome, len(s.outcomes)-s.nprior)
		for a, o := range s.outcomes {
			if !s.prior[a] {
				outs[a] = o
			}
		}
	}
	r.CriticalPath, r.CriticalTime = criticalPath(s.ag, outs)
	return r
}

// criticalPath is the chain of actions with the largest total run time: the
// lower bound of the build's wall time however many workers there were.
func criticalPath(ag *graph.ActionGraph, outs map[*graph.Action]*Outcome) ([]*graph.Action, time.Duration) {
	best := make(map[*graph.Action]time.Duration, len(ag.Actions))
	prev := make(map[*graph.Action]*graph.Action, len(ag.Actions))
	var end *graph.Action
	for _, a := range ag.Actions { // topological order
		if outs[a] == nil {
			continue // not part of this run (prior, or never reached)
		}
		var own time.Duration
		if o := outs[a]; !o.Start.IsZero() {
			own = o.End.Sub(o.Start)
		}
		var before time.Duration
		for _, d := range a.Deps {
			if outs[d] == nil {
				continue
			}
			if best[d] > before || prev[a] == nil && best[d] == before {
				before, prev[a] = best[d], d
			}
		}
		best[a] = before + own
		if end == nil || best[a] > best[end] {
			end = a
		}
	}
	if end == nil || best[end] == 0 {
		return nil, 0
	}
	var path []*graph.Action
	for a := end; a != nil; a = prev[a] {
		path = append([]*graph.Action{a}, path...)
	}
	return path, best[end]
}
