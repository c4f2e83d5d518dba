package main

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// tracecheck TRACE EVENTS [PHASE...]: TRACE is a valid Chrome trace of the
// build whose --output=json events are in EVENTS: it parses; no two slices
// of one track overlap; every stage that started has exactly one slice on a
// worker track, with its outcome; every cache hit has a slice on the cache
// track; the critical path of build_finished is marked on its stages and
// repeated on the critical path track; the phase track holds the PHASEs,
// in order.
func cmdTracecheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: tracecheck trace.json events.json [phase...]")
	}
	var tr struct {
		TraceEvents []struct {
			Name string         `json:"name"`
			Cat  string         `json:"cat"`
			Ph   string         `json:"ph"`
			Ts   float64        `json:"ts"`
			Dur  *float64       `json:"dur"`
			Tid  int            `json:"tid"`
			Args map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &tr); err != nil {
		ts.Fatalf("%s: not JSON: %v", args[0], err)
	}
	type slice struct {
		name       string
		start, end float64
		args       map[string]any
	}
	tracks := map[string][]slice{} // by thread name
	nested := map[string][]slice{} // stage phases, by thread name
	names := map[int]string{}
	for _, e := range tr.TraceEvents {
		if e.Ph == "M" && e.Name == "thread_name" {
			names[e.Tid], _ = e.Args["name"].(string)
		}
	}
	for _, e := range tr.TraceEvents {
		if e.Ph != "X" {
			continue
		}
		if e.Dur == nil || *e.Dur < 0 || e.Ts < 0 {
			ts.Fatalf("slice %q has ts %v dur %v", e.Name, e.Ts, e.Dur)
		}
		n, ok := names[e.Tid]
		if !ok {
			ts.Fatalf("slice %q is on track %d, which has no name", e.Name, e.Tid)
		}
		if e.Cat == "phase" && strings.HasPrefix(n, "worker ") {
			nested[n] = append(nested[n], slice{e.Name, e.Ts, e.Ts + *e.Dur, e.Args})
			continue
		}
		tracks[n] = append(tracks[n], slice{e.Name, e.Ts, e.Ts + *e.Dur, e.Args})
	}
	// A stage's phases (restoring, running, storing) nest inside one of the
	// stage slices of their track.
	for n, ps := range nested {
		for _, p := range ps {
			inside := false
			for _, s := range tracks[n] {
				inside = inside || (p.start >= s.start && p.end <= s.end)
			}
			if !inside {
				ts.Fatalf("track %q: phase %q [%v, %v] is not inside a stage slice", n, p.name, p.start, p.end)
			}
		}
	}
	workers := map[string][]slice{} // stage label -> its slices on worker tracks
	for n, ss := range tracks {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start < ss[j].start })
		for i := 1; i < len(ss); i++ {
			if ss[i].start < ss[i-1].end {
				ts.Fatalf("track %q: %q overlaps %q", n, ss[i].name, ss[i-1].name)
			}
		}
		if strings.HasPrefix(n, "worker ") {
			for _, s := range ss {
				workers[s.name] = append(workers[s.name], s)
			}
		}
	}
	onTrack := func(track, label string) *slice {
		for _, s := range tracks[track] {
			if s.name == label {
				return &s
			}
		}
		return nil
	}
	var critical []string
	started := 0
	for _, ev := range jsonEvents(ts, args[1]) {
		label, _ := ev["label"].(string)
		switch ev["type"] {
		case "stage_started":
			started++
			ws := workers[label]
			if len(ws) != 1 {
				ts.Fatalf("%s started, but has %d slices on worker tracks", label, len(ws))
			}
			if ws[0].args["status"] == nil || ws[0].args["key"] != ev["key"] {
				ts.Fatalf("%s: slice args %v do not match the event (key %v)", label, ws[0].args, ev["key"])
			}
		case "stage_cached":
			if onTrack("cache", label) == nil {
				ts.Fatalf("%s was a cache hit but is not on the cache track", label)
			}
		case "build_finished":
			sum, _ := ev["summary"].(map[string]any)
			path, _ := sum["critical_path"].([]any) // omitted when nothing ran
			for _, l := range path {
				s, _ := l.(string)
				critical = append(critical, s)
			}
		}
	}
	n := 0
	for _, ws := range workers {
		n += len(ws)
	}
	if n != started {
		ts.Fatalf("%d stage slices on worker tracks, %d stages started", n, started)
	}
	for _, l := range critical {
		if ws := workers[l]; len(ws) == 1 && (ws[0].args["critical_path"] != true || onTrack("critical path", l) == nil) {
			ts.Fatalf("%s is on the critical path but not marked", l)
		}
	}
	var phases []string
	for _, s := range tracks["mc"] {
		phases = append(phases, s.name)
	}
	if want := args[2:]; len(want) > 0 && !slices.Equal(phases, want) {
		ts.Fatalf("phases %q, want %q", phases, want)
	}
	ts.Logf("trace ok: %d tracks, %d stage slices, critical path %v", len(tracks), n, critical)
}
