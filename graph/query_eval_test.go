package graph

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// queryFake is a fakeSource whose FindPackages honours `under`.
type queryFake struct{ *fakeSource }

func (f queryFake) FindPackages(ctx context.Context, under string) ([]string, error) {
	var out []string
	for n := range f.pkgs {
		if under == "" || n == under || strings.HasPrefix(n, under+"/") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func runQuery(t *testing.T, src PackageSource, dir, expr string, changes func(context.Context, string) ([]FileChange, error)) ([]string, error) {
	t.Helper()
	q, err := ParseQuery(expr)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", expr, err)
	}
	res, err := RunQuery(context.Background(), &QueryEnv{Src: src, Dir: dir, Changes: changes}, q)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, n := range res.Nodes {
		out = append(out, n.Label.String())
	}
	return out, nil
}

// fixture is a small workspace with every kind of node:
//
//	//:root                    a stage of the root package
//	//lib:gen                  stage with outputs gen.txt and out/dir/
//	//lib:srcs                 filegroup of a.txt, b.txt
//	//lib:lib                  stage: srcs :srcs + :gen.txt, declared by a macro
//	//lib:img                  image: base debian:12, files a.txt, gen.txt
//	//app:app                  stage: main.txt, deps //lib:lib, image //lib:img
//	//app:app_test             test stage on :app
//	//app/sub:sub              stage on //app:app
func fixture(t *testing.T) queryFake {
	src := newSource(
		stageT("", "root", 1, nil),
		stageT("lib", "gen", 1, func(x *Target) { x.Outs = []string{"gen.txt", "out/dir/"}; x.Tags = []string{"gen", "fast"} }),
		&Target{Label: Label{"lib", "srcs"}, Kind: KindFilegroup, Pos: Pos{"lib/BUILD.mc", 2, 10},
			Srcs: mustLabels(t, "lib", "a.txt", "b.txt")},
		stageT("lib", "lib", 3, func(x *Target) {
			x.Srcs = mustLabels(t, "lib", ":srcs", ":gen.txt")
			x.Env = map[string]string{"A": "1", "B": "two"}
			x.Timeout = 90 * time.Minute
			x.Stack = []Pos{{"lib/BUILD.mc", 3, 4}, {"tools/defs.star", 7, 10}}
		}),
		&Target{Label: Label{"lib", "img"}, Kind: KindImage, Pos: Pos{"lib/BUILD.mc", 4, 6}, Cache: true, Network: true,
			ImageSpec: &ImageSpec{Base: "debian:12", Workdir: "/", Files: map[string]Label{
				"/a": {"lib", "a.txt"}, "/g": {"lib", "gen.txt"}}}},
		stageT("app", "app", 1, func(x *Target) {
			x.Srcs = mustLabels(t, "app", "main.txt")
			x.Deps = mustLabels(t, "app", "//lib")
			x.Image = "//lib:img"
		}),
		stageT("app", "app_test", 2, func(x *Target) { x.Deps = mustLabels(t, "app", ":app"); x.Test = true; x.Network = false }),
		stageT("app/sub", "sub", 1, func(x *Target) { x.Deps = mustLabels(t, "app/sub", "//app:app") }),
	)
	src.pkgs["lib"].Loads = []string{"tools/defs.star", "tools/more.star"}
	for _, f := range []string{"lib/a.txt", "lib/b.txt", "app/main.txt", "lib/BUILD.mc", "app/notes.txt"} {
		src.files[f] = true
	}
	return queryFake{src}
}

func TestQueryFunctions(t *testing.T) {
	src := fixture(t)
	changes := func(ctx context.Context, rev string) ([]FileChange, error) {
		switch rev {
		case "HEAD":
			return nil, nil
		case "edit-a":
			return []FileChange{{Path: "lib/a.txt"}}, nil
		case "edit-star":
			return []FileChange{{Path: "tools/more.star"}}, nil
		}
		return nil, fmt.Errorf("unknown revision %q", rev)
	}
	tests := []struct {
		expr string
		dir  string
		want []string
	}{
		{"//...", "", []string{"//:root", "//app:app", "//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"//app/...", "", []string{"//app:app", "//app:app_test", "//app/sub:sub"}},
		{"//app:all", "", []string{"//app:app", "//app:app_test"}},
		{"//app:*", "", []string{"//app:app", "//app:app_test"}},
		{"//lib", "", []string{"//lib:lib"}},
		{":app", "app", []string{"//app:app"}},
		{"...", "app", []string{"//app:app", "//app:app_test", "//app/sub:sub"}},
		{"main.txt", "app", []string{"//app:main.txt"}},
		{"//lib:gen.txt", "", []string{"//lib:gen.txt"}},
		{"//lib:out/dir", "", []string{"//lib:out/dir"}},
		{"//lib:out/dir/", "", []string{"//lib:out/dir"}},
		{"//lib:BUILD.mc", "", []string{"//lib:BUILD.mc"}},
		{"deps(//app:app)", "", []string{"//app:app", "//app:main.txt", "//lib:a.txt", "//lib:b.txt", "//lib:gen", "//lib:gen.txt", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"deps(//app:app, 0)", "", []string{"//app:app"}},
		{"deps(//app:app, 1)", "", []string{"//app:app", "//app:main.txt", "//lib:img", "//lib:lib"}},
		{"deps(//lib:lib, 2)", "", []string{"//lib:a.txt", "//lib:b.txt", "//lib:gen", "//lib:gen.txt", "//lib:lib", "//lib:srcs"}},
		// out/dir is not in deps(//...), the universe: nothing uses it.
		{"rdeps(//..., //lib:gen)", "", []string{"//app:app", "//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:gen.txt", "//lib:img", "//lib:lib"}},
		{"rdeps(//..., //lib:gen, 1)", "", []string{"//lib:gen", "//lib:gen.txt"}},
		{"rdeps(//lib:out/dir, //lib:gen)", "", []string{"//lib:gen", "//lib:out/dir"}},
		{"rdeps(//app:all, //lib:a.txt)", "", []string{"//app:app", "//app:app_test", "//lib:a.txt", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"rdeps(//app:app_test, //app/sub:sub)", "", []string{}}, // outside the universe
		{"rdeps(//lib:lib, //lib:a.txt)", "", []string{"//lib:a.txt", "//lib:lib", "//lib:srcs"}},
		{"allpaths(//app:app_test, //lib:gen)", "", []string{"//app:app", "//app:app_test", "//lib:gen", "//lib:gen.txt", "//lib:img", "//lib:lib"}},
		{"allpaths(//lib:gen, //app:app)", "", []string{}},
		{"somepath(//app:app_test, //lib:b.txt)", "", []string{"//app:app", "//app:app_test", "//lib:b.txt", "//lib:lib", "//lib:srcs"}},
		{"somepath(//lib:gen, //app:app)", "", []string{}},
		{"somepath(//app:app, //app:app)", "", []string{"//app:app"}},
		{"kind(stage, //...)", "", []string{"//:root", "//app:app", "//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:lib"}},
		{"kind('^filegroup rule$', //...)", "", []string{"//lib:srcs"}},
		{"kind(image, //...)", "", []string{"//lib:img"}},
		{"kind(rule, deps(//lib:lib))", "", []string{"//lib:gen", "//lib:lib", "//lib:srcs"}},
		{`kind("source file", deps(//lib:lib))`, "", []string{"//lib:a.txt", "//lib:b.txt"}},
		{`kind("generated file", deps(//app:app))`, "", []string{"//lib:gen.txt"}},
		{`filter("\.txt$", deps(//app:app))`, "", []string{"//app:main.txt", "//lib:a.txt", "//lib:b.txt", "//lib:gen.txt"}},
		{"filter(//app, //...)", "", []string{"//app:app", "//app:app_test", "//app/sub:sub"}},
		{"attr(tags, fast, //...)", "", []string{"//lib:gen"}},
		{"attr(env, '^B=two$', //...)", "", []string{"//lib:lib"}},
		{"attr(timeout, '^1h30m$', //...)", "", []string{"//lib:lib"}},
		{"attr(test, True, //...)", "", []string{"//app:app_test"}},
		{"attr(network, False, //...)", "", []string{"//app:app_test"}},
		{"attr(image, 'lib:img', //...)", "", []string{"//app:app"}},
		{"attr(deps, '^$', //...)", "", []string{"//:root", "//lib:gen", "//lib:lib"}},
		{"attr(srcs, 'a\\.txt', //...)", "", []string{"//lib:srcs"}},
		{"attr(files, '^/g=//lib:gen.txt$', //...)", "", []string{"//lib:img"}},
		{"attr(base, debian, //...)", "", []string{"//lib:img"}},
		{"attr(name, '^s', //...)", "", []string{"//app/sub:sub", "//lib:srcs"}},
		{"tests(//...)", "", []string{"//app:app_test"}},
		{"tests(//lib:all)", "", []string{}},
		{"buildfiles(//app:app + //lib:a.txt)", "", []string{"//app:BUILD.mc", "//lib:BUILD.mc", "//tools:defs.star", "//tools:more.star"}},
		{"buildfiles(//:root)", "", []string{"//:BUILD.mc"}},
		{"labels(srcs, //lib:lib)", "", []string{"//lib:gen.txt", "//lib:srcs"}},
		{"labels(deps, //app:all)", "", []string{"//app:app", "//lib:lib"}},
		{"labels(image, //app:app)", "", []string{"//lib:img"}},
		{"labels(files, //lib:img)", "", []string{"//lib:a.txt", "//lib:gen.txt"}},
		{"labels(base, //lib:img)", "", []string{}}, // a registry reference is not a label
		{"set(//app:app :gen '...')", "lib", []string{"//app:app", "//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"set()", "", []string{}},
		{"//app:all + //lib:gen", "", []string{"//app:app", "//app:app_test", "//lib:gen"}},
		{"//app/... - //app:all", "", []string{"//app/sub:sub"}},
		{"//app/... except //app:all", "", []string{"//app/sub:sub"}},
		{"deps(//app:app) ^ //lib:all", "", []string{"//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"//app:all - //app:app + //lib:gen", "", []string{"//app:app_test", "//lib:gen"}}, // left to right
		{"//app:all - (//app:app + //lib:gen)", "", []string{"//app:app_test"}},            // parentheses
		{"let x = deps(//lib:lib) in $x ^ //lib:all", "", []string{"//lib:gen", "//lib:lib", "//lib:srcs"}},
		{"let x = //lib:gen in let x = rdeps(//..., $x, 1) in $x", "", []string{"//lib:gen", "//lib:gen.txt"}},
		{"changed(HEAD)", "", []string{}},
		{"changed('edit-a')", "", []string{"//lib:img", "//lib:srcs"}},
		{"affected('edit-a')", "", []string{"//app:app", "//app:app_test", "//app/sub:sub", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"changed(edit-star)", "", []string{"//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}},
		{"affected(edit-star) - changed(edit-star)", "", []string{"//app:app", "//app:app_test", "//app/sub:sub", "//lib:gen.txt"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := runQuery(t, src, tc.dir, tc.expr, changes)
			if err != nil {
				t.Fatalf("%s: %v", tc.expr, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s\n got %q\nwant %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestQueryEvalErrors(t *testing.T) {
	src := fixture(t)
	failing := func(ctx context.Context, rev string) ([]FileChange, error) {
		return nil, errors.New("git exploded")
	}
	tests := []struct {
		expr    string
		changes func(context.Context, string) ([]FileChange, error)
		col     int // 0: not a *QueryError
		msg     string
	}{
		{"//app:nope", nil, 1, `//app:nope names nothing: no target, output or source file "nope" in app/BUILD.mc`},
		{"deps(//app:ap)", nil, 6, `(did you mean :app`},
		{"//lib:gen.tx", nil, 1, `(did you mean :gen.txt`},
		{"//nope:x", nil, 1, `//nope:x: there is no package "nope" (no nope/BUILD.mc)`},
		{"//app + //nope/...", nil, 9, "no packages match //nope/... (no BUILD.mc files at or below //nope)"},
		{"//app:sub/BUILD.mc", nil, 1, "//app:sub/BUILD.mc crosses into package //app/sub; use //app/sub:BUILD.mc"},
		{"//a:b:c", nil, 1, `invalid target pattern "//a:b:c"`},
		{"//a/../b", nil, 1, `invalid target pattern`},
		{"$x", nil, 1, "undefined variable $x"},
		{"let x = //app in $y", nil, 18, "undefined variable $y"},
		{"(let x = //app in $x) + $x", nil, 25, "undefined variable $x"},
		{"kind('[', //...)", nil, 6, "kind: invalid regular expression \"[\": missing closing ]"},
		{"filter('a**', //...)", nil, 8, "invalid regular expression"},
		{"attr(colour, x, //...)", nil, 6, `unknown attribute "colour"`},
		{"labels(cmd, //...)", nil, 8, `"cmd" is not a label attribute`},
		{"changed(HEAD)", nil, 1, "changed() is not available here"},
		{"affected('--output=x')", failing, 10, `affected: invalid git revision "--output=x"`},
		{"changed(HEAD)", failing, 0, "git exploded"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := runQuery(t, src, "", tc.expr, tc.changes)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("%s: error %v, want one containing %q", tc.expr, err, tc.msg)
			}
			var qe *QueryError
			if isQE := errors.As(err, &qe); isQE != (tc.col > 0) || isQE && qe.Col != tc.col {
				t.Errorf("%s: error %#v, want a *QueryError at column %d", tc.expr, err, tc.col)
			}
		})
	}
}

// TestQueryLoadsOnlyWhatItNeeds: a pattern loads its packages and what they
// reference; //... and affected() load everything.
func TestQueryLoadsOnlyWhatItNeeds(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"//lib:gen", []string{"lib"}},
		{"deps(//app:app)", []string{"app", "lib"}},
		{"//app/...", []string{"app", "app/sub", "lib"}},
		{"rdeps(//..., //lib:gen)", []string{"", "app", "app/sub", "lib"}},
		{"affected(HEAD) + //lib:gen", []string{"", "app", "app/sub", "lib"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			src := fixture(t)
			q, err := ParseQuery(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingSource{queryFake: src}
			res, err := RunQuery(context.Background(), &QueryEnv{Src: rec, Changes: func(context.Context, string) ([]FileChange, error) { return nil, nil }}, q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for p := range res.Graph.Packages {
				got = append(got, p)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) || !slices.Equal(rec.asked, tc.want) {
				t.Errorf("loaded %q (asked for %q), want %q", got, rec.asked, tc.want)
			}
		})
	}
}

type recordingSource struct {
	queryFake
	asked []string
}

func (r *recordingSource) Packages(ctx context.Context, names []string) ([]*Package, error) {
	r.asked = append(r.asked, names...)
	sort.Strings(r.asked)
	return r.queryFake.Packages(ctx, names)
}

// randomWorkspace generates a random acyclic workspace together with its
// edge list, computed independently of the query code: stage k of package
// p depends on earlier stages by label or by one of their outputs, on its
// own source file, and sometimes on a filegroup of source files.
func randomWorkspace(t *testing.T, seed uint64, npkgs, nstages int) (*fakeSource, map[string][]string) {
	r := rand.New(rand.NewPCG(seed, 7))
	edges := map[string][]string{} // node label -> the nodes it depends on
	var targets []*Target
	var stages []Label
	files := map[string]bool{}
	for p := range npkgs {
		pkg := fmt.Sprintf("p%02d", p)
		fgs := 0
		for s := range nstages {
			l := Label{pkg, fmt.Sprintf("s%02d", s)}
			src := fmt.Sprintf("src/s%02d.txt", s)
			files[pkg+"/"+src] = true
			out := fmt.Sprintf("out/s%02d", s)
			st := stageT(pkg, l.Name, s+1, func(x *Target) { x.Srcs = []Label{{pkg, src}}; x.Outs = []string{out, out + ".log"} })
			edges[l.String()] = append(edges[l.String()], Label{pkg, src}.String())
			edges[Label{pkg, out}.String()] = []string{l.String()}
			edges[Label{pkg, out + ".log"}.String()] = []string{l.String()}
			seen := map[string]bool{}
			for range r.IntN(4) {
				if len(stages) == 0 {
					break
				}
				d := stages[len(stages)-1-r.IntN(min(len(stages), 25))]
				var ref Label
				if r.IntN(3) == 0 {
					ref = Label{d.Pkg, "out/" + d.Name}
				} else {
					ref = d
				}
				if seen[ref.String()] {
					continue
				}
				seen[ref.String()] = true
				if r.IntN(2) == 0 {
					st.Deps = append(st.Deps, ref)
				} else {
					st.Srcs = append(st.Srcs, ref)
				}
				edges[l.String()] = append(edges[l.String()], ref.String())
			}
			if r.IntN(5) == 0 {
				fg := Label{pkg, fmt.Sprintf("fg%d", fgs)}
				fgs++
				f := &Target{Label: fg, Kind: KindFilegroup, Pos: Pos{pkg + "/BUILD.mc", 99, 1}}
				for i := range 1 + r.IntN(2) {
					name := fmt.Sprintf("data/%s_%d.txt", fg.Name, i)
					files[pkg+"/"+name] = true
					f.Srcs = append(f.Srcs, Label{pkg, name})
					edges[fg.String()] = append(edges[fg.String()], Label{pkg, name}.String())
				}
				targets = append(targets, f)
				st.Srcs = append(st.Srcs, fg)
				edges[l.String()] = append(edges[l.String()], fg.String())
			}
			targets = append(targets, st)
			stages = append(stages, l)
		}
	}
	src := newSource(targets...)
	src.files = files
	return src, edges
}

// reach walks adj from start, up to depth steps (< 0: all).
func reach(adj map[string][]string, start []string, depth int) map[string]bool {
	seen := map[string]bool{}
	frontier := []string{}
	for _, s := range start {
		if !seen[s] {
			seen[s] = true
			frontier = append(frontier, s)
		}
	}
	for d := 0; len(frontier) > 0 && (depth < 0 || d < depth); d++ {
		var next []string
		for _, n := range frontier {
			for _, m := range adj[n] {
				if !seen[m] {
					seen[m] = true
					next = append(next, m)
				}
			}
		}
		frontier = next
	}
	return seen
}

func sortedSet(m map[string]bool) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := ParseLabel(out[i], "")
		b, _ := ParseLabel(out[j], "")
		return a.Less(b)
	})
	return out
}

// TestQueryMatchesIndependentGraph compares deps, rdeps, allpaths and
// somepath with walks over the generator's own edge list.
func TestQueryMatchesIndependentGraph(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fake, edges := randomWorkspace(t, seed, 12, 8)
			src := queryFake{fake}
			rev := map[string][]string{}
			var all []string
			nodes := map[string]bool{}
			for from, tos := range edges {
				nodes[from] = true
				for _, to := range tos {
					rev[to] = append(rev[to], from)
					nodes[to] = true
				}
			}
			var rules []string
			for n := range nodes {
				all = append(all, n)
				if l, _ := ParseLabel(n, ""); !strings.Contains(l.Name, "/") {
					rules = append(rules, n) // stages and filegroups have no '/' in their names
				}
			}
			sort.Strings(all)
			r := rand.New(rand.NewPCG(seed, 99))
			pick := func() string { return all[r.IntN(len(all))] }
			check := func(expr string, want map[string]bool) {
				t.Helper()
				got, err := runQuery(t, src, "", expr, nil)
				if err != nil {
					t.Fatalf("%s: %v", expr, err)
				}
				if w := sortedSet(want); !slices.Equal(got, w) {
					t.Errorf("%s:\n got %d %q\nwant %d %q", expr, len(got), got, len(w), w)
				}
			}
			universe := reach(edges, rules, -1)
			check("deps(//...)", universe)
			// rdepsIn walks the reverse edges from x inside universe u (x
			// itself must be in it), as rdeps(u, x, depth) does.
			rdepsIn := func(u map[string]bool, x string, depth int) map[string]bool {
				if !u[x] {
					return map[string]bool{}
				}
				within := map[string][]string{}
				for to, froms := range rev {
					for _, f := range froms {
						if u[to] && u[f] {
							within[to] = append(within[to], f)
						}
					}
				}
				return reach(within, []string{x}, depth)
			}
			for range 15 {
				x, y := pick(), pick()
				d := r.IntN(4)
				check(fmt.Sprintf("deps(%s)", x), reach(edges, []string{x}, -1))
				check(fmt.Sprintf("deps(%s, %d)", x, d), reach(edges, []string{x}, d))
				check(fmt.Sprintf("rdeps(//..., %s)", x), rdepsIn(universe, x, -1))
				check(fmt.Sprintf("rdeps(//..., %s, %d)", x, d), rdepsIn(universe, x, d))
				check(fmt.Sprintf("deps(%s + %s)", x, y), reach(edges, []string{x, y}, -1))
				check(fmt.Sprintf("rdeps(%s, %s)", y, x), rdepsIn(reach(edges, []string{y}, -1), x, -1))
				// allpaths: the nodes on some path from y to x.
				fwd, back := reach(edges, []string{y}, -1), reach(rev, []string{x}, -1)
				ap := map[string]bool{}
				for n := range fwd {
					if back[n] {
						ap[n] = true
					}
				}
				check(fmt.Sprintf("allpaths(%s, %s)", y, x), ap)
				checkSomepath(t, src, edges, y, x, len(ap) > 0)
			}
		})
	}
}

// checkSomepath: somepath(from, to) is a chain of direct edges from `from`
// to `to` (each node once), empty exactly when there is no path.
func checkSomepath(t *testing.T, src PackageSource, edges map[string][]string, from, to string, exists bool) {
	t.Helper()
	expr := fmt.Sprintf("somepath(%s, %s)", from, to)
	got, err := runQuery(t, src, "", expr, nil)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if !exists {
		if len(got) != 0 {
			t.Errorf("%s = %q, want nothing: there is no path", expr, got)
		}
		return
	}
	in := map[string]bool{}
	for _, n := range got {
		in[n] = true
	}
	// Follow edges inside the result from `from`; a shortest path has no
	// shortcuts, so each step has exactly one way on.
	n, steps := from, 0
	for n != to {
		var next []string
		for _, m := range edges[n] {
			if in[m] {
				next = append(next, m)
			}
		}
		if len(next) != 1 || !in[n] {
			t.Fatalf("%s = %q: at %s, %d ways on inside the result (want 1)", expr, got, n, len(next))
		}
		n = next[0]
		steps++
	}
	if steps+1 != len(got) {
		t.Errorf("%s = %q: the path has %d nodes, the result %d", expr, got, steps+1, len(got))
	}
}
