package server

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is what `mc serve` is told. Secrets (WebhookSecret, GitHubToken,
// AuthToken) are never written to the database nor shown in a page, and are
// removed from the environment of the builds.
type Config struct {
	// DataDir holds server.db, the repositories' mirrors (git/) and their
	// worktrees (work/; checkout.go).
	DataDir string
	// PublicURL is the base of the links in commit statuses (no trailing /).
	PublicURL string
	// WebhookSecret verifies X-Hub-Signature-256; without one every
	// delivery is refused.
	WebhookSecret string
	// GitHubToken authenticates check runs and commit statuses; without
	// it or an App nothing is reported to GitHub.
	GitHubToken string
	// GitHubAppID and GitHubAppKey authenticate as a GitHub App instead
	// (installation tokens, see package ghapi).
	GitHubAppID  int64
	GitHubAppKey *rsa.PrivateKey
	// GitHubAPI is the API base URL (default https://api.github.com/; GitHub
	// Enterprise: https://HOST/api/v3/).
	GitHubAPI string
	// AuthToken is required (Authorization: Bearer) by everything that
	// starts or cancels a run; without one nothing can, except webhooks.
	AuthToken string
	// TokenGuesses is how many failed token checks one client address may
	// make within ten minutes before it is refused (default 10; negative:
	// no limit, which only tests' controls want; guesses.go).
	TokenGuesses int
	// TrustedProxies are the reverse proxies in front of the server: a
	// request from one of them is counted against the client address they
	// add to X-Forwarded-For (guesses.go), not theirs.
	TrustedProxies []netip.Prefix
	// Parallel is how many runs build at once (default 1).
	Parallel int
	// CancelSuperseded cancels the queued or running runs of a branch (or
	// pull request) when a commit that replaces theirs arrives: one that
	// descends from theirs, or after a force push the branch's new head
	// (supersede.go). Never by arrival order alone.
	CancelSuperseded bool
	// DeliveryRetention is how long webhook deliveries are remembered (by
	// id and by the hash of their signed body) to refuse replays; default
	// 30 days. MaxDeliveries bounds their number (default 100,000; the
	// oldest go first). An older replay is built but never deploys an old
	// commit: deploys check the branch's head.
	DeliveryRetention time.Duration
	MaxDeliveries     int
	// Exe is the mc binary the builds run (os.Executable() in mc serve);
	// it is started with argv[0] "mc".
	Exe string
	// BuildArgs are added to every build command (e.g. -j 2, --cache-dir).
	BuildArgs []string
	// Env is added to the builds' environment (after the process's own).
	Env []string
	// PREnv names variables of the server's environment that pull-request
	// builds may see besides a safe list (see prSafeEnv): for example
	// read-only credentials of the shared cache. Pull requests see no
	// other variable, so no secret of trusted builds.
	PREnv []string
	// Log receives the server's own messages (default: discarded).
	Log io.Writer
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Sign-in, private reading and retention (auth.go, retention.go):
	// OAuth is sign-in with GitHub; Private makes reading need sign-in;
	// ended runs older than KeepAge or beyond the newest KeepRuns are
	// pruned at start and every PruneEvery (default 1 h).
	OAuth      OAuthConfig
	Private    bool
	KeepAge    time.Duration
	KeepRuns   int
	PruneEvery time.Duration

	// Tests only, the positive controls of the guarantees: noHeadCheck
	// deploys a commit that is not its branch's head; noReplayCheck takes a
	// signed body seen before under a new delivery id; supersedeByArrival
	// lets any later run cancel an earlier one, whatever their ancestry.
	noHeadCheck        bool
	noReplayCheck      bool
	supersedeByArrival bool
	// extraOrigins are origins whose form POSTs pass the Origin check
	// (tests: the positive control of the CSRF token alone).
	extraOrigins []string
	// sharedSlots lets pull requests build in the trusted runs' worktrees
	// (checkout.go).
	sharedSlots bool
}

// Server is a running mc serve.
type Server struct {
	cfg     Config
	st      *store
	gh      *statusClient
	auth    *authState // sessions, sign-in (auth.go)
	guesses *guesses   // failed token checks per client (guesses.go)
	logMu   sync.Mutex
	mux     *http.ServeMux
	closed  chan struct{}

	mu       sync.Mutex
	pending  []int64                           // queued run ids, oldest first
	active   map[int64]context.CancelCauseFunc // running runs
	notify   map[int64]chan struct{}           // closed on each new event of a run
	wake     chan struct{}
	stopping bool // Run is stopping: no run may start
	workers  sync.WaitGroup
	// deploying are the runs in their deploy stages (superseding leaves
	// them to finish); deployLock serialises the deploys of a branch.
	deploying  map[int64]bool
	deployLock map[string]chan struct{}

	// life ends when Run stops: background work (superseding) ends with
	// it; bg counts that work (started only while !stopping).
	life    context.Context
	endLife context.CancelFunc
	bg      sync.WaitGroup
	gitMu   sync.Mutex // the repository mirrors (supersede.go)
	slots   slots      // the worktrees in use (checkout.go)

	statuses   chan *Run // commit statuses to post, in order (status.go)
	statusDone chan struct{}
}

// errShutdown and a *supersededError are causes a running run is cancelled
// with (besides the API's): errShutdown marks it interrupted, not cancelled.
var errShutdown = errors.New("the server stopped during the run")

// supersededError names the run whose commit replaces the cancelled one's.
type supersededError struct{ by int64 }

func (e *supersededError) Error() string { return fmt.Sprintf("superseded by run %d", e.by) }

// New opens the server's state under cfg.DataDir. Runs its predecessor left
// running are marked interrupted (and so reported to GitHub); runs it left
// queued are queued again, to build once Run starts.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if cfg.Parallel < 1 {
		cfg.Parallel = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeliveryRetention <= 0 {
		cfg.DeliveryRetention = 30 * 24 * time.Hour
	}
	if cfg.MaxDeliveries <= 0 {
		cfg.MaxDeliveries = 100_000
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if err := CheckToken(cfg.AuthToken); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	auth, err := newAuthState(&cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(filepath.Join(cfg.DataDir, "server.db"))
	if err != nil {
		return nil, err
	}
	gh, err := newStatusClient(cfg)
	if err != nil {
		st.close()
		return nil, err
	}
	s := &Server{
		cfg: cfg, st: st, gh: gh, auth: auth, guesses: newGuesses(cfg.TokenGuesses, cfg.Now), closed: make(chan struct{}),
		active: map[int64]context.CancelCauseFunc{}, notify: map[int64]chan struct{}{},
		deploying: map[int64]bool{}, deployLock: map[string]chan struct{}{},
		wake: make(chan struct{}, 1), statuses: make(chan *Run, 4096), statusDone: make(chan struct{}),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	go s.statusLoop()
	ids, err := st.interruptActive(ctx, cfg.Now())
	if err != nil {
		close(s.statuses)
		st.close()
		return nil, err
	}
	for _, id := range ids {
		if r, err := st.getRun(ctx, id); err == nil && r != nil {
			s.logf("run %d: interrupted (the server stopped during it)", id)
			s.postStatus(ctx, r)
		}
	}
	if s.pending, err = st.queuedRuns(ctx); err != nil {
		close(s.statuses)
		st.close()
		return nil, err
	}
	s.mux = s.routes()
	return s, nil
}

// Handler serves the web pages, the API and the webhook endpoint.
func (s *Server) Handler() http.Handler { return s.guard(s.mux) }

// Run starts cfg.Parallel workers that build queued runs, and blocks until
// ctx is done; runs still building then are cancelled and recorded as
// interrupted, runs still queued stay queued for the next start.
func (s *Server) Run(ctx context.Context) error {
	s.startPruner()
	for range s.cfg.Parallel {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			s.worker(ctx)
		}()
	}
	<-ctx.Done()
	close(s.closed) // live pages' streams end
	s.mu.Lock()
	s.stopping = true
	for _, cancel := range s.active {
		cancel(errShutdown)
	}
	s.pending = nil
	s.mu.Unlock()
	s.endLife()
	s.workers.Wait()
	s.bg.Wait()
	return nil
}

// Close posts the commit statuses still queued (for up to 30 s) and closes
// the database. Call it after Run returned.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.endLife()
	s.bg.Wait()
	close(s.statuses)
	select {
	case <-s.statusDone:
	case <-time.After(30 * time.Second):
		s.logf("commit statuses not posted: GitHub did not answer in time")
	}
	return s.st.close()
}

func (s *Server) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, "mc serve: "+format+"\n", args...)
}

