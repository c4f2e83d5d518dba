package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/event"
)

// parsed is a trace read back from JSON, the way a viewer reads it.
type parsed struct {
	slices  map[int][]traceEvent // "X" events by track
	threads map[int]string       // thread_name metadata
	other   map[string]any
}

func parse(t *testing.T, b []byte) *parsed {
	t.Helper()
	var tr struct {
		TraceEvents []traceEvent   `json:"traceEvents"`
		OtherData   map[string]any `json:"otherData"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	p := &parsed{slices: map[int][]traceEvent{}, threads: map[int]string{}, other: tr.OtherData}
	for _, e := range tr.TraceEvents {
		switch e.Ph {
		case "X":
			if e.Dur == nil || *e.Dur < 0 || e.Ts < 0 {
				t.Errorf("slice %q: ts %v dur %v", e.Name, e.Ts, e.Dur)
			}
			p.slices[e.Tid] = append(p.slices[e.Tid], e)
		case "M":
			if e.Name == "thread_name" {
				p.threads[e.Tid] = e.Args["name"].(string)
			}
		default:
			t.Errorf("unexpected event phase %q", e.Ph)
		}
	}
	for tid, ss := range p.slices {
		if _, ok := p.threads[tid]; !ok {
			t.Errorf("track %d has slices but no name", tid)
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].Ts < ss[j].Ts })
		for i := 1; i < len(ss); i++ {
			if prevEnd := ss[i-1].Ts + *ss[i-1].Dur; ss[i].Ts < prevEnd {
				t.Errorf("track %s: %q (at %.1fµs) overlaps %q (ends %.1fµs)", p.threads[tid], ss[i].Name, ss[i].Ts, ss[i-1].Name, prevEnd)
			}
		}
	}
	return p
}

func (p *parsed) track(name string) []traceEvent {
	for tid, n := range p.threads {
		if n == name {
			return p.slices[tid]
		}
	}
	return nil
}

func (p *parsed) names(name string) []string {
	var r []string
	for _, s := range p.track(name) {
		r = append(r, s.Name)
	}
	return r
}

func TestTraceOfABuild(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var passed []string
	r := New(event.SinkFunc(func(e event.Event) { passed = append(passed, e.Type) }))
	r.Phase("evaluate", at(0), at(10))
	evs := []event.Event{
		{Type: event.BuildStarted, Time: at(10), Total: 5},
		{Type: event.StageCached, Time: at(11), Label: "//p:c1", Key: "k1", DurationMS: 7},
		{Type: event.StageCached, Time: at(11), Label: "//p:c2", Key: "k2"},
		{Type: event.StageStarted, Time: at(12), Label: "//p:a", Key: "ka"},
		{Type: event.StageStarted, Time: at(13), Label: "//p:b", Key: "kb"},
		{Type: event.StageFinished, Time: at(20), Label: "//p:a"},
		{Type: event.StageStarted, Time: at(21), Label: "//p:d", Key: "kd"},
		{Type: event.StageFailed, Time: at(25), Label: "//p:b", Error: "exit status 1"},
		{Type: event.StageFailed, Time: at(25), Label: "//p:never", Error: "secret X is not set"},
		{Type: event.StageFinished, Time: at(40), Label: "//p:d"},
		{Type: event.BuildFinished, Time: at(41), Summary: &event.Summary{
			CriticalPath: []string{"//p:a", "//p:d"}, CriticalPathMS: 27}},
	}
	for _, e := range evs {
		r.Event(e)
	}
	r.Phase("execute", at(10), at(41))
	if len(passed) != len(evs) {
		t.Errorf("passed on %d events, want %d", len(passed), len(evs))
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	p := parse(t, buf.Bytes())

	t.Run("one worker track per concurrent slot", func(t *testing.T) {
		w1, w2 := p.names("worker 1"), p.names("worker 2")
		if fmt.Sprint(w1) != "[//p:a //p:d]" || fmt.Sprint(w2) != "[//p:b]" {
			t.Errorf("worker 1 %v, worker 2 %v; want d to reuse a's slot", w1, w2)
		}
		if len(p.track("worker 3")) != 0 {
			t.Error("a third worker track for two concurrent stages")
		}
	})
	t.Run("slices carry times and outcomes", func(t *testing.T) {
		b := p.track("worker 2")[0]
		if b.Ts != 13000 || *b.Dur != 12000 || b.Args["status"] != "failed" || b.Args["error"] != "exit status 1" {
			t.Errorf("//p:b slice = %+v (dur %v)", b, *b.Dur)
		}
	})
	t.Run("cache hits on the cache track, apart", func(t *testing.T) {
		if got := p.names("cache"); fmt.Sprint(got) != "[//p:c1 //p:c2]" {
			t.Errorf("cache track = %v", got)
		}
	})
	t.Run("critical path marked and on its own track", func(t *testing.T) {
		if got := p.names("critical path"); fmt.Sprint(got) != "[//p:a //p:d]" {
			t.Errorf("critical path track = %v", got)
		}
		for _, s := range append(p.track("worker 1"), p.track("worker 2")...) {
			if want := s.Name != "//p:b"; s.Args["critical_path"] != want {
				t.Errorf("%s critical_path = %v, want %v", s.Name, s.Args["critical_path"], want)
			}
		}
		if p.other["critical_path_ms"] != float64(27) {
			t.Errorf("otherData = %v", p.other)
		}
	})
	t.Run("phases", func(t *testing.T) {
		if got := p.names("mc"); fmt.Sprint(got) != "[evaluate execute]" {
			t.Errorf("phase track = %v", got)
		}
	})
}

// Stages started by many goroutines under a limit of j at a time, as the
// scheduler does: at most j worker tracks, no overlap, every stage once.
func TestTraceConcurrentStages(t *testing.T) {
	for _, j := range []int{1, 3, 8} {
		t.Run(fmt.Sprint("j=", j), func(t *testing.T) {
			r := New(nil)
			sem := make(chan struct{}, j)
			var wg sync.WaitGroup
			const n = 200
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					label := fmt.Sprintf("//p:s%03d", i)
					r.Event(event.Event{Type: event.StageStarted, Time: time.Now(), Label: label})
					time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
					r.Event(event.Event{Type: event.StageFinished, Time: time.Now(), Label: label})
					<-sem
				}()
			}
			wg.Wait()
			var buf bytes.Buffer
			if err := r.Write(&buf); err != nil {
				t.Fatal(err)
			}
			p := parse(t, buf.Bytes())
			seen := map[string]int{}
			workers := 0
			for tid, ss := range p.slices {
				if tid >= workerTid0 {
					workers++
					for _, s := range ss {
						seen[s.Name]++
					}
				}
			}
			if workers > j || workers == 0 {
				t.Errorf("%d worker tracks for -j %d", workers, j)
			}
			if len(seen) != n {
				t.Errorf("%d stages have slices, want %d", len(seen), n)
			}
			for l, c := range seen {
				if c != 1 {
					t.Errorf("%s has %d slices", l, c)
				}
			}
		})
	}
}

func TestTraceUnfinishedAndWriteFile(t *testing.T) {
	r := New(nil)
	t0 := time.Unix(5, 0)
	r.Event(event.Event{Type: event.StageStarted, Time: t0, Label: "//p:slow"})
	r.Event(event.Event{Type: event.Log, Time: t0.Add(time.Second), Label: "//p:slow", Line: "still going"})
	path := filepath.Join(t.TempDir(), "trace.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, b)
	w := p.track("worker 1")
	if len(w) != 1 || w[0].Args["status"] != "unfinished" || *w[0].Dur != 1e6 {
		t.Errorf("unfinished stage = %+v", w)
	}
	if err := r.WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir.json")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// A stage's phases are drawn nested in its slice, and its wait for a slot
// as an async "queued" slice.
func TestTracePhasesAndQueue(t *testing.T) {
	r := New(nil)
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r.Event(event.Event{Type: event.StageStarted, Time: at(10), Label: "//p:a", QueuedMS: 10})
	r.Event(event.Event{Type: event.StageFinished, Time: at(100), Label: "//p:a", Phases: []event.Phase{
		{Name: "restoring", Start: at(11), DurationUS: 4000},
		{Name: "running", Start: at(15), DurationUS: 80000},
		{Name: "storing", Start: at(95), DurationUS: 4000},
	}})
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	var tr Trace
	if err := json.Unmarshal(buf.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	var stage *traceEvent
	phases := map[string]traceEvent{}
	var b, e int
	for i, ev := range tr.TraceEvents {
		switch {
		case ev.Ph == "X" && ev.Name == "//p:a" && ev.Tid >= workerTid0:
			stage = &tr.TraceEvents[i]
		case ev.Ph == "X" && ev.Cat == "phase" && ev.Tid >= workerTid0:
			phases[ev.Name] = ev
		case ev.Ph == "b" && ev.Cat == "queued":
			b++
		case ev.Ph == "e" && ev.Cat == "queued":
			e++
		}
	}
	if stage == nil {
		t.Fatal("no slice for the stage")
	}
	for _, name := range []string{"restoring", "running", "storing"} {
		p, ok := phases[name]
		if !ok {
			t.Fatalf("no %s slice", name)
		}
		if p.Tid != stage.Tid || p.Ts < stage.Ts || p.Ts+*p.Dur > stage.Ts+*stage.Dur {
			t.Errorf("%s slice %+v is not nested in the stage %+v", name, p, *stage)
		}
	}
	if b != 1 || e != 1 {
		t.Errorf("queued async events: %d begin, %d end; want 1 and 1", b, e)
	}
}
