package runner

import (
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// Object names of the protocol (see the package documentation).
const (
	objJob         = "job"
	objSecrets     = "secrets"
	objHeartbeat   = "heartbeat"
	objResult      = "result"
	objLogDir      = "log/"
	objCoordinator = "coordinator"
	objDone        = "done"
)

// RunDir is the prefix of a run's objects.
func RunDir(run string) string { return "runs/" + run + "/" }

// JobDir is the prefix of one job's objects (one attempt of one stage).
func JobDir(run, job string) string { return RunDir(run) + job + "/" }

// logKey is the object of log chunk seq; zero-padded so that listing order
// is chunk order.
func logKey(run, job string, seq int) string {
	return JobDir(run, job) + objLogDir + fmt.Sprintf("%08d", seq)
}

// BlobKey is the object of a CAS blob, as cas/s3 lays them out.
func BlobKey(d cas.Digest) string { return "cas/" + d.Hex() }

// InputSpec is sched.Input without the host path.
type InputSpec struct {
	Path   string     `json:"path"`
	Digest cas.Digest `json:"digest"`
	Size   int64      `json:"size"`
	Exec   bool       `json:"exec,omitempty"`
	IsTree bool       `json:"is_tree,omitempty"`
}

// JobSpec is what the agent runs: a sched.Job minus its Log writer and
// secret values (those travel in the one-time secrets object, sealed to the
// agent's key).
type JobSpec struct {
	Label       string            `json:"label"`
	Key         cas.Digest        `json:"key"`
	Pkg         string            `json:"pkg"`
	Cmds        []string          `json:"cmds"`
	Env         map[string]string `json:"env,omitempty"`
	SecretNames []string          `json:"secret_names,omitempty"`
	Inputs      []InputSpec       `json:"inputs"`
	Outs        []string          `json:"outs"`
	TimeoutMS   int64             `json:"timeout_ms,omitempty"`
	Network     bool              `json:"network,omitempty"`
	CacheMounts map[string]string `json:"cache_mounts,omitempty"`
	Image       string            `json:"image,omitempty"`
	ImageLayout string            `json:"image_layout,omitempty"`
	// HeartbeatMS is how often the agent rewrites its heartbeat.
	HeartbeatMS int64 `json:"heartbeat_ms"`
	// Keep leaves the sandbox on disk (--keep-runner): the log says where.
	Keep bool `json:"keep,omitempty"`
}

// specOf turns job into its spec.
func specOf(job *sched.Job, heartbeat time.Duration, keep bool) *JobSpec {
	s := &JobSpec{
		Label: job.Label.String(), Key: job.Key, Pkg: job.Pkg, Cmds: job.Cmds, Env: job.Env,
		Outs: job.Outs, TimeoutMS: job.Timeout.Milliseconds(), Network: job.Network,
		CacheMounts: job.CacheMounts, Image: job.Image, ImageLayout: job.ImageLayout,
		HeartbeatMS: heartbeat.Milliseconds(), Keep: keep,
	}
	for name := range job.Secrets {
		s.SecretNames = append(s.SecretNames, name)
	}
	for _, in := range job.Inputs {
		s.Inputs = append(s.Inputs, InputSpec{Path: in.Path, Digest: in.Digest, Size: in.Size, Exec: in.Exec, IsTree: in.IsTree})
	}
	return s
}

// job turns the spec back into a sched.Job (without Log).
func (s *JobSpec) job(secrets map[string]string) (*sched.Job, error) {
	l, err := graph.ParseLabel(s.Label, "")
	if err != nil {
		return nil, fmt.Errorf("job label %q: %w", s.Label, err)
	}
	j := &sched.Job{
		Label: l, Key: s.Key, Pkg: s.Pkg, Cmds: s.Cmds, Env: s.Env, Secrets: secrets,
		Outs: s.Outs, Timeout: time.Duration(s.TimeoutMS) * time.Millisecond, Network: s.Network,
		CacheMounts: s.CacheMounts, Image: s.Image, ImageLayout: s.ImageLayout,
	}
	for _, in := range s.Inputs {
		if !path.IsAbs(in.Path) && in.Path != "" {
			j.Inputs = append(j.Inputs, sched.Input{Path: in.Path, Digest: in.Digest, Size: in.Size, Exec: in.Exec, IsTree: in.IsTree})
			continue
		}
		return nil, fmt.Errorf("job input %q: not a workspace-relative path", in.Path)
	}
	return j, nil
}

// ResultSpec is what the agent reports: sched.Result minus the log writer.
type ResultSpec struct {
	ExitCode int          `json:"exit_code"`
	Error    string       `json:"error,omitempty"` // the stage failed: why
	Outputs  []cas.Output `json:"outputs,omitempty"`
	Log      cas.Digest   `json:"log,omitzero"`
	// DurationMS is the stage's own run time on the runner.
	DurationMS int64 `json:"duration_ms"`
	// Infra is set when the agent could not run the job at all (inputs not
	// fetched, outputs not uploaded): the attempt is retried elsewhere.
	Infra string `json:"infra,omitempty"`
	// Phases are where the runner's time went (fetching, restoring,
	// running, storing, uploading), as offsets from when it found its job;
	// TotalUS is from then until the result was written. Offsets, not
	// times: the runner's clock is not the coordinator's.
	Phases  []PhaseSpec `json:"phases,omitempty"`
	TotalUS int64       `json:"total_us,omitempty"`

	// Not sent: when the coordinator had the inputs in the shared cache,
	// wrote the job, and found the result.
	prepared, written, seen time.Time
}

// PhaseSpec is one timed part of a job on the runner.
type PhaseSpec struct {
	Name       string `json:"name"`
	StartUS    int64  `json:"start_us"`
	DurationUS int64  `json:"duration_us"`
}

// Heartbeat is the agent's proof of life. Every heartbeat, the first one
// included, carries the agent's public key: the coordinator seals the job's
// secrets to it (sealed.go).
type Heartbeat struct {
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Phase string    `json:"phase"` // fetching, running, uploading
	// Key is the agent's NaCl box public key (Curve25519, 32 bytes), made
	// at boot; its private half never leaves the agent's memory.
	Key []byte `json:"key,omitempty"`
}

// CoordinatorBeat is the coordinator's proof of life, for the reaper: on the
// same host a dead PID ends the run at once; elsewhere a stale Time does.
type CoordinatorBeat struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Start uint64    `json:"start,omitempty"` // the process's start time (clock ticks), against PID reuse
	Time  time.Time `json:"time"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain data is encoded here.
		return []byte("{}")
	}
	return b
}
