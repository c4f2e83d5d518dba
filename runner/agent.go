package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/sched"
)

// AgentOptions configure RunAgent.
type AgentOptions struct {
	CacheURL string // s3://bucket/prefix of the shared cache
	Endpoint string // S3-compatible endpoint; "" for AWS (or MC_S3_ENDPOINT)
	RunID    string
	JobID    string
	// Dir is the agent's scratch directory (its private store and
	// sandboxes); "" for a new temporary directory, removed at the end.
	Dir    string
	Getenv func(string) (string, bool)
	// Stderr receives the agent's own diagnostics (the machine's console).
	Stderr io.Writer
	// Objects and Remote replace the S3 clients opened from CacheURL (tests).
	Objects Objects
	Remote  cas.Remote
	// Heartbeat is the heartbeat interval until the job names its own (2s).
	Heartbeat time.Duration
	// Poll is how often a runner waiting for its job looks for it (50ms):
	// warm-pool runners boot before their stage is known, and this is most
	// of the delay between a stage's dispatch and its start.
	Poll time.Duration
	// Notify is the coordinator's wake-up URL (notify.go); "" when it
	// cannot be reached and only S3 is polled.
	Notify string
	// PrivateNetwork gives stages with network = True a network namespace
	// of their own, from which the instance metadata service and the
	// agent cannot be reached (sandbox.LocalOptions.PrivateNetwork).
	PrivateNetwork bool
	// IdleTimeout ends a runner that got no job for this long (1h); it also
	// ends as soon as the run is over (runs/<run>/done, or the coordinator's
	// heartbeat older than runOverAfter).
	IdleTimeout time.Duration
	// Untrusted: the job is an untrusted build's (agent --untrusted). Its
	// objects are under the untrusted tier's runs/, and its outputs go to
	// that tier only (tier.go); the runner's role cannot write elsewhere.
	Untrusted bool
}

// agentRetry bounds how long the agent retries S3 when it is briefly
// unavailable before giving up on an operation.
const agentRetry = 60 * time.Second

// RunAgent runs one job of the protocol: it fetches the job (and its
// one-time secrets, deleting them), materializes the inputs from the CAS in a
// private store, runs the stage with the local executor exactly as a local
// build would, uploads outputs and log, and writes the result. It returns
// an error only when it could not report a result at all.
func RunAgent(ctx context.Context, o AgentOptions) error {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	objs, remote := o.Objects, o.Remote
	if objs == nil {
		so, err := OpenObjects(ctx, o.CacheURL, o.Endpoint, o.Getenv)
		if err != nil {
			return err
		}
		objs = so
	}
	if remote == nil {
		r, err := openAgentRemote(ctx, o)
		if err != nil {
			return err
		}
		remote = r
	}
	if o.Untrusted {
		objs = untrustedObjects(objs)
	}
	key, err := newAgentKey()
	if err != nil {
		return err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mc-agent-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 2 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Hour
	}
	a := &agent{o: o, objs: objs, remote: remote, dir: dir, jobDir: JobDir(o.RunID, o.JobID), key: key,
		wake: newWakeClient(o.Notify, o.RunID, o.JobID)}
	hbCtx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	a.interval.Store(int64(o.Heartbeat))
	a.phase.Store("idle")
	go a.heartbeat(hbCtx)

	res := a.run(ctx)
	if res != nil && !a.jobSeen.IsZero() {
		for _, p := range a.phases {
			res.Phases = append(res.Phases, PhaseSpec{Name: p.Name, StartUS: p.Start.Sub(a.jobSeen).Microseconds(),
				DurationUS: p.End.Sub(p.Start).Microseconds()})
		}
		res.TotalUS = time.Since(a.jobSeen).Microseconds()
	}
	if res == nil {
		stopBeat()
		fmt.Fprintf(o.Stderr, "mc agent: %s\n", a.noJob)
		return nil
	}
	if res.Infra != "" {
		fmt.Fprintf(o.Stderr, "mc agent: %s\n", res.Infra)
	}
	err = withRetry(ctx, agentRetry, func() error { return objs.Put(ctx, a.jobDir+objResult, encode(res)) })
	stopBeat()
	if err != nil {
		return fmt.Errorf("reporting the result: %w", err)
	}
	if a.wake != nil {
		a.wake.resultWritten(ctx)
	}
	return nil
}