// enqueue records r as queued and hands it to the workers; with
// CancelSuperseded, the queued or running runs of the same branch or pull
// request that r replaces are cancelled (by ancestry, in the background:
// see supersede).
func (s *Server) enqueue(ctx context.Context, r *Run) error {
	r.Status = StatusQueued
	r.Created = s.cfg.Now()
	if err := s.st.createRun(ctx, r); err != nil {
		return err
	}
	s.logf("run %d queued: %s %s %s", r.ID, r.Trigger, r.Branch, r.Commit)
	s.mu.Lock()
	s.pending = append(s.pending, r.ID)
	if s.cfg.CancelSuperseded && r.Trigger != TriggerCLI && !s.stopping {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.supersede(s.life, r)
		}()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.postStatus(ctx, r)
	return nil
}

// cancel stops run id: a queued one never starts, a running one has its
// build interrupted. It reports false when the run is neither.
func (s *Server) cancel(ctx context.Context, id int64, cause error) bool {
	return s.cancelRun(ctx, id, cause, false) == cancelDone
}

// Results of cancelRun.
const (
	cancelNone      = iota // the run is neither queued nor running
	cancelDone             // cancelled
	cancelDeploying        // left alone: it is in its deploy stages
)

// cancelUnlessDeploying is cancel, except that a run in its deploy stages
// is left to finish (a deploy cut short may leave a half-done release).
func (s *Server) cancelUnlessDeploying(ctx context.Context, id int64, cause error) int {
	return s.cancelRun(ctx, id, cause, true)
}

