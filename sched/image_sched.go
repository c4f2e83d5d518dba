package sched

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/oci"
)

// ImageOptions configures what a build does with registry images and with
// the images it builds. The zero value resolves references with oci's
// defaults and pushes nothing.
type ImageOptions struct {
	// Resolve turns a registry reference into "repo@sha256:…". It is
	// called at most once per reference and build. Nil: oci.Resolve with
	// default options.
	Resolve func(ctx context.Context, ref string) (string, error)
	// Push, when set, is called for every image action whose target has a
	// repository, once the image is built or found in the cache and
	// before any action depending on it starts, with the image as an OCI
	// layout at layoutDir (removed afterwards). It returns the pushed
	// references, "repo@sha256:…" first. An error stops the build as an
	// infrastructure failure.
	Push func(ctx context.Context, a *graph.Action, layoutDir string) ([]string, error)
}

// imageHooks is the scheduler's per-build image state; the zero value is
// ready.
type imageHooks struct {
	mu       sync.Mutex
	resolved map[string]*resolution
	builds   map[*graph.Action]*ImageBuild
}

// resolution is one reference's resolution, shared by every action naming
// it.
type resolution struct {
	done chan struct{}
	ref  string
	err  error
}

// resolve resolves ref once per build.
func (h *imageHooks) resolve(ctx context.Context, opts ImageOptions, ref string) (string, error) {
	h.mu.Lock()
	if h.resolved == nil {
		h.resolved = map[string]*resolution{}
	}
	r, ok := h.resolved[ref]
	if !ok {
		r = &resolution{done: make(chan struct{})}
		h.resolved[ref] = r
	}
	h.mu.Unlock()
	if ok {
		select {
		case <-r.done:
			return r.ref, r.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	defer close(r.done)
	if opts.Resolve != nil {
		r.ref, r.err = opts.Resolve(ctx, ref)
	} else {
		r.ref, r.err = oci.Resolve(ctx, ref, oci.Options{})
	}
	return r.ref, r.err
}

// keyParts is KeyParts for the scheduler: registry references resolved
// once per build. A registry that cannot be reached (rather than one that
// says the image does not exist) stops the build as an infrastructure
// failure.
func (s *scheduler) keyParts(ctx context.Context, a *graph.Action) (*graph.KeyParts, []Input, error) {
	resolve := func(ref string) (string, error) { return s.images.resolve(ctx, s.opts.Images, ref) }
	parts, inputs, err := KeyPartsResolved(a, s.opts.Root, s.opts.Platform, s.opts.Files,
		func(d *graph.Action) []cas.Output { return s.outcome(d).Result.Outputs }, resolve)
	if err != nil {
		var re *oci.RegistryError
		if errors.As(err, &re) && !re.NotFound() && ctx.Err() == nil {
			s.setInfraErr(fmt.Errorf("%s: %w", a.Label(), err))
		}
		return nil, nil, err
	}
	if a.Target.Kind == graph.KindImage {
		b, err := imageBuildOf(a, parts.Platform, parts.Image)
		if err != nil {
			return nil, nil, err
		}
		s.images.mu.Lock()
		if s.images.builds == nil {
			s.images.builds = map[*graph.Action]*ImageBuild{}
		}
		s.images.builds[a] = b
		s.images.mu.Unlock()
	}
	return parts, inputs, nil
}

// imageJob completes the job of an image action (what to build) or of a
// stage running in an image (which one), from its key parts.
func (s *scheduler) imageJob(a *graph.Action, parts *graph.KeyParts, job *Job) {
	t := a.Target
	switch {
	case t.Kind == graph.KindImage:
		s.images.mu.Lock()
		job.Build = s.images.builds[a]
		s.images.mu.Unlock()
		job.Image = ""
	case isRegistryRef(t.Image):
		job.Image = parts.Image
	case t.Image != "":
		job.Image = t.Image
		// The label was checked when the graph was linked.
		job.ImageLayout, _ = imageLayoutOf(t.Image)
	}
}

// pushes reports whether a is an image stage this build pushes.
func (s *scheduler) pushes(a *graph.Action) bool {
	t := a.Target
	return s.opts.Images.Push != nil && t.Kind == graph.KindImage && t.ImageSpec != nil && t.ImageSpec.Repository != ""
}

// afterImage pushes image action a, when it has a repository and pushing
// is on, once it has an outcome and before its dependents are released.
// A failed push turns the outcome into a failure (its dependents, such as
// a deploy stage, must not run) and stops the build as an infrastructure
// failure.
func (s *scheduler) afterImage(ctx context.Context, a *graph.Action, o *Outcome) *Outcome {
	if !s.pushes(a) {
		return o
	}
	t := a.Target
	if o.Status != StatusBuilt && o.Status != StatusCached || o.Result == nil {
		return o
	}
	label := t.Label.String()
	refs, err := s.push(ctx, a, o.Result)
	if err != nil {
		err = fmt.Errorf("pushing %s: %w", label, err)
		if ctx.Err() == nil {
			s.setInfraErr(err)
		}
		s.opts.Sink.Event(event.Event{Type: event.Log, Time: time.Now(), Label: label, Line: "push failed: " + err.Error()})
		return &Outcome{Status: StatusFailed, Err: err, Key: o.Key, Parts: o.Parts, Start: o.Start, End: o.End}
	}
	line := "pushed"
	if len(refs) > 0 {
		line += " " + refs[0]
	}
	if len(refs) > 1 {
		var tags []string
		for _, r := range refs[1:] {
			if i := strings.LastIndexByte(r, ':'); i >= 0 {
				tags = append(tags, r[i+1:])
			}
		}
		line += " (tags " + strings.Join(tags, ", ") + ")"
	}
	s.opts.Sink.Event(event.Event{Type: event.Log, Time: time.Now(), Label: label, Line: line})
	return o
}

// push materializes the image's layout from the store (fetching it from
// the shared cache if only that has it) and hands it to Options.Images.Push.
func (s *scheduler) push(ctx context.Context, a *graph.Action, res *cas.ActionResult) ([]string, error) {
	t := a.Target
	want := path.Join(t.Label.Pkg, t.Label.Name+".oci")
	var layout *cas.Output
	for i, out := range res.Outputs {
		if out.Path == want && out.IsDir {
			layout = &res.Outputs[i]
		}
	}
	if layout == nil {
		return nil, fmt.Errorf("the result has no %s/ output", want)
	}
	if s.remote != nil {
		if err := s.remote.Ensure(ctx, []cas.Output{*layout}); err != nil {
			return nil, fmt.Errorf("fetching the image from the shared cache: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(s.opts.Store.TempDir(), "push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "layout")
	if err := s.opts.Store.MaterializeTree(layout.Digest, dir, true); err != nil {
		return nil, err
	}
	return s.opts.Images.Push(ctx, a, dir)
}
