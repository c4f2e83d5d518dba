// Package sharedcache is the shared cache's tier of a build (an S3 bucket
// behind cas.Remote) as the scheduler sees it: lookups that verify every
// blob a result names, lazy verified downloads, background uploads, and
// fail-open accounting (a required shared cache fails the build instead).
package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
)

// RemoteOptions configures the shared cache tier of a build (an S3 bucket).
// The zero value means no shared cache.
type RemoteOptions struct {
	Cache cas.Remote
	// Write uploads new results. False is the read-only trust tier: a
	// pull-request build from a fork reads what main built but cannot
	// poison it.
	Write bool
	// Required turns any failure of the shared cache into an
	// infrastructure error (exit 3) instead of a warning.
	Required bool
}

// remoteDisableAfter is how many consecutive failures (not misses) make a
// build stop talking to the shared cache: an unreachable bucket must cost a
// few seconds, not a timeout per stage.
const remoteDisableAfter = 3

// uploadParallel bounds concurrent result uploads (each uploads its blobs
// with the remote's own bounded parallelism).
const uploadParallel = 16

// Tier is the scheduler's view of the shared cache: lookups that
// verify every blob a result names, lazy downloads of the blobs a stage or
// mc-out needs, background uploads, and fail-open accounting.
type Tier struct {
	opts  RemoteOptions
	store *cas.Store
	warn  func(string)

	uploads errgroup.Group

	mu          sync.Mutex
	stats       event.RemoteStats
	consecutive int
	disabled    bool
	requiredErr error
	fetching    map[cas.Digest]*fetchCall

	hits, misses, uploaded, downloaded, downBytes atomic.Int64
}

type fetchCall struct {
	done chan struct{}
	err  error
}

func NewTier(opts RemoteOptions, store *cas.Store, warn func(string)) *Tier {
	t := &Tier{opts: opts, store: store, warn: warn, fetching: map[cas.Digest]*fetchCall{}}
	t.stats.URL = opts.Cache.String()
	t.stats.ReadOnly = !opts.Write
	t.uploads.SetLimit(uploadParallel)
	return t
}

// usable reports whether the shared cache is still in use in this build.
func (t *Tier) usable() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.disabled
}

// ok records a successful round trip.
func (t *Tier) ok() {
	t.mu.Lock()
	t.consecutive = 0
	t.mu.Unlock()
}

// failed records a failure of kind (one of the counters) and returns the
// error to stop the build with when the shared cache is required.
func (t *Tier) failed(counter *int64, what string, err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	msg := fmt.Sprintf("%s: %v", what, err)
	if errors.Is(err, cas.ErrCorrupt) {
		// An object that fails verification is a miss, not a failure of
		// the cache: its producer runs again. Whoever can write the bucket
		// must not be able to stop required builds with one bad object.
		t.stats.Corrupt++
		if t.stats.FirstError == "" {
			t.stats.FirstError = msg
			if t.warn != nil {
				t.warn(fmt.Sprintf("shared cache %s: %s; not using it, the stage runs here", t.stats.URL, msg))
			}
		}
		return nil
	}
	*counter++
	t.consecutive++
	if t.stats.FirstError == "" {
		t.stats.FirstError = msg
		if t.warn != nil && !t.opts.Required {
			t.warn(fmt.Sprintf("shared cache %s: %s; going on with the local cache", t.stats.URL, msg))
		}
	}
	if t.opts.Required {
		if t.requiredErr == nil {
			t.requiredErr = fmt.Errorf("shared cache %s (--remote-required): %s", t.stats.URL, msg)
		}
		return t.requiredErr
	}
	if !t.disabled && t.consecutive >= remoteDisableAfter {
		t.disabled = true
		t.stats.Disabled = true
		if t.warn != nil {
			t.warn(fmt.Sprintf("shared cache %s: %d failures in a row; not using it for the rest of this build", t.stats.URL, t.consecutive))
		}
	}
	return nil
}

