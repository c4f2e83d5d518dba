package watch

import (
	"reflect"
	"sort"
	"testing"

	"github.com/mc-build/mc/graph"
)

// fixture: packages a (loading tools/defs.star, which loads
// tools/base.star), a/sub and b (loading tools/base.star); stages
// a:x <- a:y <- b:z, and a/sub:w.
type fixture struct {
	pkgs map[string]*graph.Package
	ag   *graph.ActionGraph
	act  map[string]*graph.Action
}

func newFixture() *fixture {
	f := &fixture{pkgs: map[string]*graph.Package{}, ag: &graph.ActionGraph{ByLabel: map[graph.Label]*graph.Action{}},
		act: map[string]*graph.Action{}}
	f.pkgs["a"] = &graph.Package{Name: "a", Loads: []string{"tools/base.star", "tools/defs.star"}}
	f.pkgs["a/sub"] = &graph.Package{Name: "a/sub"}
	f.pkgs["b"] = &graph.Package{Name: "b", Loads: []string{"tools/base.star"}}
	f.add("a", "x", "a/x.txt")
	f.add("a", "y", "a/data/y.txt", "x")
	f.add("b", "z", "b/z.txt", "y")
	f.add("a/sub", "w", "a/sub/w.txt")
	return f
}

func (f *fixture) add(pkg, name, src string, deps ...string) {
	t := &graph.Target{Label: graph.Label{Pkg: pkg, Name: name}, Kind: graph.KindStage}
	f.pkgs[pkg].Targets = append(f.pkgs[pkg].Targets, t)
	a := &graph.Action{Target: t, Sources: []string{src}}
	for _, d := range deps {
		da := f.act[d]
		a.Deps = append(a.Deps, da)
		a.Inputs = append(a.Inputs, graph.DepInput{Action: da})
		da.Rdeps = append(da.Rdeps, a)
	}
	f.ag.Actions = append(f.ag.Actions, a)
	f.ag.ByLabel[t.Label] = a
	f.act[name] = a
}

func names(m map[*graph.Action]bool) []string {
	var out []string
	for a := range m {
		out = append(out, a.Label().Name)
	}
	sort.Strings(out)
	return out
}

