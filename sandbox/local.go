// Package sandbox runs stages on this machine (Local, a sched.Executor):
// each in a sandbox directory holding only its inputs, under bubblewrap with
// the confine policy where it works (kept as long-lived workers whose PID 1
// is this program, RunnerMain), on a private stage network when asked; and
// image jobs: builds assembled with oci, and stages in images run as runc
// containers (package runc) over rootfs unpacked once per image.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/confine"
	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sched"
)

// LocalOptions configures the local sandbox executor.
type LocalOptions struct {
	Store *cas.Store
	// SandboxDir is the parent of the per-job sandboxes. It must be on the
	// filesystem of the store, so that inputs are hard links and outputs
	// are renamed into the store rather than copied.
	SandboxDir string
	// MountsDir is the parent of the cache_mounts directories (MountsDir/<name>).
	MountsDir string
	// SeedMountsDir, if set, is the trusted tier's MountsDir, for an
	// untrusted build: a cache mount not yet in MountsDir starts as a copy
	// of the one of the same name there (mount_seed.go). It is only read.
	SeedMountsDir string
	// Hide are more host directories no stage may see even where a bound
	// system directory holds them: for an untrusted build, the trusted
	// cache directory (its sandboxes, mounts and store).
	Hide []string
	// KeepSandbox leaves each sandbox on disk for debugging; the job's log
	// and a failed Result's error say where. Each stage then gets a
	// bubblewrap sandbox of its own rather than a worker's.
	KeepSandbox bool
	// Warn receives one-line warnings (no isolation available); it is
	// called at most once per executor. nil: warnings are dropped.
	Warn func(msg string)
	// RootfsDir holds the unpacked filesystems of images stages run in,
	// one per manifest digest (RootfsDir/<hex>), kept across builds and
	// shared by concurrent ones. "": stages cannot run in images.
	RootfsDir string
	// ImagesDir holds registry images pulled as OCI layouts, one per
	// resolved digest (ImagesDir/<hex>). "": a sibling "images" of RootfsDir.
	ImagesDir string
	// Registry configures pulls of registry images.
	Registry oci.Options
	// Sandbox says whether stages may run without a sandbox where none
	// works here (SandboxAuto, the zero value) or must not (SandboxRequired).
	Sandbox SandboxMode
	// Jobs is how many stages may run at once (the scheduler's -j): a
	// stage that starts a sandbox worker while fewer than Jobs of its kind
	// exist has one more started beside it (workerPool.spareLocked). 0 or
	// 1: workers start only when a stage needs one.
	Jobs int
	// Probed says that a probe of this same bubblewrap, kernel, user and
	// mc succeeded before (the pipeline records it): the probe then sets
	// up the confinement without starting its trial sandbox, 70-100 ms
	// before the first stage of every build. It requires SandboxRequired:
	// should bubblewrap fail after all, stages fail rather than run
	// unsandboxed.
	Probed bool
	// PrivateNetwork runs stages with network = True in a network
	// namespace of their own with NAT to the outside, from which the
	// instance metadata service and the host's own services cannot be
	// reached (stage_net.go); such a stage fails rather than run on the
	// host's network when that cannot be set up. For runners, mc serve and
	// untrusted builds.
	PrivateNetwork bool
}

