package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// benchRepo is a workspace written by bench/gen and its edge list
// (edges.txt), the oracle the query answers are checked against.
type benchRepo struct {
	dir, cache string
	stages     []string            // "pkgNNNN:sNN", in edges.txt order
	deps, rdep map[string][]string // stage -> direct deps / direct dependents
}

func genBenchRepo(t *testing.T, packages, seed int) *benchRepo {
	t.Helper()
	dir := t.TempDir()
	gen := exec.Command("go", "run", "../../bench/gen", "-out", dir, "-q",
		"-packages", fmt.Sprint(packages), "-stages", "10", "-seed", fmt.Sprint(seed))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("bench/gen: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "edges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r := &benchRepo{dir: dir, cache: filepath.Join(t.TempDir(), "cache"), deps: map[string][]string{}, rdep: map[string][]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		r.stages = append(r.stages, f[0])
		r.deps[f[0]] = f[1:]
		for _, d := range f[1:] {
			r.rdep[d] = append(r.rdep[d], f[0])
		}
	}
	return r
}

// query runs `mc query EXPR` in the repository and returns its lines.
func (r *benchRepo) query(t *testing.T, expr string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-C", r.dir, "query", "--cache-dir", r.cache, expr}, &stdout, &stderr); code != 0 {
		t.Fatalf("mc query %q: exit %d: %s", expr, code, stderr.String())
	}
	out := strings.Fields(stdout.String())
	if out == nil {
		out = []string{}
	}
	return out
}

// walk returns the labels reachable from start along adj, start included.
func walk(adj map[string][]string, start ...string) map[string]bool {
	seen := map[string]bool{}
	todo := append([]string(nil), start...)
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		todo = append(todo, adj[n]...)
	}
	return seen
}

// labels spells edges.txt names as sorted mc labels; src adds each
// stage's source file, as deps() includes it.
func labels(set map[string]bool, src bool) []string {
	out := []string{}
	for s := range set {
		out = append(out, "//"+s)
		if src {
			pkg, name, _ := strings.Cut(s, ":")
			out = append(out, "//"+pkg+":src/"+name+".txt")
		}
	}
	sort.Strings(out) // pkgNNNN names sort the same as labels do
	return out
}

// TestQueryMatchesBenchGenerator checks deps, rdeps, allpaths and somepath
// on a bench/gen repository against walks over its edges.txt.
func TestQueryMatchesBenchGenerator(t *testing.T) {
	r := genBenchRepo(t, 60, 5)
	all := map[string]bool{}
	for _, s := range r.stages {
		all[s] = true
	}
	if got, want := r.query(t, "deps(//...)"), labels(all, true); !slices.Equal(got, want) {
		t.Fatalf("deps(//...): %d labels, want %d", len(got), len(want))
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 12 {
		x := r.stages[rng.IntN(len(r.stages))]
		y := r.stages[rng.IntN(len(r.stages))]
		if rng.IntN(3) > 0 {
			// Mostly a dependent of x, so that there are paths to find.
			up := labels(walk(r.rdep, x), false)
			y = strings.TrimPrefix(up[rng.IntN(len(up))], "//")
		}
		t.Run(x+"_"+y, func(t *testing.T) {
			check := func(expr string, want []string) {
				t.Helper()
				if got := r.query(t, expr); !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q", expr, got, want)
				}
			}
			check(fmt.Sprintf("deps(//%s)", x), labels(walk(r.deps, x), true))
			check(fmt.Sprintf("kind(stage, deps(//%s + //%s))", x, y), labels(walk(r.deps, x, y), false))
			check(fmt.Sprintf("rdeps(//..., //%s)", x), labels(walk(r.rdep, x), false))
			// A source file's reverse dependencies are its stage's, plus itself.
			pkg, name, _ := strings.Cut(x, ":")
			src := fmt.Sprintf("//%s:src/%s.txt", pkg, name)
			check(fmt.Sprintf("rdeps(//..., %s) - %s", src, src), labels(walk(r.rdep, x), false))
			fwd, back := walk(r.deps, y), walk(r.rdep, x)
			on := map[string]bool{}
			for n := range fwd {
				if back[n] {
					on[n] = true
				}
			}
			check(fmt.Sprintf("allpaths(//%s, //%s)", y, x), labels(on, false))
			path := r.query(t, fmt.Sprintf("somepath(//%s, //%s)", y, x))
			if len(on) == 0 {
				if len(path) != 0 {
					t.Errorf("somepath(//%s, //%s) = %q, want nothing (no path)", y, x, path)
				}
				return
			}
			// Follow direct edges inside the result from y: one way on at
			// each step (a shortest path has no shortcuts), ending at x.
			in := map[string]bool{}
			for _, l := range path {
				in[strings.TrimPrefix(l, "//")] = true
			}
			n, steps := y, 0
			for n != x {
				var next []string
				for _, d := range r.deps[n] {
					if in[d] {
						next = append(next, d)
					}
				}
				if !in[n] || len(next) != 1 {
					t.Fatalf("somepath(//%s, //%s) = %q is not a path (at %s: %q)", y, x, path, n, next)
				}
				n, steps = next[0], steps+1
			}
			if steps+1 != len(path) {
				t.Errorf("somepath(//%s, //%s) = %q: %d nodes on the path, %d in the result", y, x, path, steps+1, len(path))
			}
		})
	}
}
