package watch

import (
	"sort"
	"time"
)

// Op is what happened to a path, as a set.
type Op uint8

const (
	Created Op = 1 << iota // created, or renamed to this name (an editor's atomic save)
	Written
	Removed // removed, or renamed away
)

func (o Op) String() string {
	s := ""
	for _, x := range []struct {
		op   Op
		name string
	}{{Created, "created"}, {Written, "written"}, {Removed, "removed"}} {
		if o&x.op != 0 {
			if s != "" {
				s += "+"
			}
			s += x.name
		}
	}
	return s
}

// Change is one path that changed during a batch, with every Op seen for it.
type Change struct {
	Path string // workspace-relative, slash-separated
	Op   Op
}

// Batch is the changes of one burst of events.
type Batch struct {
	Changes []Change // sorted by path
	// First is when the first event of the batch arrived: the latency mc
	// reports is measured from it.
	First time.Time
	// Overflow says events were lost (the kernel's queue overflowed):
	// anything may have changed.
	Overflow bool
}

// Debouncer groups events into batches: a batch is due once no event came
// for Quiet, or Max after its first event however busy the files are.
// Editors save in bursts (a temporary file written and renamed over the
// original, a backup made and removed) that must make one rebuild. It
// holds no timers: the caller asks Deadline when to come back, which keeps
// it deterministic to test. Not safe for concurrent use.
type Debouncer struct {
	Quiet, Max time.Duration

	pending     map[string]Op
	first, last time.Time
}

// Add records an event on path at time now.
func (d *Debouncer) Add(path string, op Op, now time.Time) {
	if d.pending == nil {
		d.pending = map[string]Op{}
	}
	if len(d.pending) == 0 {
		d.first = now
	}
	d.pending[path] |= op
	d.last = now
}

// Pending reports whether events are waiting.
func (d *Debouncer) Pending() bool { return len(d.pending) > 0 }

// Deadline is when the pending batch becomes due (zero when none).
func (d *Debouncer) Deadline() time.Time {
	if len(d.pending) == 0 {
		return time.Time{}
	}
	t := d.last.Add(d.Quiet)
	if m := d.first.Add(d.Max); m.Before(t) {
		t = m
	}
	return t
}

// Due reports whether the pending batch is due at now.
func (d *Debouncer) Due(now time.Time) bool {
	return len(d.pending) > 0 && !now.Before(d.Deadline())
}

// Take returns the pending batch and starts a new one.
func (d *Debouncer) Take() Batch {
	b := Batch{First: d.first, Changes: make([]Change, 0, len(d.pending))}
	for p, op := range d.pending {
		b.Changes = append(b.Changes, Change{Path: p, Op: op})
	}
	sort.Slice(b.Changes, func(i, j int) bool { return b.Changes[i].Path < b.Changes[j].Path })
	clear(d.pending)
	return b
}