// Lookup finds a usable result for key: the local one if given (its blobs
// are not all local), else the remote's. It is usable only if every blob it
// names, tree members included, is local or in the remote. With download
// set the caller fetches the blobs right away (ensure), which checks their
// existence anyway: no separate existence round trip is made. The error is
// non-nil only when the shared cache is required and failed.
func (t *Tier) Lookup(ctx context.Context, key cas.Digest, local *cas.ActionResult, download bool) (*cas.ActionResult, error) {
	if !t.usable() {
		return nil, nil
	}
	res := local
	if res == nil {
		r, err := t.opts.Cache.GetAction(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, t.failed(&t.stats.LookupFailures, "lookup "+key.Short(), err)
		}
		t.ok()
		if r == nil {
			t.misses.Add(1)
			return nil, nil
		}
		res = r
	}
	if download {
		return res, nil
	}
	need, err := t.referenced(ctx, res)
	if err != nil {
		if errors.Is(err, cas.ErrNotFound) {
			t.misses.Add(1) // a tree blob expired: rerun
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, t.failed(&t.stats.LookupFailures, "lookup "+key.Short(), err)
	}
	if len(need) > 0 {
		missing, err := t.opts.Cache.FindMissing(ctx, need)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, t.failed(&t.stats.LookupFailures, "checking blobs of "+key.Short(), err)
		}
		t.ok()
		if len(missing) > 0 {
			// Lifecycle expiry removed a blob under a live result: harmless,
			// the stage runs again and uploads it anew.
			t.misses.Add(1)
			return nil, nil
		}
	}
	return res, nil // the caller counts the hit once the result is usable
}

// referenced lists the blobs of res that are not in the local store: its
// outputs, its log, and the members of directory outputs (the tree blob is
// fetched to learn them; it is small).
func (t *Tier) referenced(ctx context.Context, res *cas.ActionResult) ([]cas.Digest, error) {
	var need []cas.Digest
	seen := map[cas.Digest]bool{}
	add := func(d cas.Digest) {
		if !d.IsZero() && d != cas.Empty && !seen[d] && t.store.Check(d) != nil {
			seen[d] = true
			need = append(need, d)
		}
	}
	add(res.Log)
	for _, o := range res.Outputs {
		if !o.IsDir {
			add(o.Digest)
			continue
		}
		if err := t.Fetch(ctx, o.Digest, -1); err != nil {
			return nil, err
		}
		tree, err := t.store.GetTree(o.Digest)
		if err != nil {
			return nil, err
		}
		for _, e := range tree.Entries {
			add(e.Digest)
		}
	}
	return need, nil
}

