package builtins

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

// Compile-time checks that mc's real stores fit the interfaces.
var (
	_ KV       = (*cas.DB)(nil)
	_ Digester = (*cas.StatCache)(nil)
)

// counter counts BUILD.mc evaluations per package.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) hook(pkg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[pkg]++
}

func (c *counter) evaluated() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.n {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func TestPackageCache(t *testing.T) {
	root := writeTree(t, map[string]string{
		"tools/defs.star": `
load(":base.star", "exclude")
def lib(name):
    filegroup(name = name, srcs = glob(["**/*.go"], exclude = exclude))
`,
		"tools/base.star": `exclude = ["**/*_test.go"]`,
		"app/BUILD.mc": `load("//tools/defs.star", "lib")
lib(name = "srcs")
stage(name = "gen", cmd = "gen", outs = ["gen/out.txt"])
`,
		"app/a.go":       "",
		"app/sub/b.go":   "",
		"other/BUILD.mc": `filegroup(name = "o")`,
	})
	kv := newMemKV()
	// run evaluates both packages with a fresh Evaluator, as a new mc
	// invocation would, and returns the packages evaluated by Starlark.
	run := func(t *testing.T) ([]*graph.Package, []string, error) {
		t.Helper()
		e := evaluator(t, root, kv)
		c := &counter{n: map[string]int{}}
		e.onEval = c.hook
		pkgs, err := e.Packages(context.Background(), []string{"app", "other"})
		return pkgs, c.evaluated(), err
	}
	srcsOf := func(p *graph.Package) []string {
		var out []string
		for _, l := range p.Targets[0].Srcs {
			out = append(out, l.Name)
		}
		return out
	}

	first, evaluated, err := run(t)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(evaluated, []string{"app", "other"}) {
		t.Fatalf("first run evaluated %v", evaluated)
	}
	if got := first[0].Loads; !reflect.DeepEqual(got, []string{"tools/base.star", "tools/defs.star"}) {
		t.Fatalf("Loads = %v", got)
	}

	steps := []struct {
		name      string
		change    func(t *testing.T)
		evaluated []string
		srcs      []string // app's srcs afterwards, when non-nil
		errSubstr string
	}{
		{"unchanged", func(*testing.T) {}, nil, []string{"a.go", "sub/b.go"}, ""},
		{"added file matching a glob", func(t *testing.T) { writeFile(t, root, "app/sub/deeper/c.go", "") },
			[]string{"app"}, []string{"a.go", "sub/b.go", "sub/deeper/c.go"}, ""},
		{"added file excluded by the glob", func(t *testing.T) { writeFile(t, root, "app/a_test.go", "") },
			nil, []string{"a.go", "sub/b.go", "sub/deeper/c.go"}, ""},
		{"added file not matching", func(t *testing.T) { writeFile(t, root, "app/README", "") }, nil, nil, ""},
		{"edited file content does not matter to a glob", func(t *testing.T) { writeFile(t, root, "app/a.go", "package a") }, nil, nil, ""},
		{"removed file", func(t *testing.T) { rm(t, root, "app/sub/deeper/c.go") },
			[]string{"app"}, []string{"a.go", "sub/b.go"}, ""},
		{"edited transitively loaded .star", func(t *testing.T) { writeFile(t, root, "tools/base.star", `exclude = ["sub/**"]`) },
			[]string{"app"}, []string{"a.go", "a_test.go"}, ""},
		{"edited loaded .star", func(t *testing.T) {
			writeFile(t, root, "tools/defs.star", "load(\":base.star\", \"exclude\")\ndef lib(name):\n    filegroup(name = name, srcs = glob([\"*.go\"]))\n")
		}, []string{"app"}, []string{"a.go", "a_test.go"}, ""},
		{"edited BUILD.mc", func(t *testing.T) {
			writeFile(t, root, "app/BUILD.mc", "filegroup(name = \"srcs\", srcs = glob([\"**/*.go\"]))\nstage(name = \"gen\", cmd = \"gen\", outs = [\"gen/out.txt\"])\n")
		}, []string{"app"}, []string{"a.go", "a_test.go", "sub/b.go"}, ""},
		{"new sub-package hides its files", func(t *testing.T) { writeFile(t, root, "app/sub/BUILD.mc", "") },
			[]string{"app"}, []string{"a.go", "a_test.go"}, ""},
		{"out parent becomes a source file", func(t *testing.T) { writeFile(t, root, "app/gen", "") },
			[]string{"app"}, nil, `"gen/out.txt" cannot be created`},
		{"failed evaluations are not cached", func(*testing.T) {}, []string{"app"}, nil, `"gen/out.txt" cannot be created`},
		// The record stored before the file appeared is valid again.
		{"fixed", func(t *testing.T) { rm(t, root, "app/gen") }, nil, []string{"a.go", "a_test.go"}, ""},
		{"edited WORKSPACE.mc", func(t *testing.T) { writeFile(t, root, "WORKSPACE.mc", "# changed\n") },
			[]string{"app", "other"}, nil, ""},
		{"unchanged again", func(*testing.T) {}, nil, []string{"a.go", "a_test.go"}, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change(t)
			pkgs, evaluated, err := run(t)
			if s.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), s.errSubstr) {
					t.Fatalf("got error %v, want one containing %q", err, s.errSubstr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(evaluated, s.evaluated) {
				t.Errorf("evaluated %v, want %v", evaluated, s.evaluated)
			}
			if s.srcs != nil {
				if got := srcsOf(pkgs[0]); !reflect.DeepEqual(got, s.srcs) {
					t.Errorf("app srcs = %v, want %v", got, s.srcs)
				}
			}
		})
	}
}

