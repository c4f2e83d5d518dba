package sched

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
)

// Rewinding. A stage about to run needs its dependencies' outputs in the
// local store, each known to hold its digest's bytes. An output can turn
// out gone or bad after its producer finished: a blob corrupted or
// replaced in the local store, or, for a producer that was a shared-cache
// hit whose outputs are downloaded only when needed, an object that is
// missing or fails verification (the "lost inputs" case). The build does
// not fail then: the producer runs again, its new result replaces the one
// that named the bad blob (locally, and in the shared cache when this
// build writes it), and the stage runs on its outputs.

// rewindError is a dependency that ran again, its outputs being lost, and
// did not build: the dependent fails as if the dependency had (not an
// infrastructure failure).
type rewindError struct {
	dep string
	err error
}

func (e *rewindError) Error() string {
	return fmt.Sprintf("dependency %s ran again (its outputs were lost) and did not build: %v", e.dep, e.err)
}

func (e *rewindError) Unwrap() error { return e.err }

// lost reports whether err means a blob is gone or bad (a miss), as
// opposed to a store or shared cache that could not be read.
func lost(err error) bool {
	return errors.Is(err, cas.ErrNotFound) || errors.Is(err, cas.ErrCorrupt)
}

// readyInputs makes the outputs of a's dependencies local and good before
// a runs: what a shared-cache hit left remote is downloaded (verified), and
// a dependency whose outputs are gone or bad, locally or as downloaded,
// runs again. rewound reports whether any did (a's inputs may then have
// changed). With --remote-required, a shared cache that cannot be read is
// an error; a bad or missing object never is.
func (s *scheduler) readyInputs(ctx context.Context, a *graph.Action) (rewound bool, err error) {
	type dep struct {
		a   *graph.Action
		bad []cas.Output
	}
	var deps []dep
	var all []cas.Output
	for _, d := range a.Deps {
		o := s.outcome(d)
		if o == nil || o.Result == nil {
			continue
		}
		if bad := s.badOutputs(o.Result.Outputs); len(bad) > 0 {
			deps = append(deps, dep{d, bad})
			all = append(all, bad...)
		}
	}
	if len(deps) == 0 {
		return false, nil
	}
	if s.remote != nil {
		err := s.remote.Ensure(ctx, all)
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if s.opts.Remote.Required && !lost(err) {
			return false, fmt.Errorf("downloading inputs from the shared cache: %w", err)
		}
		// Not required, the shared cache failing is a miss like any
		// other: the producer runs here.
	}
	for _, d := range deps {
		if len(s.badOutputs(d.bad)) == 0 {
			continue // downloaded
		}
		if err := s.rewind(ctx, d.a, d.bad[0].Path); err != nil {
			return rewound, err
		}
		rewound = true
	}
	return rewound, nil
}

// badOutputs returns the outputs among outs that are not in the local
// store and good: a file output's blob, a directory output's tree blob and
// every file of it. A corrupt blob is removed from the store on the way
// (cas.Store.Check), which costs a stat for each blob known good.
func (s *scheduler) badOutputs(outs []cas.Output) []cas.Output {
	var bad []cas.Output
	st := s.opts.Store
	for _, o := range outs {
		if st.Check(o.Digest) != nil {
			bad = append(bad, o)
			continue
		}
		if !o.IsDir {
			continue
		}
		tree, err := st.GetTree(o.Digest)
		if err != nil {
			bad = append(bad, o)
			continue
		}
		for _, e := range tree.Entries {
			if !e.Digest.IsZero() && st.Check(e.Digest) != nil {
				bad = append(bad, o)
				break
			}
		}
	}
	return bad
}

// rewind runs the action d again, because its output path is gone or bad,
// and makes its new outcome the one its dependents see. Several dependents
// finding the same outputs lost share one run. The run takes the job slot
// of the dependent that waits for it, and rewinds only go to dependencies,
// so they cannot wait on each other in a cycle.
func (s *scheduler) rewind(ctx context.Context, d *graph.Action, path string) error {
	s.mu.Lock()
	if s.rewinds == nil {
		s.rewinds = map[*graph.Action]*flight{}
	}
	if f, ok := s.rewinds[d]; ok {
		s.mu.Unlock()
		<-f.done
		return f.err
	}
	f := &flight{done: make(chan struct{})}
	s.rewinds[d] = f
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.rewinds, d)
		s.mu.Unlock()
		close(f.done)
	}()
	label := d.Label().String()
	s.opts.Sink.Event(event.Event{Type: event.Log, Time: time.Now(), Label: label,
		Line: fmt.Sprintf("warning: output %s is gone or failed verification; running %s again", path, label)})
	o := s.doAction(ctx, d, true, new(bool))
	if o.Status != StatusBuilt {
		err := o.Err
		if err == nil {
			err = errors.New("not run")
		}
		f.err = &rewindError{dep: label, err: err}
		return f.err
	}
	s.mu.Lock()
	s.outcomes[d] = o
	s.mu.Unlock()
	return nil
}