// Local runs stages on this machine, each in a fresh sandbox directory
// holding only its inputs. When bubblewrap works here the stage also runs
// in mount, PID, IPC and UTS namespaces of its own (and network namespace
// unless it asks for the network), seeing the host's system directories
// read-only and its workspace at /mc/ws; otherwise it runs directly in the
// sandbox directory, in its own session and process group.
//
// Setting up those namespaces costs milliseconds, as much as a small
// stage itself, so they are set up once per worker (see worker): a
// long-lived sandbox that runs stages one after the other, emptied and
// rid of every process between them. Close ends the workers.
type Local struct {
	opts LocalOptions
	path string // the host's PATH, given to every stage
	// bwrap is bubblewrap's path, looked up once; "" when not installed.
	bwrap string

	probeOnce sync.Once
	root      *bwrapRoot // non-nil when stages run under bubblewrap
	// noSandbox, when root is nil, says why (wrapping ErrNoSandbox).
	noSandbox error
	// hide are mc's own directories, which no stage sees.
	hide []string
	// unconfined is set by tests only (see unconfined), before the probe.
	unconfined unconfined

	// covers caches, per workspace root, the tmpfs arguments hiding it
	// from the sandbox (usually one entry: one workspace per build).
	covers sync.Map

	// runner is this program's executable, run as a worker's PID 1;
	// "" when it cannot be found.
	runner   string
	poolOnce sync.Once
	pool     *workerPool
	warnOnce sync.Once

	// images is the state of pulls, rootfs unpacks and runc (image_cache.go).
	images localImages

	// net is the private stage network's set-up (stage_net.go).
	net localNet
}

// defaultPath is given to stages when mc itself has no PATH.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// NewLocal returns a local executor. It creates SandboxDir and MountsDir
// if needed; whether bubblewrap works is found out on first use.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Store == nil {
		return nil, errors.New("local executor: no store")
	}
	if opts.SandboxDir == "" || opts.MountsDir == "" {
		return nil, errors.New("local executor: SandboxDir and MountsDir are required")
	}
	if opts.Probed && opts.Sandbox != SandboxRequired {
		return nil, errors.New("local executor: Probed requires SandboxRequired")
	}
	for _, d := range []*string{&opts.SandboxDir, &opts.MountsDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, fmt.Errorf("local executor: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("local executor: %w", err)
		}
		*d = abs
	}
	l := &Local{opts: opts, path: os.Getenv("PATH")}
	if l.path == "" {
		l.path = defaultPath
	}
	if p, err := osexec.LookPath("bwrap"); err == nil {
		l.bwrap = p
	}
	if p, err := os.Executable(); err == nil {
		l.runner = p
	}
	return l, nil
}

// Close ends the executor's sandbox workers, killing whatever still runs
// in them, and removes their directories. Stages run after Close get a
// sandbox of their own each.
func (l *Local) Close() error {
	if err := l.workers().close(); err != nil {
		return fmt.Errorf("closing the sandbox workers: %w", err)
	}
	// The stages' user namespaces (mc as root) stay with the executor:
	// stages run after Close get a sandbox of their own each.
	return nil
}

// workers returns the executor's pool of sandbox workers.
func (l *Local) workers() *workerPool {
	l.poolOnce.Do(func() { l.pool = newWorkerPool(l) })
	return l.pool
}

// Isolated reports whether stages run under bubblewrap. The first call
// (or the first Run) probes whether bubblewrap works on this machine.
func (l *Local) Isolated() bool {
	ok, _ := l.Sandboxed()
	return ok
}

// probe decides, once, whether stages run under bubblewrap: bwrap must be
// installed and able to start a sandbox like a stage's here, with its
// whole confinement (it is not in some containers, or where user
// namespaces are disabled). Where it cannot, noSandbox says why and how to
// fix it, and in SandboxAuto mode the executor warns.
func (l *Local) probe() {
	l.noSandbox = l.tryProbe()
	if l.noSandbox != nil && l.opts.Sandbox != SandboxRequired {
		l.warn(fmt.Sprintf("%v: STAGES RUN WITHOUT ISOLATION and can read and change the whole filesystem; their results stay on this machine", l.noSandbox))
	}
}