type agent struct {
	o      AgentOptions
	objs   Objects
	remote cas.Remote
	dir    string
	jobDir string
	key    *agentKey // the job's secrets are sealed to its public half

	interval atomicDuration
	phase    atomicString
	noJob    string // why run returned no result: no job came
	jobSeen  time.Time
	phases   []sched.Phase // on this machine's clock
	wake     *wakeClient   // nil: the coordinator is not reachable
}

// heartbeat rewrites the heartbeat object until ctx ends; failures are
// ignored (the coordinator tolerates a gap up to its lease).
func (a *agent) heartbeat(ctx context.Context) {
	var seq int64
	for {
		seq++
		hb := Heartbeat{Seq: seq, Time: time.Now().UTC(), Phase: a.phase.Load(), Key: a.key.pub[:]}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = a.objs.Put(pctx, a.jobDir+objHeartbeat, encode(hb))
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(a.interval.Load())):
		}
	}
}

// run waits for the job and runs it. It returns nil when no job came (the
// run ended first, or IdleTimeout passed): there is nobody to report to.
func (a *agent) run(ctx context.Context) *ResultSpec {
	infra := func(format string, args ...any) *ResultSpec {
		return &ResultSpec{ExitCode: -1, Infra: fmt.Sprintf(format, args...)}
	}
	// Everything that does not depend on the job is done before it comes:
	// the store, the executor and its sandbox probe.
	store, err := cas.OpenStore(filepath.Join(a.dir, "cas"))
	if err != nil {
		return infra("opening the store: %v", err)
	}
	// Never synced: this store dies with the runner; what must last is in
	// S3 before the result says so.
	store.DeferSync()
	local, err := a.newLocal(store, false)
	if err != nil {
		return infra("%v", err)
	}
	defer func() { local.Close() }()
	local.Isolated()

	raw, err := a.waitJob(ctx)
	if err != nil {
		return infra("reading the job: %v", err)
	}
	if raw == nil {
		return nil
	}
	a.jobSeen = time.Now()
	a.phase.Store("fetching")
	var spec JobSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return infra("decoding the job: %v", err)
	}
	if spec.HeartbeatMS > 0 {
		a.interval.Store(int64(time.Duration(spec.HeartbeatMS) * time.Millisecond))
	}
	secrets := map[string]string{}
	if a.o.Untrusted && len(spec.SecretNames) > 0 {
		// The coordinator never sends an untrusted build's job secrets;
		// one that names some was not written by it.
		return infra("an untrusted build's job names secrets (%s); its runners get none", strings.Join(spec.SecretNames, ", "))
	}
	if len(spec.SecretNames) > 0 {
		// Sealed to this agent's key; read, opened and deleted before
		// anything runs (sealed.go).
		if secrets, err = a.receiveSecrets(ctx); err != nil {
			return infra("the job's secrets: %v", err)
		}
	}
	job, err := spec.job(secrets)
	if err != nil {
		return infra("%v", err)
	}
	if spec.Keep {
		local.Close()
		if local, err = a.newLocal(store, true); err != nil {
			return infra("%v", err)
		}
	}
	if err := a.fetchInputs(ctx, store, job.Inputs); err != nil {
		return infra("fetching inputs: %v", err)
	}
	a.phases = append(a.phases, sched.Phase{Name: "fetching", Start: a.jobSeen, End: time.Now()})

	a.phase.Store("running")
	logs := newLogShipper(a.objs, a.o.RunID, a.o.JobID, time.Second)
	job.Log = logs
	res, err := local.Run(ctx, job)
	logs.close(ctx)
	if err != nil {
		return infra("running the stage: %v", err)
	}

	a.phase.Store("uploading")
	a.phases = append(a.phases, res.Phases...)
	upStart := time.Now()
	out := &ResultSpec{ExitCode: res.ExitCode, Outputs: res.Outputs, Log: res.Log, DurationMS: res.Duration.Milliseconds()}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	if err := a.upload(ctx, store, res); err != nil {
		return infra("uploading outputs: %v", err)
	}
	a.phases = append(a.phases, sched.Phase{Name: "uploading", Start: upStart, End: time.Now()})
	return out
}

