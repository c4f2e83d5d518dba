package cas

import (
	"encoding/json"
	"fmt"
	"time"
)

// Output is one declared output of a stage as stored in the action cache.
type Output struct {
	// Path is workspace-relative and slash-separated; for a directory it has
	// no trailing slash.
	Path string `json:"path"`
	// Digest is the file's content, or for IsDir the tree blob.
	Digest Digest `json:"digest"`
	Size   int64  `json:"size"`
	Exec   bool   `json:"exec,omitzero"`
	IsDir  bool   `json:"is_dir,omitzero"`
}

// ActionResult is what the action cache records for one action digest: the
// outputs and the log of a successful run.
type ActionResult struct {
	Label    string        `json:"label"`
	Outputs  []Output      `json:"outputs"`
	Log      Digest        `json:"log,omitzero"`
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration_ns"`
	Created  time.Time     `json:"created"`
}

// encodeResult is the stored form of r.
func encodeResult(r *ActionResult) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// decodeResult parses and validates a stored ActionResult.
func decodeResult(b []byte) (*ActionResult, error) {
	var r ActionResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// validate rejects output paths that would let a restored result write
// outside the workspace's output directory.
func (r *ActionResult) validate() error {
	for _, o := range r.Outputs {
		if err := validPath(o.Path); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		if o.Digest.IsZero() {
			return fmt.Errorf("output %q: no digest", o.Path)
		}
	}
	return nil
}
