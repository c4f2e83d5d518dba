package mc_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/mc-build/mc/"

// allowed lists every package of the module and the mc packages its non-test
// code may import: the one direction of dependencies of docs/architecture.md.
// A package missing here, an import not listed, and a listed edge nobody uses
// all fail the test, so the map stays the true picture of the code.
var allowed = map[string][]string{
	// Value types and storage, the bottom of the pipeline.
	"internal/fdio":      {},
	"internal/wire":      {},
	"internal/syncbuf":   {},
	"confine":            {},
	"event":              {},
	"oci":                {},
	"vcs":                {},
	"iampolicy":          {},
	"stdlib":             {},
	"stdlib/gobuild":     {}, // a command built inside stages: the standard library only
	"errkind":            {},
	"internal/sqlschema": {},
	"helptext":           {},
	"flock":              {},
	"cas":                {"flock", "internal/fdio", "internal/sqlschema", "internal/wire"},
	"cas/s3":             {"cas"},
	"history":            {"cas", "internal/wire"},
	// Evaluate and key.
	"graph":    {"cas"},
	"lang":     {"graph", "cas", "stdlib"},
	"builtins": {"lang", "graph", "cas", "oci"},
	// Run.
	"sharedcache":  {"cas", "event"},
	"sched":        {"event", "graph", "cas", "oci", "sharedcache"},
	"sandbox/runc": {"confine"},
	"sandbox":      {"sched", "graph", "cas", "oci", "confine", "sandbox/runc", "internal/fdio", "internal/wire"},
	"runner":       {"sched", "sandbox", "graph", "cas", "cas/s3"},
	// The build as a library: an open workspace, its run, its outputs.
	"session":    {"builtins", "cas", "errkind", "graph", "history", "lang", "vcs"},
	"outdir":     {"cas", "graph", "sched"},
	"stagelog":   {"cas", "errkind", "event", "graph", "history", "sched", "session"},
	"cachegc":    {"builtins", "cas", "errkind", "flock", "graph", "history", "lang", "sandbox/runc", "session"},
	"queryout":   {"graph"},
	"starfmt":    {"builtins", "errkind", "graph", "lang"},
	"scaffold":   {"errkind", "lang", "starfmt"},
	"completion": {"graph", "session"},
	"explain":    {"cas", "errkind", "graph", "history", "sched", "session"},
	"report":     {"event"},
	"pipeline":   {"cas", "cas/s3", "errkind", "event", "explain", "flock", "graph", "history", "oci", "outdir", "profile", "report", "runner", "sandbox", "sched", "session", "sharedcache", "stagelog", "ui"},
	// mc watch: what an edit affects, and the rebuild loop over pipeline.
	"watch": {"errkind", "event", "graph", "lang", "pipeline", "sched", "session", "stagelog", "ui"},
	// Show and serve.
	"ui":      {"event"},
	"profile": {"event"},
	"ghapi":   {},
	"server":  {"errkind", "event", "ghapi", "internal/sqlschema"},
	// The command: flags and wiring over all of the above.
	"cmd/mc": {"cachegc", "cas", "completion", "errkind", "event", "explain", "graph", "helptext", "lang", "pipeline", "queryout", "runner", "sandbox", "scaffold", "server", "session", "stagelog", "starfmt", "ui", "vcs", "watch"},
	// Test components and benchmarks.
	"internal/ec2double":    {},
	"internal/githubdouble": {},
	"internal/oauthdouble":  {},
	"internal/testminio":    {"internal/syncbuf"},
	"internal/testregistry": {"internal/syncbuf"},
	"bench/gen":             {},
	"bench/s3get":           {},
	"bench/servebench":      {},
	"bench/runners":         {"cas", "internal/ec2double", "runner"},
}

// Starlark values never leave lang and builtins.
var starlarkOK = []string{"lang", "builtins"}

// packages finds every directory of the module holding non-test Go code.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "examples") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(path))
			pkgs[dir] = append(pkgs[dir], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestDependencyDirection(t *testing.T) {
	pkgs := packages(t)
	for pkg := range allowed {
		if _, ok := pkgs[pkg]; !ok {
			t.Errorf("deps_test lists %s, which has no Go code: remove it", pkg)
		}
	}
	var names []string
	for pkg := range pkgs {
		names = append(names, pkg)
	}
	sort.Strings(names)
	for _, pkg := range names {
		ok, listed := allowed[pkg]
		if !listed {
			t.Errorf("package %s is not in deps_test.go's map: add it with the mc packages it may import", pkg)
			continue
		}
		used := map[string]bool{}
		for _, f := range pkgs[pkg] {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				if strings.HasPrefix(path, "go.starlark.net") && !slices.Contains(starlarkOK, pkg) {
					t.Errorf("%s imports %s: Starlark belongs to lang and builtins only", f, path)
				}
				dep, isMC := strings.CutPrefix(path, module)
				if !isMC {
					continue
				}
				used[dep] = true
				if !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s: %s may import only %v", f, path, pkg, ok)
				}
			}
		}
		for _, dep := range ok {
			if !used[dep] {
				t.Errorf("deps_test allows %s to import %s, which it does not: remove the edge", pkg, dep)
			}
		}
	}
}