func TestCachedPackageEqualsEvaluated(t *testing.T) {
	files := map[string]string{
		"m.star": "def m(name):\n    stage(name = name, cmd = ['a', 'b'], outs = ['o/'], env = {'A': 'b'}, timeout = '1m', machine = {'n': 2})\n",
		"p/BUILD.mc": `load("//m.star", "m")
m(name = "s")
image(name = "i", files = {"/x": ":o/"}, tags = ["t"])
filegroup(name = "f", srcs = [])
stage(name = "empty", cmd = "x", env = {}, outs = [])
`,
	}
	root := writeTree(t, files)
	kv := newMemKV()
	fresh, err := evaluator(t, root, kv).Packages(context.Background(), []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	e := evaluator(t, root, kv)
	e.onEval = func(string) { t.Error("package evaluated again; want a cache hit") }
	cached, err := e.Packages(context.Background(), []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fresh, cached) {
		t.Errorf("cached package differs:\n got %+v\nwant %+v", cached[0], fresh[0])
	}
}

func TestCacheKeyedByWorkspace(t *testing.T) {
	kv := newMemKV()
	a := writeTree(t, map[string]string{"p/BUILD.mc": `filegroup(name = "a")`})
	b := writeTree(t, map[string]string{"p/BUILD.mc": `filegroup(name = "b")`})
	for _, tc := range []struct{ root, want string }{{a, "a"}, {b, "b"}, {a, "a"}} {
		pkgs, err := evaluator(t, tc.root, kv).Packages(context.Background(), []string{"p"})
		if err != nil {
			t.Fatal(err)
		}
		if got := pkgs[0].Targets[0].Label.Name; got != tc.want {
			t.Errorf("workspace %s: got target %q, want %q", tc.root, got, tc.want)
		}
	}
}

func rm(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(name))); err != nil {
		t.Fatal(err)
	}
}

