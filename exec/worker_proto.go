package exec

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// The protocol between the executor and a sandbox worker's runner, over the
// runner's stdin (requests) and stdout (replies): frames of one type byte,
// a 4-byte big-endian payload length and the payload.
const (
	// Host to runner.
	frameRun  = 'R' // a runRequest (JSON): run one stage
	frameKill = 'K' // kill the running stage (and everything else in the sandbox)

	// Runner to host.
	frameHello   = 'H' // the runner is up and waiting for requests
	frameStarted = 'S' // the stage's shell has been started
	frameOutput  = 'O' // a chunk of the stage's combined stdout and stderr
	frameExit    = 'X' // a runExit (JSON): the stage is over and nothing of it runs
)

// maxFrame bounds a frame's payload: anything larger is a broken stream.
const maxFrame = 16 << 20

// runRequest is one stage for the runner: the shell command line of
// shellArgs(cmds), run with exactly env in dir, in a process group of its own.
type runRequest struct {
	Cmds []string `json:"cmds"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

// runExit is how a stage ended.
type runExit struct {
	Code   int `json:"code"`   // exit status when not signalled
	Signal int `json:"signal"` // the signal that killed the shell, 0 if none
	// Err is set when the stage could not be started at all.
	Err string `json:"err,omitempty"`
	// Broken says the runner could not clean the sandbox's processes up:
	// the worker must not be reused.
	Broken bool `json:"broken,omitempty"`
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

func writeJSONFrame(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
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
