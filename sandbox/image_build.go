package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sched"
)

// runImageJob runs an image build or a stage in an image, each in a
// sandbox of its own: an image build needs no isolation (it runs no
// command), a container gets the sandbox's workspace bound into it.
func (l *Local) runImageJob(ctx context.Context, job *sched.Job, start time.Time) (*sched.Result, error) {
	if err := checkImageJob(job); err != nil {
		return nil, err
	}
	if job.Build != nil {
		return l.runOwnSandbox(ctx, job, "img-", false, start)
	}
	// The sandbox's name is the container's id: letters, digits and '-'.
	return l.runOwnSandbox(ctx, job, "ct-", true, start)
}

// buildImage assembles the image of an image job from its inputs, placed
// in the sandbox like a stage's, and writes its two outputs: the layout
// and the digest file. A base or file the image cannot be built from is
// the stage's failure; the error is for the infrastructure (a registry that
// cannot be reached, the disk) and cancellation.
func (s *stage) buildImage(ctx context.Context, _ []cacheMount) (code int, runErr, err error) {
	logf, mw, err := s.openLog()
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	b := s.job.Build
	ws := s.sb.ws
	in := func(rel string) string { return filepath.Join(ws, filepath.FromSlash(rel)) }
	base := ""
	switch {
	case b.Base != "":
		base = in(b.Base)
	case b.BaseRef != "":
		if base, err = s.l.pulled(ctx, b.BaseRef); err != nil {
			if isStageError(err) {
				return -1, err, closeLog(mw, logf, nil)
			}
			return 0, nil, err
		}
	}
	files := make([]oci.File, len(b.Files))
	for i, f := range b.Files {
		files[i] = oci.File{Dest: f.Dest, Src: in(f.Src)}
	}
	digest, berr := oci.Build(ctx, base, files, b.Config, in(b.Layout))
	if berr != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		var pe *os.PathError
		if errors.As(berr, &pe) && isDiskFull(pe.Err) {
			return 0, nil, fmt.Errorf("building the image: %w", berr)
		}
		return -1, fmt.Errorf("building the image: %w", berr), closeLog(mw, logf, nil)
	}
	// No trailing newline: "$(cat x.digest)" and a plain read give the
	// digest as is.
	if err := os.WriteFile(in(b.Digest), []byte(digest), 0o644); err != nil {
		return 0, nil, fmt.Errorf("writing the image digest: %w", err)
	}
	return 0, nil, closeLog(mw, logf, nil)
}

// checkImageJob rejects an image job whose paths would reach outside the
// sandbox, or a stage whose image is neither an input nor a digest.
func checkImageJob(job *sched.Job) error {
	if b := job.Build; b != nil {
		paths := []string{b.Digest, b.Layout}
		if b.Base != "" {
			paths = append(paths, b.Base)
		}
		for _, f := range b.Files {
			paths = append(paths, f.Src)
		}
		for _, p := range paths {
			if !isLocalSlash(p) {
				return fmt.Errorf("invalid image build path %q", p)
			}
		}
		return nil
	}
	if job.ImageLayout == "" {
		if _, d, ok := strings.Cut(job.Image, "@"); !ok || !strings.HasPrefix(d, "sha256:") {
			return fmt.Errorf("image %s: neither an input layout nor a registry reference with a digest", job.Image)
		}
		return nil
	}
	for _, in := range job.Inputs {
		if in.Path == job.ImageLayout && in.IsTree {
			return nil
		}
	}
	return fmt.Errorf("image %s: its layout %s is not among the inputs", job.Image, job.ImageLayout)
}
