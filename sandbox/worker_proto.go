package sandbox

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mc-build/mc/internal/wire"
)

// The protocol between the executor and a sandbox worker's runner, over the
// runner's stdin (requests) and stdout (replies): frames of one type byte,
// a 4-byte big-endian payload length and the payload.
const (
	// Host to runner.
	frameRun  = 'R' // a runRequest (see encode): run one stage
	frameKill = 'K' // kill the running stage (and everything else in the sandbox)

	// Runner to host.
	frameHello   = 'H' // the runner is up and waiting for requests
	frameStarted = 'S' // the stage's shell has been started
	frameOutput  = 'O' // a chunk of the stage's combined stdout and stderr
	frameExit    = 'X' // a runExit (see encode): the stage is over and nothing of it runs
)

// maxFrame bounds a frame's payload: anything larger is a broken stream.
const maxFrame = 16 << 20

// runRequest is one stage for the runner: the shell command line of
// shellArgs(cmds), run with exactly env in dir, in a process group of its own.
type runRequest struct {
	Cmds []string
	Env  []string
	Dir  string
}

// runExit is how a stage ended.
type runExit struct {
	Code   int // exit status when not signalled
	Signal int // the signal that killed the shell, 0 if none
	// Err is set when the stage could not be started at all.
	Err string
	// Broken says the runner could not clean the sandbox's processes up:
	// the worker must not be reused.
	Broken bool
}

// The payloads of run and exit frames are a plain binary encoding
// (varints, and strings as a length and their bytes) rather than JSON:
// both ends are this program, and the runner's CPU time is the stages'.

// encode appends the request's encoding to b.
func (r *runRequest) encode(b []byte) []byte {
	b = appendStrings(b, r.Cmds)
	b = appendStrings(b, r.Env)
	return wire.AppendString(b, r.Dir)
}

// decode sets r from p, as encode wrote it.
func (r *runRequest) decode(p []byte) error {
	d := decoder{wire.NewReader(p)}
	r.Cmds = d.strings()
	r.Env = d.strings()
	r.Dir = d.Str()
	return d.end("run request")
}

// encode appends the exit's encoding to b.
func (e *runExit) encode(b []byte) []byte {
	b = binary.AppendVarint(b, int64(e.Code))
	b = binary.AppendVarint(b, int64(e.Signal))
	b = wire.AppendString(b, e.Err)
	broken := byte(0)
	if e.Broken {
		broken = 1
	}
	return append(b, broken)
}

// decode sets e from p, as encode wrote it.
func (e *runExit) decode(p []byte) error {
	d := decoder{wire.NewReader(p)}
	e.Code = int(d.Varint())
	e.Signal = int(d.Varint())
	e.Err = d.Str()
	e.Broken = d.Byte() == 1
	return d.end("exit")
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = wire.AppendString(b, s)
	}
	return b
}

// decoder reads the protocol's encodings.
type decoder struct{ *wire.Reader }

func (d decoder) strings() []string {
	n := d.Uvarint()
	if n > uint64(d.Len()) { // each string takes a byte at least
		d.Bytes(n) // fails
		return nil
	}
	var ss []string
	if n > 0 {
		ss = make([]string, n)
	}
	for i := range ss {
		ss[i] = d.Str()
	}
	return ss
}

// end reports an error for a truncated or overlong encoding of what.
func (d decoder) end(what string) error {
	switch {
	case d.Bad():
		return fmt.Errorf("bad %s: truncated", what)
	case d.Len() != 0:
		return fmt.Errorf("bad %s: trailing bytes", what)
	}
	return nil
}

// writeFrame writes one frame in one write call, so that frames written by
// different goroutines under a lock never interleave.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame. buf is reused for the payload when it is
// large enough; the payload is valid until the next call with that buf.
func readFrame(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes: broken stream", n)
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