func (a *agent) newLocal(store *cas.Store, keep bool) (*sandbox.Local, error) {
	return sandbox.NewLocal(sandbox.LocalOptions{
		Store: store, SandboxDir: filepath.Join(a.dir, "sandbox"), MountsDir: filepath.Join(a.dir, "mounts"),
		KeepSandbox: keep, RootfsDir: filepath.Join(a.dir, "rootfs"), ImagesDir: filepath.Join(a.dir, "images"),
		Warn:           func(msg string) { fmt.Fprintf(a.o.Stderr, "mc agent: warning: %s\n", msg) },
		PrivateNetwork: a.o.PrivateNetwork,
	})
}

// runOverAfter is how stale the coordinator's heartbeat (rewritten every
// 5 s) must be for a waiting runner to give up on its run.
const runOverAfter = 2 * time.Minute

// runCheck is how often a waiting runner checks whether its run is over.
const runCheck = 5 * time.Second

// waitJob polls for the job object until it appears. A runner launched
// ahead of demand (the warm pool) waits here until the coordinator assigns
// it a stage; one launched for a stage finds its job at once. It returns
// nil, nil when no job will come: the run is over, or IdleTimeout passed.
func (a *agent) waitJob(ctx context.Context) ([]byte, error) {
	start := time.Now()
	lastCheck := start
	lastOK := start
	woke := false
	for {
		raw, err := a.objs.Get(ctx, a.jobDir+objJob)
		now := time.Now()
		switch {
		case err == nil:
			return raw, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrNotFound):
			lastOK = now
		case now.Sub(lastOK) > agentRetry:
			return nil, err
		}
		if now.Sub(start) > a.o.IdleTimeout {
			a.noJob = fmt.Sprintf("no job within %s; ending", a.o.IdleTimeout)
			return nil, nil
		}
		if now.Sub(lastCheck) >= runCheck {
			lastCheck = now
			if why := a.runOver(ctx, now); why != "" {
				a.noJob = why + " before a job came; ending"
				return nil, nil
			}
		}
		if a.wake != nil && !woke {
			// Wait for the coordinator's word instead of polling S3.
			ok, werr := a.wake.waitJob(ctx)
			switch {
			case werr == nil:
				woke = ok // look now; if the job is not there yet, wait a poll interval before asking again
				continue
			case errors.Is(werr, errRunOver):
				a.noJob = "the coordinator says the run is over before a job came; ending"
				return nil, nil
			case ctx.Err() != nil:
				return nil, ctx.Err()
			default:
				fmt.Fprintf(a.o.Stderr, "mc agent: the coordinator cannot be reached (%v); polling the shared cache instead\n", werr)
				a.wake = nil
			}
		}
		woke = false
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(a.o.Poll):
		}
	}
}

// runOver says why the run is over ("" while it is not, or when that
// cannot be told): marked done, or its coordinator silent.
func (a *agent) runOver(ctx context.Context, now time.Time) string {
	run := RunDir(a.o.RunID)
	if _, err := a.objs.Get(ctx, run+objDone); err == nil {
		return "the run is over"
	}
	raw, err := a.objs.Get(ctx, run+objCoordinator)
	if err != nil {
		return ""
	}
	var b CoordinatorBeat
	if json.Unmarshal(raw, &b) == nil && !b.Time.IsZero() && now.Sub(b.Time) > runOverAfter {
		return fmt.Sprintf("the coordinator is silent since %s", b.Time.Format(time.RFC3339))
	}
	return ""
}

