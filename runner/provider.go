package runner

import (
	"context"
	"errors"
	"time"
)

// Tags every runner instance (and, on EC2, its volume) carries.
const (
	TagWorkspace = "mc:workspace"
	TagRun       = "mc:run"
	TagStage     = "mc:stage"
	TagJob       = "mc:job"
	TagExpiresAt = "mc:expires-at" // RFC 3339, UTC
	// TagKeep marks a runner kept with --keep-runner: the reaper leaves it
	// until its mc:expires-at (or --all), though its run is over.
	TagKeep = "mc:keep"
	// TagTier is "untrusted" on an untrusted build's runners (absent on
	// trusted ones): their run's objects are under the untrusted tier.
	TagTier = "mc:tier"
)

// Instance states, as EC2 names them.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateTerminated = "terminated"
)

// ErrCapacity wraps launch errors worth retrying later: no capacity of the
// instance type, or the API throttling us.
var ErrCapacity = errors.New("no capacity")

// LaunchSpec describes one runner to start.
type LaunchSpec struct {
	Workspace, RunID, JobID string
	Label                   string // the stage, for the mc:stage tag
	UserData                string // the bootstrap script
	InstanceType, AMI       string // "" for the provider's default
	DiskGB                  int    // 0 for the provider's default
	ExpiresAt               time.Time
	Keep                    bool // --keep-runner: tagged mc:keep
	// Untrusted: the runner of an untrusted build. The provider must give
	// it an identity that cannot write the trusted tier (on EC2 the
	// untrusted instance profile), or refuse to launch it.
	Untrusted bool
	// Try counts launch attempts of this job after capacity errors: with
	// RunID and JobID it makes an idempotency token.
	Try int
}

// Tags returns the tags of an instance launched for s.
func (s LaunchSpec) Tags() map[string]string {
	t := map[string]string{
		TagWorkspace: s.Workspace, TagRun: s.RunID, TagStage: s.Label, TagJob: s.JobID,
		TagExpiresAt: s.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if s.Keep {
		t[TagKeep] = "true"
	}
	if s.Untrusted {
		t[TagTier] = UntrustedTier
	}
	return t
}

// Instance is one runner as the provider sees it.
type Instance struct {
	ID       string
	State    string
	Tags     map[string]string
	Launched time.Time
}

// Live reports whether the instance still runs (or is about to).
func (i Instance) Live() bool { return i.State == StatePending || i.State == StateRunning }

// ExpiresAt is the instance's mc:expires-at tag; zero when absent or bad.
func (i Instance) ExpiresAt() time.Time {
	t, _ := time.Parse(time.RFC3339, i.Tags[TagExpiresAt])
	return t
}

// Provider starts, lists and terminates runner machines.
type Provider interface {
	// Name is "local" or "ec2".
	Name() string
	// Launch starts a machine running spec.UserData and returns its ID.
	// Errors worth retrying wrap ErrCapacity.
	Launch(ctx context.Context, spec LaunchSpec) (string, error)
	// Terminate ends the machines; unknown or already ended ones are no error.
	Terminate(ctx context.Context, ids []string) error
	// List returns the machines tagged with workspace, ended ones included
	// where the provider still knows them.
	List(ctx context.Context, workspace string) ([]Instance, error)
	// Reach says how a user gets onto a kept machine (--keep-runner).
	Reach(id string) string
}