func TestPlan(t *testing.T) {
	f := newFixture()
	ix := NewIndex(f.pkgs, f.ag)
	known := func(dir string) bool { return f.pkgs[dir] != nil }
	tests := []struct {
		name    string
		changes []Change
		isPkg   func(string) bool
		want    Plan
	}{
		{"source written", []Change{{"a/x.txt", Written}}, known,
			Plan{Forget: []string{"a/x.txt"}, Sources: []string{"a/x.txt"}}},
		{"source saved atomically (created): its package's globs are checked", []Change{{"a/data/y.txt", Created}}, known,
			Plan{Forget: []string{"a/data/y.txt"}, Sources: []string{"a/data/y.txt"}, Reeval: []string{"a"}}},
		{"file created in a sub-package", []Change{{"a/sub/new.txt", Created}}, known,
			Plan{Forget: []string{"a/sub/new.txt"}, Reeval: []string{"a/sub"}}},
		{"file no stage reads, written", []Change{{"a/notes.md", Written}}, known,
			Plan{Forget: []string{"a/notes.md"}}},
		{"BUILD.mc edited", []Change{{"b/BUILD.mc", Written}}, known,
			Plan{Forget: []string{"b/BUILD.mc"}, Reeval: []string{"b"}}},
		{"BUILD.mc removed", []Change{{"b/BUILD.mc", Removed}}, func(d string) bool { return d != "b" && known(d) },
			Plan{Forget: []string{"b/BUILD.mc"}, Reeval: []string{"b"}, Rescan: true}},
		{"BUILD.mc created", []Change{{"c/BUILD.mc", Created}}, func(d string) bool { return d == "c" || known(d) },
			Plan{Forget: []string{"c/BUILD.mc"}, Rescan: true}},
		{".star loaded directly and transitively", []Change{{"tools/base.star", Written}}, known,
			Plan{Forget: []string{"tools/base.star"}, Reeval: []string{"a", "b"}}},
		{".star loaded by nobody", []Change{{"tools/other.star", Written}}, known,
			Plan{Forget: []string{"tools/other.star"}}},
		{"WORKSPACE.mc", []Change{{"WORKSPACE.mc", Written}}, known,
			Plan{Forget: []string{"WORKSPACE.mc"}, Reload: true}},
		{"directory moved away", []Change{{"a/data", Removed}}, known,
			Plan{Forget: []string{"a/data"}, Reeval: []string{"a"}, Sources: []string{"a/data/y.txt"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ix.Plan(Batch{Changes: tt.changes}, tt.isPkg)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if p := ix.Plan(Batch{Overflow: true}, known); !p.Reload {
		t.Error("lost events do not reload")
	}
	if p := ix.Plan(Batch{Changes: []Change{{"a/notes.md", Written}}}, known); !p.Empty() {
		t.Errorf("a file nothing reads makes %+v", p)
	}
}

func TestAffected(t *testing.T) {
	f := newFixture()
	ix := NewIndex(f.pkgs, f.ag)
	if got := names(ix.Affected([]string{"a/x.txt"})); !reflect.DeepEqual(got, []string{"x", "y", "z"}) {
		t.Errorf("a/x.txt affects %v, want x y z", got)
	}
	if got := names(ix.Affected([]string{"b/z.txt", "a/sub/w.txt"})); !reflect.DeepEqual(got, []string{"w", "z"}) {
		t.Errorf("b/z.txt and a/sub/w.txt affect %v, want w z", got)
	}
	if got := ix.Affected([]string{"nothing.txt"}); len(got) != 0 {
		t.Errorf("an unread file affects %v", names(got))
	}
}

func TestUnaffected(t *testing.T) {
	prev := newFixture()
	// The same graph linked again: every action maps to its predecessor.
	same := newFixture()
	for l, a := range same.ag.ByLabel {
		a.Target = prev.ag.ByLabel[l].Target
	}
	un := Unaffected(prev.ag, same.ag, nil)
	if len(un) != 4 {
		t.Fatalf("unchanged graph: %d of 4 actions unaffected", len(un))
	}
	for n, o := range un {
		if prev.ag.ByLabel[n.Label()] != o {
			t.Errorf("%s maps to the wrong action", n.Label())
		}
	}
	// A changed source affects its readers and their dependents.
	un = Unaffected(prev.ag, same.ag, map[string]bool{"a/data/y.txt": true})
	got := map[*graph.Action]bool{}
	for n := range un {
		got[n] = true
	}
	if g := names(got); !reflect.DeepEqual(g, []string{"w", "x"}) {
		t.Errorf("after editing y's source unaffected %v, want w x", g)
	}
	// Package a evaluated again: its targets are new, so x and y (and z,
	// which depends on y) must be keyed again; a/sub's w keeps its result.
	re := newFixture()
	for l, a := range re.ag.ByLabel {
		if l.Pkg != "a" {
			a.Target = prev.ag.ByLabel[l].Target
		}
	}
	un = Unaffected(prev.ag, re.ag, nil)
	got = map[*graph.Action]bool{}
	for n := range un {
		got[n] = true
	}
	if g := names(got); !reflect.DeepEqual(g, []string{"w"}) {
		t.Errorf("after re-evaluating a: unaffected %v, want w", g)
	}
	// A dependency changed under an unchanged target (a label now names
	// another stage): its inputs differ.
	moved := newFixture()
	for l, a := range moved.ag.ByLabel {
		a.Target = prev.ag.ByLabel[l].Target
	}
	z := moved.act["z"]
	z.Inputs[0].Output = "out/other"
	un = Unaffected(prev.ag, moved.ag, nil)
	if un[z] != nil {
		t.Error("z's input changed, yet it is unaffected")
	}
	if un[moved.act["y"]] == nil {
		t.Error("y is affected by a change to its dependent")
	}
	if len(Unaffected(nil, same.ag, nil)) != 0 {
		t.Error("without a previous graph nothing can be unaffected")
	}
}

func TestSubgraph(t *testing.T) {
	f := newFixture()
	ix := NewIndex(f.pkgs, f.ag)
	sub := Subgraph(f.ag, ix.Affected([]string{"a/data/y.txt"}))
	var got []string
	for _, a := range sub.Actions {
		got = append(got, a.Label().Name)
	}
	// y and z are affected; x is y's dependency (its prior result is read);
	// w is neither.
	if !reflect.DeepEqual(got, []string{"x", "y", "z"}) || len(sub.ByLabel) != 3 || sub.ByLabel[f.act["x"].Label()] != f.act["x"] {
		t.Errorf("subgraph %v, want x y z in order", got)
	}
}