// fetchInputs downloads every input blob (tree members too) into store.
func (a *agent) fetchInputs(ctx context.Context, store *cas.Store, inputs []sched.Input) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	fetch := func(d cas.Digest, size int64) error {
		if d == cas.Empty {
			_, err := store.PutBytes(nil)
			return err
		}
		return withRetry(gctx, agentRetry, func() error { return a.remote.Fetch(gctx, d, size, store) })
	}
	for _, in := range inputs {
		g.Go(func() error {
			if !in.IsTree {
				return fetch(in.Digest, in.Size)
			}
			if err := fetch(in.Digest, -1); err != nil {
				return fmt.Errorf("%s: %w", in.Path, err)
			}
			tree, err := store.GetTree(in.Digest)
			if err != nil {
				return fmt.Errorf("%s: %w", in.Path, err)
			}
			for _, e := range tree.Entries {
				if !e.Digest.IsZero() {
					if err := fetch(e.Digest, e.Size); err != nil {
						return fmt.Errorf("%s/%s: %w", in.Path, e.Path, err)
					}
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// upload sends the outputs (tree members before their tree) and the log.
func (a *agent) upload(ctx context.Context, store *cas.Store, res *sched.Result) error {
	type blob struct {
		d    cas.Digest
		size int64
	}
	var files, trees []blob
	if !res.Log.IsZero() {
		files = append(files, blob{res.Log, -1})
	}
	for _, o := range res.Outputs {
		if !o.IsDir {
			files = append(files, blob{o.Digest, o.Size})
			continue
		}
		tree, err := store.GetTree(o.Digest)
		if err != nil {
			return err
		}
		for _, e := range tree.Entries {
			if !e.Digest.IsZero() {
				files = append(files, blob{e.Digest, e.Size})
			}
		}
		trees = append(trees, blob{o.Digest, -1})
	}
	for _, set := range [][]blob{files, trees} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for _, b := range set {
			g.Go(func() error {
				return withRetry(gctx, agentRetry, func() error { return a.remote.Upload(gctx, b.d, b.size, store) })
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// logShipper collects the stage's (already masked) output and writes it as
// numbered chunks about once per interval, so the coordinator can stream it.
type logShipper struct {
	objs      Objects
	run, job  string
	mu        sync.Mutex
	buf       bytes.Buffer
	seq       int
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLogShipper(objs Objects, run, job string, every time.Duration) *logShipper {
	l := &logShipper{objs: objs, run: run, job: job, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.flush(context.Background(), 5*time.Second)
			}
		}
	}()
	return l
}

func (l *logShipper) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// flush ships what is buffered as the next chunk. A chunk that cannot be
// written stays buffered and goes with the next one.
func (l *logShipper) flush(ctx context.Context, within time.Duration) {
	l.mu.Lock()
	if l.buf.Len() == 0 {
		l.mu.Unlock()
		return
	}
	chunk := append([]byte(nil), l.buf.Bytes()...)
	seq := l.seq
	l.mu.Unlock()
	err := withRetry(ctx, within, func() error { return l.objs.Put(ctx, logKey(l.run, l.job, seq), chunk) })
	if err != nil {
		return
	}
	l.mu.Lock()
	l.buf.Next(len(chunk))
	l.seq++
	l.mu.Unlock()
}

// close stops the ticker and ships the rest.
func (l *logShipper) close(ctx context.Context) {
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.flush(ctx, agentRetry)
	})
}

// withRetry runs f until it succeeds, fails with ErrNotFound or
// cas.ErrNotFound (not transient), or within has passed.
func withRetry(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, cas.ErrNotFound) || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