func (l *Local) tryProbe() error {
	if l.bwrap == "" {
		return fmt.Errorf("%w: bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap)", ErrNoSandbox)
	}
	seccomp, err := confine.Program()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoSandbox, err)
	}
	l.hide = append(hiddenDirs(l.opts.SandboxDir, l.opts.MountsDir, l.opts.Store.Dir()), l.opts.Hide...)
	root := newBwrapRoot(l.path, l.hide)
	root.seccomp = seccomp
	root.unconfined = l.unconfined
	root.runner = l.runner
	asRoot := os.Geteuid() == 0
	if asRoot && !l.unconfined.userns {
		ns, err := newStageUserNS(l.runner)
		if err != nil {
			if why := userNSProblem(true); why != "" {
				return fmt.Errorf("%w: %s (%v)", ErrNoSandbox, why, err)
			}
			return fmt.Errorf("%w: %v", ErrNoSandbox, err)
		}
		root.userns = ns
	}
	if l.opts.Probed {
		l.root = root
		return nil
	}
	if err := l.tryBwrap(root); err != nil {
		if root.userns != nil {
			root.userns.close()
		}
		if why := userNSProblem(asRoot); why != "" {
			return fmt.Errorf("%w: %s (bubblewrap: %v)", ErrNoSandbox, why, err)
		}
		return fmt.Errorf("%w: bubblewrap cannot create a sandbox here: %v", ErrNoSandbox, err)
	}
	l.root = root
	return nil
}

