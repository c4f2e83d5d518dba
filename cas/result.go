package cas

import (
	"encoding/binary"
	"errors"
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

// resultFormat is the first byte of a stored ActionResult. The binary form
// decodes ten times faster than JSON, which matters when a null build reads
// ten thousand results.
const resultFormat = 1

// encodeResult is the stored form of r: a format byte, then uvarint-length-
// prefixed fields (see decodeResult for the order).
func encodeResult(r *ActionResult) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(r.Label)+len(r.Outputs)*(48+len(r.Label)))
	b = append(b, resultFormat)
	b = appendString(b, r.Label)
	b = binary.AppendVarint(b, r.Created.UnixNano())
	b = binary.AppendVarint(b, int64(r.Duration))
	b = binary.AppendVarint(b, int64(r.ExitCode))
	b = append(b, r.Log[:]...)
	b = binary.AppendUvarint(b, uint64(len(r.Outputs)))
	for _, o := range r.Outputs {
		b = appendString(b, o.Path)
		b = append(b, o.Digest[:]...)
		b = binary.AppendVarint(b, o.Size)
		var flags byte
		if o.Exec {
			flags |= 1
		}
		if o.IsDir {
			flags |= 2
		}
		b = append(b, flags)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errBadResult is a stored result that cannot be decoded.
var errBadResult = errors.New("malformed stored action result")

// resultReader consumes the fields written by encodeResult.
type resultReader struct {
	b   []byte
	bad bool
}

func (r *resultReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *resultReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *resultReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.bad, r.b = true, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *resultReader) digest() (d Digest) {
	copy(d[:], r.bytes(uint64(len(d))))
	return d
}

// decodeResult parses and validates a stored ActionResult.
func decodeResult(b []byte) (*ActionResult, error) {
	if len(b) == 0 || b[0] != resultFormat {
		return nil, errBadResult
	}
	rd := &resultReader{b: b[1:]}
	res := &ActionResult{}
	res.Label = string(rd.bytes(rd.uvarint()))
	res.Created = time.Unix(0, rd.varint())
	res.Duration = time.Duration(rd.varint())
	res.ExitCode = int(rd.varint())
	res.Log = rd.digest()
	n := rd.uvarint()
	if n > uint64(len(rd.b)) { // each output takes at least one byte
		return nil, errBadResult
	}
	res.Outputs = make([]Output, n)
	for i := range res.Outputs {
		o := &res.Outputs[i]
		o.Path = string(rd.bytes(rd.uvarint()))
		o.Digest = rd.digest()
		o.Size = rd.varint()
		flags := rd.bytes(1)
		if len(flags) == 1 {
			o.Exec, o.IsDir = flags[0]&1 != 0, flags[0]&2 != 0
		}
	}
	if rd.bad || len(rd.b) != 0 {
		return nil, errBadResult
	}
	if err := res.validate(); err != nil {
		return nil, err
	}
	return res, nil
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
