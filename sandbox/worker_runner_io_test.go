package sandbox

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pipeWriting returns the read end of a pipe whose write end gets chunks,
// a few milliseconds apart (so that a reader sees them separately), and
// is then closed.
func pipeWriting(t *testing.T, chunks ...string) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	go func() {
		defer w.Close()
		for i, c := range chunks {
			if i > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := w.WriteString(c); err != nil {
				return
			}
		}
	}()
	return int(r.Fd()) // blocking: r is never read through the poller
}

func frameBytes(typ byte, payload string) string {
	b := []byte{typ, 0, 0, 0, byte(len(payload))}
	return string(append(b, payload...))
}

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name    string
		chunks  []string
		want    []string // "T:payload"
		wantErr string   // after the frames; "" is io.EOF
	}{
		{"nothing", nil, nil, ""},
		{"two frames in one write", []string{frameBytes('R', "a") + frameBytes('K', "")}, []string{"R:a", "K:"}, ""},
		{"split everywhere", []string{"R\x00\x00", "\x00\x03a", "b", "c" + frameBytes('K', "")[:2], frameBytes('K', "")[2:]}, []string{"R:abc", "K:"}, ""},
		{"cut in a frame", []string{"R\x00\x00\x00\x05ab"}, nil, io.ErrUnexpectedEOF.Error()},
		{"oversized", []string{"R\x7f\xff\xff\xff"}, nil, "broken stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &frameReader{fd: pipeWriting(t, tc.chunks...)}
			var got []string
			var err error
			for {
				var typ byte
				var p []byte
				typ, p, err = f.next()
				if err != nil {
					break
				}
				got = append(got, string(typ)+":"+string(p))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("frames %q, want %q", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && !errors.Is(err, io.EOF):
				t.Errorf("ended with %v, want EOF", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("ended with %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestFrameReaderFill(t *testing.T) {
	tests := []struct {
		name string
		data string
		kill bool
	}{
		{"a kill", frameBytes('K', ""), true},
		{"other frames are dropped", frameBytes('R', "x") + frameBytes('O', "y"), false},
		{"a kill among others", frameBytes('R', "x") + frameBytes('K', ""), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := w.WriteString(tc.data); err != nil {
				t.Fatal(err)
			}
			f := &frameReader{fd: int(r.Fd())}
			kill, err := f.fill()
			if kill != tc.kill || err != nil {
				t.Errorf("fill = %v, %v; want %v, nil", kill, err, tc.kill)
			}
			// The end of the requests is the host gone.
			w.Close()
			if _, err := f.fill(); err == nil {
				t.Error("fill at the end of the requests: no error")
			}
		})
	}
}

func TestWaitFDs(t *testing.T) {
	tests := []struct {
		name    string
		write   time.Duration // when data arrives; -1: never
		timeout time.Duration
		ready   bool
		atLeast time.Duration
	}{
		{"ready at once", 0, -1, true, 0},
		{"short timeout", -1, 5 * time.Millisecond, false, 5 * time.Millisecond},
		{"timeout past the quiet wait", -1, quietWait + 20*time.Millisecond, false, quietWait + 20*time.Millisecond},
		{"data after the quiet wait", quietWait + 10*time.Millisecond, -1, true, quietWait + 10*time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			if tc.write == 0 {
				w.WriteString("x")
			} else if tc.write > 0 {
				go func() {
					time.Sleep(tc.write)
					w.WriteString("x")
				}()
			}
			fds := []unix.PollFd{{Fd: int32(r.Fd()), Events: unix.POLLIN}}
			start := time.Now()
			for {
				if err := waitFDs(fds, tc.timeout); err != nil {
					t.Fatal(err)
				}
				// A signal may end a wait early, with nothing ready.
				if fds[0].Revents != 0 || tc.timeout >= 0 && time.Since(start) >= tc.timeout {
					break
				}
			}
			took := time.Since(start)
			if ready := fds[0].Revents&unix.POLLIN != 0; ready != tc.ready {
				t.Errorf("ready = %v, want %v", ready, tc.ready)
			}
			if took < tc.atLeast {
				t.Errorf("returned after %v, before %v", took, tc.atLeast)
			}
		})
	}
}
