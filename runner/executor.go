package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// Options configure an Executor. Provider, Objects, Remote, Store,
// Workspace and CacheURL are required.
type Options struct {
	Provider Provider
	Objects  Objects
	Remote   cas.Remote
	Store    *cas.Store // the coordinator's local store
	// Workspace names the workspace in the mc:workspace tag.
	Workspace string
	CacheURL  string // given to the agent
	Endpoint  string // S3-compatible endpoint given to the agent ("" for AWS)
	Region    string // S3 region given to the agent ("" for its default)
	// Binary is the mc executable runners fetch; "" for this process's own
	// (MC_RUNNER_BINARY overrides it in cmd/mc). It must run on the
	// runner's OS: see the README on static builds.
	Binary string
	// MaxInstances bounds the stages running on runners at once (0:
	// unbounded; -j bounds them anyway). Spares of the warm pool come on
	// top: at most MaxInstances + Warm machines are up at once.
	MaxInstances int
	// Warm caps the spare runners booting ahead of the stages that will
	// take them (pool.go sizes the pool below it); 0 turns the pool off,
	// negative means the default, 8×MaxInstances (32 when unbounded).
	Warm int
	TTL  time.Duration // hard lifetime of a runner; 0: 2h
	// Machine returns a stage's machine hints (instance_type, disk_gb, ami).
	Machine func(graph.Label) map[string]string
	// Keep names the stage whose runner is kept (--keep-runner).
	Keep graph.Label
	// Fallback runs what has no command to run remotely (image builds).
	Fallback sched.Executor
	// Timing of the protocol; zero values take the defaults.
	Heartbeat   time.Duration // agent heartbeat interval (2s)
	Lease       time.Duration // a runner silent this long is lost (3×Heartbeat)
	BootTimeout time.Duration // first heartbeat expected within (5m)
	Poll        time.Duration // coordinator polling interval of heartbeats and logs (500ms)
	ResultPoll  time.Duration // how often a running job's result is looked for (50ms)
	AgentPoll   time.Duration // how often a waiting agent looks for its job (50ms)
	MaxRetries  int           // new runners after a lost one (0: 2; negative: none)
	// Capacity retries: launch errors wrapping ErrCapacity are retried this
	// many times (8), waiting CapacityBackoff (2s) doubled each time (at
	// most 1m).
	CapacityRetries int
	CapacityBackoff time.Duration
	// Notify receives one-line reports (capacity retries, lost runners,
	// kept runners); nil drops them.
	Notify func(string)
	// NotifyListen, when set, is the host:port runners can reach this
	// machine at: the coordinator serves wake-ups there (notify.go) and
	// both sides poll S3 only as a fallback. "127.0.0.1:0" for local
	// runners.
	NotifyListen string
	// BakedDir is where runner images may hold mc by digest (see
	// BootstrapSpec); "" for DefaultBakedDir.
	BakedDir string
	// Debug receives the warm pool's decisions (MC_RUNNER_DEBUG=1); nil
	// drops them.
	Debug func(format string, args ...any)
	// RunID names this run; "" for a new random one.
	RunID string
	// Untrusted: the build is untrusted (SPEC §4a). Its runs live under the
	// untrusted tier's runs/ (Objects stays the cache's root), its runners
	// are launched as untrusted (LaunchSpec.Untrusted: the provider gives
	// them the untrusted identity, which cannot write the trusted tier) and
	// told so (agent --untrusted: outputs go to the untrusted tier), and no
	// secrets are ever sent: a stage that names one fails.
	Untrusted bool
}

// Executor runs each job on a fresh runner (see the package documentation).
type Executor struct {
	o     Options
	objs  Objects // the run's objects: Objects, or its untrusted tier
	slots chan struct{}

	binOnce sync.Once
	binDig  cas.Digest
	binKey  string // the binary's object, under Objects
	binErr  error

	known sync.Map // cas.Digest -> true: blobs known to be in the remote

	mu       sync.Mutex
	launched map[string]bool // instance IDs of this run
	kept     map[string]bool
	closed   bool

	// The warm pool (pool.go), guarded by mu.
	spares       map[string][]*spare // by machine, oldest first
	spareCount   int
	remaining    int // actions not finished (Ahead)
	active       int // jobs holding or getting a runner
	seq          int // runner directories w00001…
	lastMachine  string
	lastHints    map[string]string
	spareBackoff time.Time     // no spare launches before (capacity errors)
	bootEst      time.Duration // a runner's boot, launch to first heartbeat
	stageEst     time.Duration // a stage's time on its runner

	wake *notifier // nil without NotifyListen

	bg     sync.WaitGroup // spare launches, terminations
	bgCtx  context.Context
	bgStop context.CancelFunc

	stopBeat context.CancelFunc
	beatDone chan struct{}
}