// TestPackageCacheTrustedStamps runs with old directory mtimes, so that globs
// are validated by their directory stamps alone, and checks that changes
// are still seen and that a null run writes nothing.
func TestPackageCacheTrustedStamps(t *testing.T) {
	root := writeTree(t, map[string]string{
		"app/BUILD.mc": `filegroup(name = "srcs", srcs = glob(["**/*.go"]))`,
		"app/a.go":     "",
		"app/x/b.go":   "",
	})
	kv := newMemKV()
	run := func(t *testing.T) (srcs []string, evaluated []string) {
		t.Helper()
		e := evaluator(t, root, kv)
		c := &counter{n: map[string]int{}}
		e.onEval = c.hook
		pkgs, err := e.Packages(context.Background(), []string{"app"})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range pkgs[0].Targets[0].Srcs {
			srcs = append(srcs, l.Name)
		}
		return srcs, c.evaluated()
	}
	ageTree(t, root)
	if _, ev := run(t); !reflect.DeepEqual(ev, []string{"app"}) {
		t.Fatalf("first run evaluated %v", ev)
	}
	puts := kv.puts
	if _, ev := run(t); ev != nil || kv.puts != puts {
		t.Fatalf("null run: evaluated %v, %d writes; want none", ev, kv.puts-puts)
	}
	writeFile(t, root, "app/x/c.go", "")
	srcs, ev := run(t)
	if !reflect.DeepEqual(ev, []string{"app"}) || !reflect.DeepEqual(srcs, []string{"a.go", "x/b.go", "x/c.go"}) {
		t.Fatalf("after adding x/c.go: evaluated %v, srcs %v", ev, srcs)
	}
	// An unrelated change to a walked directory re-runs the glob, which
	// still matches: no evaluation, and fresh stamps are saved.
	ageTree(t, root)
	writeFile(t, root, "app/x/notes.txt", "")
	ageTree(t, root)
	if _, ev := run(t); ev != nil {
		t.Fatalf("unrelated file: evaluated %v", ev)
	}
	puts = kv.puts
	if _, ev := run(t); ev != nil || kv.puts != puts {
		t.Fatalf("null run after refresh: evaluated %v, %d writes; want none", ev, kv.puts-puts)
	}
}

func ageTree(t *testing.T, root string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotForgetsRemovedPackages(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a/BUILD.mc": `filegroup(name = "a")`,
		"b/BUILD.mc": `filegroup(name = "b")`,
	})
	kv := newMemKV()
	ctx := context.Background()
	if _, err := evaluator(t, root, kv).Packages(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	rm(t, root, "b/BUILD.mc")
	writeFile(t, root, "a/BUILD.mc", `filegroup(name = "a2")`)
	e := evaluator(t, root, kv)
	all, err := e.FindPackages(ctx, "")
	if err != nil || !reflect.DeepEqual(all, []string{"a"}) {
		t.Fatalf("FindPackages = %v, %v", all, err)
	}
	if _, err := e.Packages(ctx, all); err != nil {
		t.Fatal(err)
	}
	e = evaluator(t, root, kv)
	e.loadSnapshot(ctx)
	if got := sortedKeys(e.records); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("snapshot holds %v, want [a]", got)
	}
}

// A package that loads mc's standard library is cached like any other (the
// library is not a workspace file to digest), and a snapshot written with
// another library is not used: the same BUILD.mc may expand differently.
func TestPackageCacheStdlib(t *testing.T) {
	root := writeTree(t, map[string]string{
		"app/BUILD.mc": `load("@mc//go.star", "go_binary")
go_binary(name = "app", srcs = ["main.go"], gomod = "go.mod")
`,
		"app/main.go": "package main\n",
		"app/go.mod":  "module app\n",
	})
	kv := newMemKV()
	run := func(stdlibDigest string) []string {
		t.Helper()
		e := evaluator(t, root, kv)
		if stdlibDigest != "" {
			e.stdlib = stdlibDigest
		}
		c := &counter{n: map[string]int{}}
		e.onEval = c.hook
		pkgs, err := e.Packages(context.Background(), []string{"app"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pkgs) != 1 || len(pkgs[0].Targets) != 1 || pkgs[0].Targets[0].Label.Name != "app" {
			t.Fatalf("packages = %+v, want app with the stage the macro declares", pkgs)
		}
		return c.evaluated()
	}
	if got := run(""); !reflect.DeepEqual(got, []string{"app"}) {
		t.Fatalf("first run evaluated %v, want [app]", got)
	}
	if got := run(""); len(got) != 0 {
		t.Errorf("second run evaluated %v, want nothing (served from the snapshot)", got)
	}
	if got := run("another-library"); !reflect.DeepEqual(got, []string{"app"}) {
		t.Errorf("with another standard library the run evaluated %v, want [app]", got)
	}
}
