package graph

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fakeSource is an in-memory PackageSource: the packages, and the source files.
type fakeSource struct {
	pkgs  map[string]*Package
	files map[string]bool // "pkg/name"
}

func (f *fakeSource) Packages(ctx context.Context, names []string) ([]*Package, error) {
	var out []*Package
	for _, n := range names {
		out = append(out, f.pkgs[n])
	}
	return out, nil
}
func (f *fakeSource) IsPackage(p string) bool { _, ok := f.pkgs[p]; return ok }
func (f *fakeSource) FindPackages(ctx context.Context, under string) ([]string, error) {
	var out []string
	for n := range f.pkgs {
		out = append(out, n)
	}
	return out, nil
}
func (f *fakeSource) IsSourceFile(pkg, name string) bool { return f.files[joinPkg(pkg, name)] }

func stageT(pkg, name string, line int, mut func(t *Target)) *Target {
	t := &Target{Label: Label{pkg, name}, Kind: KindStage, Pos: Pos{File: joinPkg(pkg, "BUILD.mc"), Line: line, Col: 1},
		Cmds: []string{"true"}, Cache: true, Network: true}
	if mut != nil {
		mut(t)
	}
	return t
}

func mustLabels(t *testing.T, pkg string, ss ...string) []Label {
	t.Helper()
	var out []Label
	for _, s := range ss {
		l, err := ParseLabel(s, pkg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func newSource(targets ...*Target) *fakeSource {
	f := &fakeSource{pkgs: map[string]*Package{}, files: map[string]bool{}}
	for _, t := range targets {
		p := f.pkgs[t.Label.Pkg]
		if p == nil {
			p = &Package{Name: t.Label.Pkg, File: joinPkg(t.Label.Pkg, "BUILD.mc")}
			f.pkgs[t.Label.Pkg] = p
		}
		p.Targets = append(p.Targets, t)
	}
	return f
}

func link(t *testing.T, src *fakeSource, roots ...string) (*Graph, error) {
	t.Helper()
	var names []string
	for _, r := range roots {
		names = append(names, strings.SplitN(strings.TrimPrefix(r, "//"), ":", 2)[0])
	}
	pkgs, err := Load(context.Background(), src, names)
	if err != nil {
		return nil, err
	}
	return Link(context.Background(), src, pkgs)
}

func TestLinkErrors(t *testing.T) {
	cases := []struct {
		name    string
		targets []*Target
		files   []string
		want    string
	}{
		{
			name: "unknown target suggests closest",
			targets: []*Target{
				stageT("lib", "gen_proto", 1, nil),
				stageT("app", "bin", 3, func(x *Target) { x.Deps = mustLabels(t, "app", "//lib:gen_prot") }),
			},
			want: `app/BUILD.mc:3:1: //app:bin: deps: //lib:gen_prot names nothing: no target or output "gen_prot" in lib/BUILD.mc (did you mean :gen_proto?)`,
		},
		{
			name: "unknown package suggests closest",
			targets: []*Target{
				stageT("lib/core", "x", 1, nil),
				stageT("app", "bin", 2, func(x *Target) { x.Srcs = mustLabels(t, "app", "//lib/cor:x") }),
			},
			want: `app/BUILD.mc:2:1: //app:bin: srcs: //lib/cor:x names nothing: there is no package "lib/cor" (no lib/cor/BUILD.mc) (did you mean //lib/core?)`,
		},
		{
			name: "missing source file",
			targets: []*Target{
				stageT("app", "bin", 4, func(x *Target) { x.Srcs = mustLabels(t, "app", "mian.go") }),
			},
			files: []string{"app/main.go"},
			want:  `app/BUILD.mc:4:1: //app:bin: srcs: //app:mian.go names nothing: no target, output or source file "mian.go" in app/BUILD.mc`,
		},
		{
			name: "cycle",
			targets: []*Target{
				stageT("a", "x", 1, func(x *Target) { x.Deps = mustLabels(t, "a", "//b:y") }),
				stageT("b", "y", 2, func(x *Target) { x.Deps = mustLabels(t, "b", "//a:x") }),
			},
			want: `a/BUILD.mc:1:1: dependency cycle: //a:x -> //b:y -> //a:x`,
		},
		{
			name: "self dependency",
			targets: []*Target{
				stageT("a", "x", 7, func(x *Target) { x.Deps = mustLabels(t, "a", ":x") }),
			},
			want: `a/BUILD.mc:7:1: //a:x: deps: a target cannot depend on itself`,
		},
		{
			name: "file inside a sub-package",
			targets: []*Target{
				stageT("a", "x", 1, func(x *Target) { x.Srcs = mustLabels(t, "a", "b/f.txt") }),
				stageT("a/b", "y", 1, nil),
			},
			files: []string{"a/b/f.txt"},
			want:  `a/BUILD.mc:1:1: //a:x: srcs: //a:b/f.txt crosses into package //a/b; use //a/b:f.txt`,
		},
		{
			name: "two stages declare one output",
			targets: []*Target{
				stageT("a", "x", 1, func(x *Target) { x.Outs = []string{"out/f"} }),
				stageT("a", "y", 5, func(x *Target) { x.Outs = []string{"out/f"} }),
			},
			want: `a/BUILD.mc:5:1: //a:y: output out/f is also declared by //a:x (a/BUILD.mc:1:1)`,
		},
		{
			name: "build stage depends on a test stage",
			targets: []*Target{
				stageT("a", "t", 1, func(x *Target) { x.Test = true }),
				stageT("a", "x", 2, func(x *Target) { x.Deps = mustLabels(t, "a", ":t") }),
			},
			want: `a/BUILD.mc:2:1: //a:x: deps: //a:t is a test stage; only test stages may depend on it`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := newSource(c.targets...)
			for _, f := range c.files {
				src.files[f] = true
			}
			var roots []string
			for _, x := range c.targets {
				roots = append(roots, x.Label.String())
			}
			_, err := link(t, src, roots...)
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("got %v, want a *graph.Error", err)
			}
			if err.Error() != c.want {
				t.Errorf("got  %s\nwant %s", err, c.want)
			}
		})
	}
}

func TestActionsResolveOutputsAndFilegroups(t *testing.T) {
	gen := stageT("lib/gen", "version", 1, func(x *Target) { x.Outs = []string{"version.go", "doc/"} })
	fg := &Target{Label: Label{"lib/greet", "srcs"}, Kind: KindFilegroup, Srcs: mustLabels(t, "lib/greet", "greet.go", "//lib/gen:version.go")}
	api := stageT("service/api", "api", 1, func(x *Target) {
		x.Srcs = mustLabels(t, "service/api", "main.go", "//lib/greet:srcs")
		x.Deps = mustLabels(t, "service/api", "//lib/gen:version")
		x.Outs = []string{"out/api"}
	})
	src := newSource(gen, fg, api)
	for _, f := range []string{"lib/greet/greet.go", "service/api/main.go"} {
		src.files[f] = true
	}
	g, err := link(t, src, "//service/api:api")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := g.Actions([]Label{{"service/api", "api"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ag.Actions) != 2 || ag.Actions[1].Label() != api.Label {
		t.Fatalf("want [gen api] in topological order, got %v", ag.Actions)
	}
	a := ag.ByLabel[api.Label]
	if want := []string{"lib/greet/greet.go", "service/api/main.go"}; !reflect.DeepEqual(a.Sources, want) {
		t.Errorf("sources = %v, want %v", a.Sources, want)
	}
	ga := ag.ByLabel[gen.Label]
	wantIn := []DepInput{{Action: ga, Output: "version.go"}, {Action: ga}}
	if !reflect.DeepEqual(a.Inputs, wantIn) {
		t.Errorf("inputs = %+v, want the one output through the filegroup, then all outputs", a.Inputs)
	}
	if len(ga.Rdeps) != 1 || ga.Rdeps[0] != a {
		t.Errorf("rdeps of gen = %v", ga.Rdeps)
	}
}

func TestClosest(t *testing.T) {
	got := Closest("biuld", []string{"build", "test", "bulid", "zzzzzz"})
	if want := []string{"build", "bulid"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Closest = %v, want %v", got, want)
	}
	if got := Closest("x", []string{"completely-different"}); len(got) != 0 {
		t.Errorf("unrelated names suggested: %v", got)
	}
}

// TestLinkManyTargets links enough targets for resolution to run on
// several goroutines: the references, the reverse dependencies (in
// package, then target order) and the error reported (the first in that
// order) are those of resolving one target at a time.
func TestLinkManyTargets(t *testing.T) {
	build := func(bad ...string) *fakeSource {
		var targets []*Target
		for p := range 40 {
			pkg := fmt.Sprintf("p%02d", p)
			for i := range 10 {
				name := fmt.Sprintf("t%d", i)
				targets = append(targets, stageT(pkg, name, i+1, func(t *Target) {
					t.Srcs = mustLabelsNoT(pkg, "src/"+name+".txt")
					if p > 0 {
						// Every target of the previous package depends on
						// p00:t0 .. so Rdeps of //p00:t0 lists 390 targets.
						t.Deps = mustLabelsNoT(pkg, "//p00:t0", fmt.Sprintf("//p%02d:t%d", p-1, i))
					}
					for _, b := range bad {
						if b == pkg+":"+name {
							t.Deps = append(t.Deps, Label{pkg, "nothing"})
						}
					}
				}))
			}
		}
		src := newSource(targets...)
		for _, x := range targets {
			src.files[joinPkg(x.Label.Pkg, "src/"+x.Label.Name+".txt")] = true
		}
		return src
	}
	var roots []string
	for p := range 40 {
		roots = append(roots, fmt.Sprintf("//p%02d:t0", p))
	}
	g, err := link(t, build(), roots...)
	if err != nil {
		t.Fatal(err)
	}
	var want []Label
	for p := 1; p < 40; p++ {
		for i := range 10 {
			want = append(want, Label{fmt.Sprintf("p%02d", p), fmt.Sprintf("t%d", i)})
		}
	}
	// p01:t0 names //p00:t0 twice (as the shared dep and as its previous
	// package's t0): once in Rdeps.
	if got := g.Rdeps[Label{"p00", "t0"}]; !reflect.DeepEqual(got, want) {
		t.Errorf("rdeps of //p00:t0 = %d labels %v..., want %d in package and target order", len(got), got[:min(3, len(got))], len(want))
	}
	wantRefs := []Ref{
		{Label: Label{"p07", "src/t3.txt"}, Kind: RefSource, Output: "src/t3.txt"},
		{Label: Label{"p00", "t0"}, Kind: RefRule},
		{Label: Label{"p06", "t3"}, Kind: RefRule},
	}
	if got := g.Refs[Label{"p07", "t3"}]; !reflect.DeepEqual(got, wantRefs) {
		t.Errorf("refs of //p07:t3 = %+v, want %+v", got, wantRefs)
	}
	if _, ok := g.Refs[Label{"p00", "t0"}]; !ok {
		t.Error("//p00:t0 has no refs: its source is missing")
	}

	for range 5 {
		_, err = link(t, build("p31:t2", "p05:t8", "p05:t9"), roots...)
		if err == nil || !strings.Contains(err.Error(), "//p05:t8: deps: //p05:nothing") {
			t.Fatalf("err = %v, want the one of //p05:t8, the first in order", err)
		}
	}
}

func mustLabelsNoT(pkg string, ss ...string) []Label {
	var out []Label
	for _, s := range ss {
		l, err := ParseLabel(s, pkg)
		if err != nil {
			panic(err)
		}
		out = append(out, l)
	}
	return out
}