var _ sched.Executor = (*Executor)(nil)

// NewExecutor returns an executor and starts the run's coordinator
// heartbeat (the reaper's proof that the run is alive). Close ends the run.
func NewExecutor(ctx context.Context, o Options) (*Executor, error) {
	if o.Provider == nil || o.Objects == nil || o.Remote == nil || o.Store == nil || o.CacheURL == "" {
		return nil, errors.New("runner executor: Provider, Objects, Remote, Store and CacheURL are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.TTL, 2*time.Hour)
	def(&o.Heartbeat, 2*time.Second)
	def(&o.Lease, 3*o.Heartbeat)
	def(&o.BootTimeout, 5*time.Minute)
	def(&o.Poll, 500*time.Millisecond)
	def(&o.ResultPoll, 50*time.Millisecond)
	def(&o.AgentPoll, 50*time.Millisecond)
	def(&o.CapacityBackoff, 2*time.Second)
	if o.MaxRetries == 0 {
		o.MaxRetries = 2
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.CapacityRetries == 0 {
		o.CapacityRetries = 8
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	if o.Warm < 0 {
		o.Warm = 8 * o.MaxInstances
		if o.Warm == 0 {
			o.Warm = 32
		}
	}
	e := &Executor{o: o, objs: o.Objects, launched: map[string]bool{}, kept: map[string]bool{}, beatDone: make(chan struct{}),
		spares: map[string][]*spare{}}
	if o.Untrusted {
		e.objs = untrustedObjects(o.Objects)
	}
	e.bgCtx, e.bgStop = context.WithCancel(context.Background())
	if o.NotifyListen != "" {
		n, err := startNotifier(o.NotifyListen, o.RunID)
		if err != nil {
			return nil, err
		}
		e.wake = n
	}
	if o.MaxInstances > 0 {
		e.slots = make(chan struct{}, o.MaxInstances)
	}
	bctx, cancel := context.WithCancel(context.Background())
	e.stopBeat = cancel
	go e.coordinatorBeat(bctx)
	return e, nil
}

// NewRunID returns a new run ID: sortable by time, unique.
func NewRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// RunID is this run's ID (the mc:run tag).
func (e *Executor) RunID() string { return e.o.RunID }

func (e *Executor) notify(format string, args ...any) {
	if e.o.Notify != nil {
		e.o.Notify(fmt.Sprintf(format, args...))
	}
}

// coordinatorBeat writes runs/<run>/coordinator every 5 s until Close.
func (e *Executor) coordinatorBeat(ctx context.Context) {
	defer close(e.beatDone)
	host, _ := os.Hostname()
	pid := os.Getpid()
	start, _ := procStart(pid)
	for {
		b := CoordinatorBeat{Host: host, PID: pid, Start: start, Time: time.Now().UTC()}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = e.objs.Put(pctx, RunDir(e.o.RunID)+objCoordinator, encode(b))
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// Close ends the run: every runner of this run still alive (except a kept
// one) is terminated — whatever the build's outcome, Ctrl-C included — and
// the run is marked done for the reaper.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true // no more spares
	e.mu.Unlock()
	if e.wake != nil {
		e.wake.close() // waiting spares hear that the run is over
	}
	// Launches in flight end (their instances are then known), terminations
	// finish; reconcile ends whatever is left, spares included.
	waited := make(chan struct{})
	go func() { e.bg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	e.bgStop()
	e.stopBeat()
	<-e.beatDone
	err := e.reconcile(ctx)
	if perr := e.objs.Put(ctx, RunDir(e.o.RunID)+objDone, encode(map[string]any{"time": time.Now().UTC()})); perr != nil && err == nil {
		err = fmt.Errorf("marking run %s done: %w", e.o.RunID, perr)
	}
	return err
}

// reconcile terminates this run's live instances: those the provider lists
// with our mc:run tag, and those we launched (in case listing lags).
func (e *Executor) reconcile(ctx context.Context) error {
	e.mu.Lock()
	ids := map[string]bool{}
	kept := map[string]bool{}
	for id := range e.launched {
		if e.kept[id] {
			kept[id] = true
		} else {
			ids[id] = true
		}
	}
	e.mu.Unlock()
	insts, lerr := e.o.Provider.List(ctx, e.o.Workspace)
	for _, in := range insts {
		if in.Tags[TagRun] == e.o.RunID && in.Live() && !kept[in.ID] {
			ids[in.ID] = true
		}
	}
	var list []string
	for id := range ids {
		list = append(list, id)
	}
	sort.Strings(list)
	var terr error
	if len(list) > 0 {
		terr = e.o.Provider.Terminate(ctx, list)
	}
	if err := errors.Join(lerr, terr); err != nil {
		return fmt.Errorf("terminating the runners of run %s: %w", e.o.RunID, err)
	}
	return nil
}

// Run runs job on a new runner, retrying on a new one when a runner is
// lost. A lost runner after every retry is a failed stage (Result.Err says
// why); a launch that keeps failing for lack of capacity is an error.
func (e *Executor) Run(ctx context.Context, job *sched.Job) (*sched.Result, error) {
	if job.Build != nil {
		if e.o.Fallback == nil {
			return nil, errors.New("image builds need a local executor")
		}
		return e.o.Fallback.Run(ctx, job)
	}
	start := time.Now()
	if e.o.Untrusted && len(job.Secrets) > 0 {
		// Untrusted builds see no secrets (SPEC §4a); whatever handed us
		// some, none leave this machine.
		names := make([]string, 0, len(job.Secrets))
		for n := range job.Secrets {
			names = append(names, n)
		}
		sort.Strings(names)
		return &sched.Result{ExitCode: -1, Duration: time.Since(start), Err: fmt.Errorf(
			"the stage names secrets (%s), and an untrusted build's runners get none: not sent", strings.Join(names, ", "))}, nil
	}
	if err := e.prepare(ctx, job); err != nil {
		return nil, err
	}
	prepared := time.Now()
	keep := e.o.Keep != (graph.Label{}) && e.o.Keep == job.Label
	var why []string
	for attempt := 0; attempt <= e.o.MaxRetries; attempt++ {
		spec, lost, err := e.attempt(ctx, job, keep)
		if err != nil {
			return nil, err
		}
		if lost == "" {
			res, err := e.finish(ctx, job, spec)
			if err != nil {
				return nil, err
			}
			res.Duration = time.Since(start)
			spec.prepared = prepared
			res.Phases = phasesOf(start, spec, time.Now())
			return res, nil
		}
		why = append(why, lost)
		if attempt < e.o.MaxRetries {
			e.notify("%s: %s; retrying on a new runner (attempt %d of %d)", job.Label, lost, attempt+2, e.o.MaxRetries+1)
			fmt.Fprintf(logOf(job), "mc: %s; retrying on a new runner\n", lost)
		}
	}
	err := fmt.Errorf("runner lost %d times: %s", len(why), strings.Join(why, "; "))
	return &sched.Result{ExitCode: -1, Err: err, Duration: time.Since(start)}, nil
}

func logOf(job *sched.Job) io.Writer {
	if job.Log == nil {
		return io.Discard
	}
	return job.Log
}

// ensureBinary uploads the runners' mc binary, once per run.
func (e *Executor) ensureBinary(ctx context.Context) error {
	e.binOnce.Do(func() { e.binErr = e.uploadBinary(ctx) })
	return e.binErr
}

// prepare uploads the binary (once) and the job's inputs the remote lacks.
func (e *Executor) prepare(ctx context.Context, job *sched.Job) error {
	if err := e.ensureBinary(ctx); err != nil {
		return err
	}
	st := e.o.Store
	var want []cas.Digest
	sizes := map[cas.Digest]int64{}
	add := func(d cas.Digest, size int64) {
		if d.IsZero() || d == cas.Empty {
			return
		}
		if _, ok := e.known.Load(d); ok {
			return
		}
		if _, ok := sizes[d]; !ok {
			want = append(want, d)
		}
		sizes[d] = size
	}
	for _, in := range job.Inputs {
		if in.Source != "" && !st.Has(in.Digest) {
			if err := st.PutFileExpect(in.Source, in.Digest); err != nil {
				if errors.Is(err, cas.ErrCorrupt) {
					return fmt.Errorf("source %s changed during the build; run mc again", in.Path)
				}
				return fmt.Errorf("input %s: %w", in.Path, err)
			}
		}
		if !in.IsTree {
			add(in.Digest, in.Size)
			continue
		}
		add(in.Digest, -1)
		tree, err := st.GetTree(in.Digest)
		if err != nil {
			return fmt.Errorf("input %s: %w", in.Path, err)
		}
		for _, en := range tree.Entries {
			add(en.Digest, en.Size)
		}
	}
	if len(want) == 0 {
		return nil
	}
	missing, err := e.o.Remote.FindMissing(ctx, want)
	if err != nil {
		return fmt.Errorf("checking inputs in the shared cache: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range missing {
		g.Go(func() error {
			return withRetry(gctx, 30*time.Second, func() error { return e.o.Remote.Upload(gctx, d, sizes[d], st) })
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("uploading inputs to the shared cache: %w", err)
	}
	for _, d := range want {
		e.known.Store(d, true)
	}
	return nil
}

// uploadBinary puts the mc binary into the CAS and presigns its URL.
func (e *Executor) uploadBinary(ctx context.Context) error {
	bin := e.o.Binary
	if bin == "" {
		p, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding mc's own binary for the runners: %w", err)
		}
		bin = p
	}
	d, size, err := e.o.Store.PutFile(bin)
	if err != nil {
		return fmt.Errorf("storing the runner binary %s: %w", bin, err)
	}
	missing, err := e.o.Remote.FindMissing(ctx, []cas.Digest{d})
	if err == nil && len(missing) > 0 {
		err = e.o.Remote.Upload(ctx, d, size, e.o.Store)
	}
	if err != nil {
		return fmt.Errorf("uploading the runner binary: %w", err)
	}
	e.binDig = d
	e.binKey = BlobKey(d)
	if e.o.Untrusted {
		// Remote is tiered: the binary was found in, or uploaded to, either
		// tier; runners fetch it from whichever holds it.
		if e.binKey, err = e.findBlob(ctx, d); err != nil {
			return fmt.Errorf("the runner binary: %w", err)
		}
	}
	return nil
}

// findBlob returns the object of blob d in the untrusted tier, else in the
// trusted one.
func (e *Executor) findBlob(ctx context.Context, d cas.Digest) (string, error) {
	for _, key := range []string{UntrustedTier + "/" + BlobKey(d), BlobKey(d)} {
		objs, err := e.o.Objects.List(ctx, key)
		if err != nil {
			return "", err
		}
		for _, o := range objs {
			if o.Key == key {
				return key, nil
			}
		}
	}
	return "", fmt.Errorf("blob %s is in neither tier of the shared cache", d.Short())
}

// binaryURLTTL is how long a runner's presigned binary URL works: it is
// used once, at boot, and made anew for every launch.
const binaryURLTTL = 30 * time.Minute

// attempt runs one try of job on a runner nobody used before: a spare of
// the warm pool when one of its machine is there, else one launched for it.
// lost is why the runner was lost ("" when a result came back, returned in
// res).
func (e *Executor) attempt(ctx context.Context, job *sched.Job, keep bool) (res *ResultSpec, lost string, err error) {
	if e.slots != nil {
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
		defer func() { <-e.slots }()
	}
	e.mu.Lock()
	e.active++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.active--
		e.mu.Unlock()
	}()
	var hints map[string]string
	if e.o.Machine != nil {
		hints = e.o.Machine(job.Label)
	}
	var sp *spare
	if !keep {
		if sp, err = e.take(ctx, machineKey(hints), hints); err != nil {
			return nil, "", err
		}
	}
	var jobID string
	if sp != nil {
		jobID = sp.jobID
	} else {
		e.mu.Lock()
		e.seq++
		jobID = fmt.Sprintf("r%05d", e.seq)
		e.mu.Unlock()
	}
	dir := JobDir(e.o.RunID, jobID)
	if len(job.Secrets) > 0 {
		// They are sealed to the runner's key once its heartbeat publishes
		// it (watch, sealed.go). The agent deletes them once read; this
		// makes sure of it when no agent got that far.
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = withRetry(dctx, 20*time.Second, func() error { return e.objs.Delete(dctx, dir+objSecrets) })
		}()
	}
	// The job object is what a waiting agent looks for.
	if err := e.objs.Put(ctx, dir+objJob, encode(specOf(job, e.o.Heartbeat, keep))); err != nil {
		return nil, "", fmt.Errorf("writing the job: %w", err)
	}
	if e.wake != nil {
		e.wake.jobWritten(jobID)
		defer e.wake.forget(jobID)
	}
	var id string
	var launched time.Time
	if sp != nil {
		id, launched = sp.id, sp.launched
	} else {
		launched = time.Now()
		if id, err = e.launch(ctx, job, jobID, keep, hints); err != nil {
			return nil, "", err
		}
	}
	defer func() {
		if keep && lost == "" && err == nil {
			e.mu.Lock()
			e.kept[id] = true
			e.mu.Unlock()
			e.notify("kept runner for %s (until its TTL): %s", job.Label, e.o.Provider.Reach(id))
			return
		}
		// The runner powers itself off; terminating makes sure of it, off
		// the stage's critical path (Close waits for it).
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = e.o.Provider.Terminate(tctx, []string{id})
			cancel()
		}()
	}()
	written := time.Now()
	res, lost, err = e.watch(ctx, job, jobID, id, launched)
	if res != nil {
		res.written = written
	}
	if err == nil && lost == "" && res.Infra != "" {
		lost = "runner " + id + " failed: " + res.Infra
	}
	return res, lost, err
}

// launchSpec describes a runner for jobID; label is "" for a spare (its
// stage is not known yet).
func (e *Executor) launchSpec(ctx context.Context, jobID, label string, keep bool, hints map[string]string) (LaunchSpec, error) {
	args := []string{"--cache", e.o.CacheURL, "--run", e.o.RunID, "--job", jobID,
		"--heartbeat", e.o.Heartbeat.String(), "--poll", e.o.AgentPoll.String()}
	if e.o.Untrusted {
		args = append(args, "--untrusted")
	}
	if e.o.Endpoint != "" {
		args = append(args, "--endpoint", e.o.Endpoint)
	}
	if e.o.Region != "" {
		args = append(args, "--region", e.o.Region)
	}
	if e.wake != nil {
		args = append(args, "--notify", e.wake.url)
	}
	url, err := e.o.Objects.PresignGet(ctx, e.binKey, binaryURLTTL)
	if err != nil {
		return LaunchSpec{}, err
	}
	if label == "" {
		label = "(warm)"
	}
	spec := LaunchSpec{
		Workspace: e.o.Workspace, RunID: e.o.RunID, JobID: jobID, Label: label,
		ExpiresAt: time.Now().Add(e.o.TTL), Keep: keep, Untrusted: e.o.Untrusted,
		UserData: Bootstrap(BootstrapSpec{BinaryURL: url, BinaryDigest: e.binDig, AgentArgs: args,
			TTL: e.o.TTL, Keep: keep, Local: e.o.Provider.Name() == "local", BakedDir: e.o.BakedDir}),
	}
	spec.InstanceType, spec.AMI = hints["instance_type"], hints["ami"]
	spec.DiskGB, _ = strconv.Atoi(hints["disk_gb"])
	return spec, nil
}

// launch asks the provider for a runner for job, retrying capacity errors.
func (e *Executor) launch(ctx context.Context, job *sched.Job, jobID string, keep bool, hints map[string]string) (string, error) {
	spec, err := e.launchSpec(ctx, jobID, job.Label.String(), keep, hints)
	if err != nil {
		return "", err
	}
	wait := e.o.CapacityBackoff
	for try := 0; ; try++ {
		spec.Try = try
		id, err := e.o.Provider.Launch(ctx, spec)
		if err == nil {
			e.mu.Lock()
			e.launched[id] = true
			e.mu.Unlock()
			return id, nil
		}
		if !errors.Is(err, ErrCapacity) || try >= e.o.CapacityRetries || ctx.Err() != nil {
			return "", fmt.Errorf("launching a runner: %w", err)
		}
		e.notify("%s: %v; retrying in %s", job.Label, err, wait)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// watch follows the job until its result: every ResultPoll it looks for
// the result object (the one delay every stage pays, so it is a cheap GET
// polled often), and every Poll it lists the job's objects for the
// heartbeat (the lease) and the log chunks (streamed to job.Log). launched
// is when the runner was launched: a spare may have booted long ago.
func (e *Executor) watch(ctx context.Context, job *sched.Job, jobID, id string, launched time.Time) (*ResultSpec, string, error) {
	dir := JobDir(e.o.RunID, jobID)
	var lastBeat time.Time // zero until the first heartbeat
	var beatTag string
	nextLog := 0
	lastOK := time.Now()
	lastProbe := time.Now()
	var lastList time.Time
	lists := 0
	assigned := time.Now()
	var beatSeen time.Time // when the first heartbeat was seen
	t := time.NewTicker(e.o.ResultPoll)
	defer t.Stop()
	var wake <-chan struct{}
	if e.wake != nil {
		wake = e.wake.resultWake(jobID)
	}
	var lastGet time.Time
	woken := true
	secretsSent := len(job.Secrets) == 0
	for {
		// An agent that reached us says when its result is there: then S3
		// is only looked at every Poll, in case that word is lost.
		now := time.Now()
		look := woken || now.Sub(lastGet) >= e.o.Poll || e.wake == nil || !e.wake.agentReached(jobID)
		woken = false
		var b []byte
		err := ErrNotFound
		if look && !secretsSent {
			// The runner's key is in its heartbeat, the first included:
			// the secrets go as soon as one is there.
			sent, serr := e.sendSecrets(ctx, dir, job.Secrets)
			if serr != nil {
				return nil, "", fmt.Errorf("%s: runner %s %w", job.Label, id, serr)
			}
			secretsSent = sent
		}
		if look {
			lastGet = now
			b, err = e.objs.Get(ctx, dir+objResult)
		}
		if err == nil {
			var r ResultSpec
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, "runner " + id + " sent an undecodable result", nil
			}
			r.seen = time.Now()
			// A stage's time on a runner that is up: from its job's
			// assignment or the runner's boot, whichever came later.
			up := assigned
			if beatSeen.After(up) {
				up = beatSeen
			}
			e.observeStage(time.Since(up))
			// The agent ships its last chunk before the result.
			e.drainLogs(ctx, job, dir, nextLog)
			return &r, "", nil
		} else if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if now := time.Now(); now.Sub(lastList) >= e.o.Poll {
			lastList = now
			lists++
			objs, err := e.objs.List(ctx, dir)
			now = time.Now()
			if err != nil {
				if ctx.Err() != nil {
					return nil, "", ctx.Err()
				}
				// S3 unreachable from here: the lease clock stops, since the
				// runner cannot be seen (nor, probably, write) — for a while.
				if down := now.Sub(lastOK); down > maxOutage {
					return nil, "", fmt.Errorf("shared cache unreachable for %s while runner %s ran: %w", down.Round(time.Second), id, err)
				}
			} else {
				if gap := now.Sub(lastOK); gap > 2*e.o.Poll {
					launched = launched.Add(gap)
					if !lastBeat.IsZero() {
						lastBeat = lastBeat.Add(gap)
					}
				}
				lastOK = now
				var logs []string
				for _, o := range objs {
					rel := strings.TrimPrefix(o.Key, dir)
					switch {
					case rel == objHeartbeat:
						tag := o.ETag + o.Modified.String()
						if tag != beatTag {
							if beatTag == "" {
								// Seen on the first listing: it was up before its job came.
								e.observeBoot(launched, assigned, now, lists == 1)
								beatSeen = now
							}
							beatTag, lastBeat = tag, now
						}
					case strings.HasPrefix(rel, objLogDir):
						logs = append(logs, rel)
					}
				}
				sort.Strings(logs)
				for _, rel := range logs {
					n, err := strconv.Atoi(strings.TrimPrefix(rel, objLogDir))
					if err != nil || n < nextLog {
						continue
					}
					if n > nextLog {
						break // a gap: the chunk is not listed yet
					}
					b, err := e.objs.Get(ctx, dir+rel)
					if err != nil {
						break
					}
					logOf(job).Write(b)
					nextLog++
				}
				if lastBeat.IsZero() && now.Sub(lastProbe) >= bootProbe {
					// Before its first heartbeat, a runner that already ended
					// (its bootstrap failed) need not be waited for.
					lastProbe = now
					if e.ended(ctx, id) {
						return nil, fmt.Sprintf("runner %s ended before its agent started", id), nil
					}
				}
				switch {
				case lastBeat.IsZero() && now.Sub(launched) > e.o.BootTimeout:
					return nil, fmt.Sprintf("runner %s did not start within %s", id, e.o.BootTimeout), nil
				case !lastBeat.IsZero() && now.Sub(lastBeat) > e.o.Lease:
					return nil, fmt.Sprintf("runner %s missed its lease (no heartbeat for %s)", id, now.Sub(lastBeat).Round(100*time.Millisecond)), nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-t.C:
		case <-wake:
			woken = true
		}
	}
}

// maxOutage is how long the coordinator waits for an unreachable shared
// cache to come back before the build fails (exit 3).
const maxOutage = 2 * time.Minute

// bootProbe is how often a booting runner's state is asked for.
const bootProbe = 5 * time.Second

// ended reports whether the provider lists instance id as no longer live.
func (e *Executor) ended(ctx context.Context, id string) bool {
	insts, err := e.o.Provider.List(ctx, e.o.Workspace)
	if err != nil {
		return false
	}
	for _, in := range insts {
		if in.ID == id {
			return !in.Live()
		}
	}
	return false // not listed yet (eventual consistency)
}

func (e *Executor) drainLogs(ctx context.Context, job *sched.Job, dir string, next int) {
	for ; ; next++ {
		b, err := e.objs.Get(ctx, dir+objLogDir+fmt.Sprintf("%08d", next))
		if err != nil {
			return
		}
		logOf(job).Write(b)
	}
}

// phasesOf places a job's phases on this machine's clock: "inputs" from
// start (the job handed to this executor) until its inputs are in the
// shared cache, "runner" until a runner is there for it (a spare taken, or
// a launch returned) and its job written, "dispatch" until the runner
// found the job (its polling — and its boot when it was not up yet), the
// runner's own phases, and "collecting" from the result's appearance until
// end (outputs downloaded). The runner's clock is anchored by taking its
// result as written when it was seen (at most ResultPoll late).
func phasesOf(start time.Time, r *ResultSpec, end time.Time) []sched.Phase {
	if r.TotalUS == 0 || r.seen.IsZero() {
		return nil
	}
	seenJob := r.seen.Add(-time.Duration(r.TotalUS) * time.Microsecond)
	if seenJob.Before(start) {
		seenJob = start
	}
	clamp := func(t time.Time) time.Time {
		if t.Before(start) {
			return start
		}
		if t.After(seenJob) {
			return seenJob
		}
		return t
	}
	prepared, written := clamp(r.prepared), clamp(r.written)
	ps := []sched.Phase{{Name: "inputs", Start: start, End: prepared}, {Name: "runner", Start: prepared, End: written},
		{Name: "dispatch", Start: written, End: seenJob}}
	for _, p := range r.Phases {
		s := seenJob.Add(time.Duration(p.StartUS) * time.Microsecond)
		ps = append(ps, sched.Phase{Name: p.Name, Start: s, End: s.Add(time.Duration(p.DurationUS) * time.Microsecond)})
	}
	return append(ps, sched.Phase{Name: "collecting", Start: r.seen, End: end})
}

// finish turns the agent's result into a sched.Result, with the outputs
// and log downloaded into the local store: the scheduler records the result
// locally (a runner-built stage is a local cache hit next time), uploads it
// to the shared cache's ac/ space, and writes mc-out/ from the local store.
func (e *Executor) finish(ctx context.Context, job *sched.Job, r *ResultSpec) (*sched.Result, error) {
	res := &sched.Result{ExitCode: r.ExitCode, Outputs: r.Outputs, Log: r.Log, Duration: time.Duration(r.DurationMS) * time.Millisecond}
	if r.Error != "" {
		res.Err = errors.New(r.Error)
	}
	st := e.o.Store
	fetch := func(ctx context.Context, d cas.Digest, size int64) error {
		if d.IsZero() || st.Has(d) {
			return nil
		}
		if d == cas.Empty {
			_, err := st.PutBytes(nil)
			return err
		}
		return withRetry(ctx, 30*time.Second, func() error { return e.o.Remote.Fetch(ctx, d, size, st) })
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	g.Go(func() error { return fetch(gctx, r.Log, -1) })
	for _, o := range r.Outputs {
		g.Go(func() error {
			if !o.IsDir {
				return fetch(gctx, o.Digest, o.Size)
			}
			if err := fetch(gctx, o.Digest, -1); err != nil {
				return err
			}
			tree, err := st.GetTree(o.Digest)
			if err != nil {
				return err
			}
			for _, en := range tree.Entries {
				if err := fetch(gctx, en.Digest, en.Size); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("downloading the runner's outputs: %w", err)
	}
	for _, o := range r.Outputs {
		e.known.Store(o.Digest, true)
	}
	return res, nil
}