// tryBwrap runs an empty stage under bubblewrap with every namespace a
// stage may get.
func (l *Local) tryBwrap(root *bwrapRoot) error {
	sb, err := newSandbox(l.opts.SandboxDir, "sb-", true)
	if err != nil {
		return err
	}
	defer removeAll(sb.dir)
	if root.userns != nil {
		for _, d := range []string{sb.ws, sb.home, sb.tmp} {
			if err := os.Lchown(d, confine.IDBase, confine.IDBase); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The stage writes where it must be able to: its confinement works.
	c, err := root.bwrapArgs(l.bwrap, sb, &sched.Job{}, nil, nil, shellArgs([]string{"touch /tmp/probe /mc/ws/probe"}))
	if err != nil {
		return err
	}
	var out strings.Builder
	cmd := &osexec.Cmd{
		Path: l.bwrap, Args: c.args, Env: append([]string{"PATH=" + l.path}, c.env...),
		Stdout: &out, Stderr: &out, ExtraFiles: c.files, SysProcAttr: root.sysProcAttr(),
	}
	err = cmd.Start()
	c.close()
	if err == nil {
		stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
		err = cmd.Wait()
		stop()
	}
	if err != nil {
		if line, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n"); line != "" {
			return fmt.Errorf("%w: %s", err, line)
		}
		return err
	}
	return nil
}

// hiddenDirs lists what a stage must not see of mc's own directories: the
// cache directory holding them all (store, database, sandboxes, mounts)
// when they are its children, as they are by default; else each of them.
func hiddenDirs(dirs ...string) []string {
	parent := filepath.Dir(dirs[0])
	for _, d := range dirs[1:] {
		if filepath.Dir(d) != parent {
			return dirs
		}
	}
	if parent == "/" {
		return dirs
	}
	return []string{parent}
}

func (l *Local) warn(msg string) {
	if l.opts.Warn != nil {
		l.warnOnce.Do(func() { l.opts.Warn(msg) })
	}
}

// Run runs job in a fresh sandbox. A stage that fails (non-zero exit,
// timeout, missing output, modified input, a source edited during the
// build) is reported in Result.Err; the error is for infrastructure
// failures and for ctx being cancelled, which kills the stage.
func (l *Local) Run(ctx context.Context, job *sched.Job) (*sched.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	// Errors do not repeat the label: the scheduler prefixes it.
	if err := checkJobPaths(job); err != nil {
		return nil, err
	}
	if job.Build != nil || job.Image != "" {
		// Neither runs on a bubblewrap worker: an image build runs no
		// command, a stage in an image runs in a container of its own.
		return l.runImageJob(ctx, job, start)
	}
	isolated, noSandbox := l.Sandboxed()
	if !isolated && l.opts.Sandbox == SandboxRequired {
		return nil, noSandbox
	}
	if isolated && !l.opts.KeepSandbox {
		// A kept sandbox must not be reused: it gets one of its own.
		if res, err, ok := l.runOnWorker(ctx, job); ok {
			if err != nil {
				return nil, err
			}
			res.Duration = time.Since(start)
			return res, nil
		}
	}
	return l.runOwnSandbox(ctx, job, "sb-", isolated, start)
}

// runOwnSandbox runs job in a fresh sandbox of its own, named prefix*,
// and removes it afterwards (unless KeepSandbox).
func (l *Local) runOwnSandbox(ctx context.Context, job *sched.Job, prefix string, isolated bool, start time.Time) (*sched.Result, error) {
	sb, err := newSandbox(l.opts.SandboxDir, prefix, isolated)
	if err != nil {
		return nil, err
	}
	if isolated && job.Image == "" {
		if err := l.ownSandbox(sb); err != nil {
			removeAll(sb.dir)
			return nil, err
		}
	}
	st := &stage{l: l, job: job, sb: sb, isolated: isolated}
	res, err := st.run(ctx)
	if l.opts.KeepSandbox {
		note := "sandbox kept at " + sb.dir
		if job.Log != nil {
			fmt.Fprintf(job.Log, "mc: %s\n", note)
		}
		if res != nil && res.Err != nil {
			res.Err = fmt.Errorf("%w (%s)", res.Err, note)
		}
	} else if rerr := removeAll(sb.dir); rerr != nil && err == nil {
		err = fmt.Errorf("removing the sandbox: %w", rerr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// runOnWorker runs job on a sandbox worker. ok is false when no worker can
// be had: the job is then to run in a sandbox of its own.
func (l *Local) runOnWorker(ctx context.Context, job *sched.Job) (res *sched.Result, err error, ok bool) {
	p := l.workers()
	p.begin()
	defer p.end()
	covers := coverPaths(l.wsCover(job))
	for attempt := 0; ; attempt++ {
		w, err := p.acquire(job, covers)
		if err != nil {
			if !errors.Is(err, errNoWorkers) {
				l.warn(fmt.Sprintf("%v: stages run each in a sandbox of their own, which is slower", err))
			}
			return nil, nil, false
		}
		keep := keptDirs(job)
		made := map[string]bool{".": true}
		for d := range keep {
			made[d] = true
		}
		st := &stage{l: l, job: job, sb: w.sb, isolated: true, w: w, made: made}
		var res *sched.Result
		if rerr := w.reshape(keep); rerr != nil {
			err = fmt.Errorf("%w: preparing its workspace: %v", errWorkerNotStarted, rerr)
		} else {
			res, err = st.run(ctx)
		}
		// Right away, rather than before the next stage: nothing of this
		// one stays on disk while the worker is idle.
		reusable := err == nil || !errors.Is(err, errWorkerNotStarted)
		logFile := st.logf != nil && st.logf.f != nil
		reusable = reusable && w.alive() && w.clear(keep, logFile) == nil
		p.release(w, reusable)
		// A worker that died before the stage started (killed from
		// outside while idle), or whose sandbox cannot be tidied, is
		// replaced, once, transparently.
		if errors.Is(err, errWorkerNotStarted) && attempt == 0 {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err(), true
			}
			return nil, err, true
		}
		return res, nil, true
	}
}

// knownCovers returns the paths of covers and those hiding every
// workspace seen so far, sorted and without repeats.
func (l *Local) knownCovers(covers []string) []string {
	set := map[string]bool{}
	for _, c := range covers {
		set[c] = true
	}
	l.covers.Range(func(_, v any) bool {
		for _, c := range coverPaths(v.([]string)) {
			set[c] = true
		}
		return true
	})
	all := make([]string, 0, len(set))
	for c := range set {
		all = append(all, c)
	}
	sort.Strings(all)
	return all
}

// coverPaths returns the paths hidden by cover arguments (--tmpfs PATH ...).
func coverPaths(args []string) []string {
	var paths []string
	for i := 0; i+1 < len(args); i += 2 {
		paths = append(paths, args[i+1])
	}
	return paths
}

// coverArgs is the inverse of coverPaths.
func coverArgs(paths []string) []string {
	args := make([]string, 0, 2*len(paths))
	for _, p := range paths {
		args = append(args, "--tmpfs", p)
	}
	return args
}