// Fetch downloads blob d into the local store unless it is there; one
// download per digest at a time.
func (t *Tier) Fetch(ctx context.Context, d cas.Digest, size int64) error {
	if d.IsZero() || t.store.Check(d) == nil {
		return nil // here and good; a corrupt one was removed: download it
	}
	if d == cas.Empty {
		_, err := t.store.PutBytes(nil)
		return err
	}
	t.mu.Lock()
	if c, ok := t.fetching[d]; ok {
		t.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &fetchCall{done: make(chan struct{})}
	t.fetching[d] = c
	t.mu.Unlock()
	c.err = t.opts.Cache.Fetch(ctx, d, size, t.store)
	if c.err == nil {
		t.downloaded.Add(1)
		if size > 0 {
			t.downBytes.Add(size)
		}
	}
	t.mu.Lock()
	delete(t.fetching, d)
	t.mu.Unlock()
	close(c.done)
	return c.err
}

// Ensure makes the blobs of outs local: the outputs of cached dependencies
// before a stage runs, or of requested targets before mc-out is written.
func (t *Tier) Ensure(ctx context.Context, outs []cas.Output) error {
	// Outputs and the files of directory outputs are fetched in separate
	// groups: an output's goroutine waiting for a slot for a file can then
	// never hold every slot the files need.
	var g, files errgroup.Group
	g.SetLimit(32)
	files.SetLimit(32)
	one := func(o cas.Output) error {
		size := o.Size
		if o.IsDir {
			size = -1 // Output.Size of a directory is its files' total
		}
		if err := t.Fetch(ctx, o.Digest, size); err != nil {
			return fmt.Errorf("%s: %w", o.Path, err)
		}
		if !o.IsDir {
			return nil
		}
		tree, err := t.store.GetTree(o.Digest)
		if err != nil {
			return fmt.Errorf("%s: %w", o.Path, err)
		}
		for _, e := range tree.Entries {
			if e.Digest.IsZero() {
				continue
			}
			files.Go(func() error {
				if err := t.Fetch(ctx, e.Digest, e.Size); err != nil {
					return fmt.Errorf("%s/%s: %w", o.Path, e.Path, err)
				}
				return nil
			})
		}
		return nil
	}
	// The first output is fetched on the caller's goroutine, whose stack has
	// already grown through the lookup's SDK call: a new goroutine would grow
	// its own again (a tenth of the CPU of a remote-cached build, where most
	// stages have one output).
	for _, o := range outs[min(1, len(outs)):] {
		g.Go(func() error { return one(o) })
	}
	var err error
	if len(outs) > 0 {
		err = one(outs[0])
	}
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if werr := files.Wait(); err == nil {
		err = werr
	}
	// A blob that is gone (lifecycle expiry) is a miss, not a failure; one
	// that fails verification is counted (failed) and is a miss too.
	if err != nil && ctx.Err() == nil && !errors.Is(err, cas.ErrNotFound) {
		if rerr := t.failed(&t.stats.DownloadFailures, "download", err); rerr != nil {
			return rerr
		}
	}
	return err
}

// Upload sends a built result's blobs, then the result, in the
// background: the result is written last, so a reader never finds a result
// whose blobs are not there yet.
func (t *Tier) Upload(ctx context.Context, key cas.Digest, res *cas.ActionResult, fail func(error)) {
	if !t.opts.Write || !t.usable() {
		return
	}
	t.uploads.Go(func() error {
		if !t.usable() || ctx.Err() != nil {
			return nil
		}
		if err := t.uploadResult(ctx, key, res); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if rerr := t.failed(&t.stats.UploadFailures, "upload "+res.Label, err); rerr != nil {
				fail(rerr)
			}
			return nil
		}
		t.ok()
		t.uploaded.Add(1)
		return nil
	})
}

func (t *Tier) uploadResult(ctx context.Context, key cas.Digest, res *cas.ActionResult) error {
	type blob struct {
		d    cas.Digest
		size int64
	}
	var blobs []blob
	if !res.Log.IsZero() && res.Log != cas.Empty {
		if fi, err := t.store.Size(res.Log); err == nil {
			blobs = append(blobs, blob{res.Log, fi})
		}
	}
	for _, o := range res.Outputs {
		if o.IsDir {
			tree, err := t.store.GetTree(o.Digest)
			if err != nil {
				return err
			}
			for _, e := range tree.Entries {
				if !e.Digest.IsZero() {
					blobs = append(blobs, blob{e.Digest, e.Size})
				}
			}
			size, err := t.store.Size(o.Digest)
			if err != nil {
				return err
			}
			blobs = append(blobs, blob{o.Digest, size})
			continue
		}
		blobs = append(blobs, blob{o.Digest, o.Size})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, b := range blobs {
		g.Go(func() error { return t.opts.Cache.Upload(gctx, b.d, b.size, t.store) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return t.opts.Cache.PutAction(ctx, key, res)
}

// Hit counts a lookup the shared cache answered with a usable result.
func (t *Tier) Hit() { t.hits.Add(1) }

// Miss counts a lookup that found a result whose blobs could not be had.
func (t *Tier) Miss() { t.misses.Add(1) }

// Finish waits for the uploads and returns the build's statistics.
func (t *Tier) Finish() *event.RemoteStats {
	t.uploads.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Hits, s.Misses = t.hits.Load(), t.misses.Load()
	s.Uploaded, s.Downloaded, s.DownloadedBytes = t.uploaded.Load(), t.downloaded.Load(), t.downBytes.Load()
	return &s
}
