// Package sched runs the action graph: the scheduler (parallelism, fail-fast
// or keep-going, cache lookups, one run per action digest, rewinds of lost
// inputs, cancellation, the critical path) and the Executor interface that
// runs one stage (package sandbox on this machine, package runner on remote
// runners).
package sched

import (
	"context"
	"io"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

// Executor runs one Job. It is the seam for remote execution: a Job names its
// inputs by digest only, so an executor on another machine can fetch them
// from a shared CAS, and its Result names outputs by digest.
type Executor interface {
	Run(ctx context.Context, job *Job) (*Result, error)
}

// Lookahead is implemented by executors that get machines ready before the
// jobs that will need them arrive (the remote runners' warm pool). The
// scheduler calls Ahead with the number of actions not finished yet (cached
// ones included: it cannot know which will be hits) at the start and
// whenever that number drops. Ahead must not block.
type Lookahead interface {
	Ahead(remaining int)
}

// Input is one file placed in the sandbox before the stage runs.
type Input struct {
	Path   string     // workspace-relative
	Digest cas.Digest // file content; for IsTree, the tree blob
	Size   int64
	Exec   bool
	IsTree bool // a directory output of a dependency, stored as a cas.Tree
	// Source is the absolute host path of a workspace source file ("" for
	// outputs of other stages). A local executor may use it to put the blob
	// into the CAS when it is not there yet, after checking the digest.
	Source string
}

// Job is everything needed to run one stage, with no reference to the
// workspace on disk except Input.Source.
type Job struct {
	Label   graph.Label
	Key     cas.Digest // the action digest
	Pkg     string     // the package: the working directory inside the sandbox
	Cmds    []string   // run with /bin/sh -c, in order, stopping at the first failure
	Env     map[string]string
	Secrets map[string]string // values; masked in logs by the executor
	Inputs  []Input
	// Outs are the declared outputs, workspace-relative; a trailing "/" is a directory.
	Outs        []string
	Timeout     time.Duration // 0: none
	Network     bool
	CacheMounts map[string]string // env var -> cache name
	// Image is "" for none, else the image the stage runs in: for an image
	// target, its label, with ImageLayout naming its OCI layout among
	// Inputs; for a registry image, the resolved "repo@sha256:…".
	Image string
	// ImageLayout is the workspace-relative path of the OCI image layout
	// (an input) of an image target the stage runs in; "" otherwise.
	ImageLayout string
	// Build, when not nil, makes the job an image build: instead of
	// running Cmds, the executor assembles the image it describes from
	// Inputs and writes it as the job's two outputs.
	Build *ImageBuild
	// Log receives the stage's combined stdout and stderr as it runs
	// (secrets already masked). The executor also stores the log in the CAS.
	Log io.Writer
}

// Result is what a finished Job produced. A non-zero ExitCode or a missing
// output is a failed stage, reported through Result.Err, not through Run's
// error, which is kept for infrastructure failures.
type Result struct {
	ExitCode int
	// Err describes why the stage failed ("exit status 2", "missing output
	// out/api", "timed out after 30s"); nil on success.
	Err      error
	Outputs  []cas.Output
	Log      cas.Digest // the whole log as stored in the CAS
	Duration time.Duration
	// Phases are where the time went (restoring inputs, running, storing
	// outputs), for profiles; optional.
	Phases []Phase
}

// Phase is one timed part of running a job.
type Phase struct {
	Name       string
	Start, End time.Time
}