func (s *Server) cancelRun(ctx context.Context, id int64, cause error, spareDeploys bool) int {
	s.mu.Lock()
	if i := slices.Index(s.pending, id); i >= 0 {
		s.pending = slices.Delete(s.pending, i, i+1)
		s.mu.Unlock()
		s.logf("run %d cancelled before it started: %v", id, cause)
		if err := s.st.finishRun(ctx, id, StatusCancelled, cause.Error(), s.cfg.Now()); err != nil {
			s.logf("%v", err)
		}
		s.wakeWatchers(id)
		if r, err := s.st.getRun(ctx, id); err == nil && r != nil {
			s.postStatus(ctx, r)
		}
		return cancelDone
	}
	if spareDeploys && s.deploying[id] {
		s.mu.Unlock()
		return cancelDeploying
	}
	c, ok := s.active[id]
	s.mu.Unlock()
	if !ok {
		return cancelNone
	}
	s.logf("run %d: cancelling: %v", id, cause)
	c(cause)
	return cancelDone
}

func (s *Server) worker(ctx context.Context) {
	for {
		s.mu.Lock()
		var id int64
		if len(s.pending) > 0 {
			id = s.pending[0]
			s.pending = s.pending[1:]
		}
		s.mu.Unlock()
		if id == 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		// Another worker may sleep while more runs wait.
		select {
		case s.wake <- struct{}{}:
		default:
		}
		// Only cancel() ends a run, with its cause (superseded, the API,
		// or errShutdown, which Run gives every active run when it stops).
		runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		s.mu.Lock()
		s.active[id] = cancel
		if s.stopping {
			cancel(errShutdown)
		}
		s.mu.Unlock()
		s.execute(runCtx, id)
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
		cancel(nil)
		if ctx.Err() != nil {
			return
		}
	}
}

// watch returns a channel closed at the next event of run id.
func (s *Server) watch(id int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.notify[id]
	if !ok {
		ch = make(chan struct{})
		s.notify[id] = ch
	}
	return ch
}

func (s *Server) wakeWatchers(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.notify[id]; ok {
		close(ch)
		delete(s.notify, id)
	}
}
