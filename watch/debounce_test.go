package watch

import (
	"reflect"
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	d := Debouncer{Quiet: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	if d.Pending() || d.Due(t0) || !d.Deadline().IsZero() {
		t.Fatal("an empty debouncer has something pending")
	}
	// An editor's atomic save: a temporary file written and renamed over
	// the original, within a few milliseconds.
	d.Add("app/.main.go.tmp", Created, ms(0))
	d.Add("app/.main.go.tmp", Written, ms(1))
	d.Add("app/.main.go.tmp", Removed, ms(2))
	d.Add("app/main.go", Created, ms(2))
	if d.Due(ms(11)) {
		t.Error("due 9 ms after the last event, want quiet for 10 ms first")
	}
	if !d.Due(ms(12)) || d.Deadline() != ms(12) {
		t.Errorf("not due 10 ms after the last event (deadline %v)", d.Deadline().Sub(t0))
	}
	b := d.Take()
	want := []Change{{"app/.main.go.tmp", Created | Written | Removed}, {"app/main.go", Created}}
	if !reflect.DeepEqual(b.Changes, want) || b.First != ms(0) {
		t.Errorf("batch %+v first %v, want %+v first 0", b.Changes, b.First.Sub(t0), want)
	}
	if d.Pending() {
		t.Error("pending after Take")
	}

	// A file written every 5 ms never goes quiet: Max sends it anyway.
	for i := 200; i <= 400; i += 5 {
		d.Add("log.txt", Written, ms(i))
		if d.Due(ms(i)) {
			if i < 300 {
				t.Fatalf("due at %d ms, before Max", i-200)
			}
			if got := d.Take(); got.First != ms(200) || len(got.Changes) != 1 {
				t.Fatalf("busy batch %+v", got)
			}
			if i != 300 {
				t.Errorf("due %d ms after the first event, want 100 (Max)", i-200)
			}
			break
		}
	}
	if got := (Created | Removed).String(); got != "created+removed" {
		t.Errorf("Op string %q", got)
	}
}
