package sandbox

import (
	"fmt"
	"os"

	"github.com/mc-build/mc/cas"
)

// logSpill is how much of a stage's log is kept in memory before it goes
// to a file: most logs are short, and a file costs two metadata updates
// (create, unlink) per stage on a disk filesystem.
const logSpill = 1 << 20

// stageLog holds a stage's log until it is stored: in memory, then in the
// sandbox's log file once it grows past limit.
type stageLog struct {
	path  string
	limit int
	buf   []byte
	f     *os.File
}

func (l *stageLog) Write(p []byte) (int, error) {
	if l.f == nil && len(l.buf)+len(p) <= l.limit {
		l.buf = append(l.buf, p...)
		return len(p), nil
	}
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return 0, err
		}
		l.f = f
		if _, err := f.Write(l.buf); err != nil {
			return 0, err
		}
		l.buf = nil
	}
	return l.f.Write(p)
}

// Close closes the log file, if there is one.
func (l *stageLog) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// store puts the log into st. adopt moves a log file into the store
// rather than copying it.
func (l *stageLog) store(st *cas.Store, adopt bool) (cas.Digest, error) {
	if l.f == nil {
		d, err := st.PutBytes(l.buf)
		if err != nil {
			return cas.Zero, fmt.Errorf("storing the log: %w", err)
		}
		return d, nil
	}
	put := st.PutFile
	if adopt {
		put = st.AdoptFile
	}
	d, _, err := put(l.path)
	if err != nil {
		return cas.Zero, fmt.Errorf("storing the log: %w", err)
	}
	return d, nil
}
