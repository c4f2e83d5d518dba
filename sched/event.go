package sched

import (
	"bytes"
	"sync"
	"time"

	"github.com/mc-build/mc/event"
)

func eventPhases(ps []Phase) []event.Phase {
	var out []event.Phase
	for _, p := range ps {
		out = append(out, event.Phase{Name: p.Name, Start: p.Start, DurationUS: p.End.Sub(p.Start).Microseconds()})
	}
	return out
}

// lineWriter turns a stage's output stream into one log event per line.
type lineWriter struct {
	mu     sync.Mutex
	sink   event.Sink
	label  string
	buf    []byte
	cached bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(bytes.TrimSuffix(w.buf[:i], []byte("\r"))))
		w.buf = w.buf[i+1:]
	}
	// Keep memory bounded for output that never ends a line.
	if len(w.buf) > 64<<10 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line string) {
	w.sink.Event(event.Event{Type: event.Log, Time: time.Now(), Label: w.label, Line: line, Cached: w.cached})
}

// Close flushes a last unterminated line.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return nil
}
