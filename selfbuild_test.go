package mc_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// notSelfBuilt are the packages the root BUILD.mc does not declare: test
// components, benchmarks, cmd/mc (its go_binary names its imports) and
// stdlib/gobuild (the builder: //:go.builder compiles it from the source
// embedded in stdlib, and scripts/test runs its tests).
var notSelfBuilt = []string{"bench/gen", "bench/runners", "bench/s3get", "bench/servebench", "cmd/mc",
	"internal/ec2double", "internal/oauthdouble", "internal/testminio", "internal/testregistry", "stdlib/gobuild"}

var mcPackageCall = regexp.MustCompile(`(?m)^mc_package\(`)
var depsAttr = regexp.MustCompile(`(?s)\bdeps = \[(.*?)\]`)
var quoted = regexp.MustCompile(`"([^"]+)"`)

// TestSelfBuildMatchesImports keeps the root BUILD.mc, where mc builds
// itself package by package, true to the code: every package is declared,
// with exactly the mc packages it imports as deps. A missing edge would
// fail the package's stage in its sandbox; an extra one would rebuild it
// for nothing. Either way it is caught here first.
func TestSelfBuildMatchesImports(t *testing.T) {
	build, err := os.ReadFile("BUILD.mc")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string][]string{}
	for _, at := range mcPackageCall.FindAllStringIndex(string(build), -1) {
		call := balanced(string(build[at[1]:]))
		path := quoted.FindStringSubmatch(call)
		if path == nil {
			t.Fatalf("BUILD.mc: mc_package(%s): no package path", call)
		}
		var deps []string
		if d := depsAttr.FindStringSubmatch(call); d != nil {
			for _, q := range quoted.FindAllStringSubmatch(d[1], -1) {
				deps = append(deps, q[1])
			}
		}
		slices.Sort(deps)
		declared[path[1]] = deps
	}
	if len(declared) < 10 {
		t.Fatalf("found %d mc_package calls in BUILD.mc, want every package of mc", len(declared))
	}
	for _, pkg := range goPackages(t) {
		if slices.Contains(notSelfBuilt, pkg) {
			continue
		}
		deps, ok := declared[pkg]
		if !ok {
			t.Errorf("BUILD.mc has no mc_package(%q, ...)", pkg)
			continue
		}
		if got := mcImports(t, pkg); !slices.Equal(deps, got) {
			t.Errorf("BUILD.mc: mc_package(%q) has deps %v; the package imports %v", pkg, deps, got)
		}
		delete(declared, pkg)
	}
	for pkg := range declared {
		t.Errorf("BUILD.mc declares mc_package(%q), which is not a package of mc", pkg)
	}
}

var toolchainCall = regexp.MustCompile(`(?m)^go_toolchain\(`)
var packagesAttr = regexp.MustCompile(`(?s)\bpackages = \[(.*?)\]`)
var testPackage = regexp.MustCompile(`(?s)^\s*"([^"]+)",.*\btest = True`)

// TestSelfBuildToolchainPackages keeps go_toolchain's packages, what the
// self-build compiles from outside the module, true to the code: exactly
// the packages that mc's self-built packages and the tests it runs import
// from outside the standard library. A missing one fails a compile in its
// sandbox; an extra one is compiled for nothing.
func TestSelfBuildToolchainPackages(t *testing.T) {
	build, err := os.ReadFile("BUILD.mc")
	if err != nil {
		t.Fatal(err)
	}
	at := toolchainCall.FindIndex(build)
	if at == nil {
		t.Fatal("BUILD.mc has no go_toolchain(...)")
	}
	attr := packagesAttr.FindSubmatch([]byte(balanced(string(build[at[1]:]))))
	if attr == nil {
		t.Fatal("BUILD.mc: go_toolchain(...) has no packages = [...]")
	}
	var declared []string
	for _, q := range quoted.FindAllSubmatch(attr[1], -1) {
		declared = append(declared, string(q[1]))
	}
	tested := map[string]bool{}
	for _, at := range mcPackageCall.FindAllStringIndex(string(build), -1) {
		if m := testPackage.FindStringSubmatch(balanced(string(build[at[1]:]))); m != nil {
			tested[m[1]] = true
		}
	}
	if len(tested) < 10 {
		t.Fatalf("found %d mc_package calls with test = True, want the packages whose tests run here", len(tested))
	}
	want := map[string]bool{}
	for _, pkg := range append(goPackages(t), "cmd/mc") {
		if slices.Contains(notSelfBuilt, pkg) && pkg != "cmd/mc" {
			continue
		}
		for _, p := range imports(t, pkg, tested[pkg]) {
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && !strings.HasPrefix(p, module) {
				want[p] = true
			}
		}
	}
	var need []string
	for p := range want {
		need = append(need, p)
	}
	slices.Sort(need)
	slices.Sort(declared)
	if !slices.Equal(declared, need) {
		t.Errorf("BUILD.mc: go_toolchain packages are\n\t%s\nthe self-built code imports\n\t%s", strings.Join(declared, "\n\t"), strings.Join(need, "\n\t"))
	}
}

// balanced returns s up to the parenthesis closing the one just before it.
func balanced(s string) string {
	depth := 1
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return s[:i]
			}
		}
	}
	return s
}

// goPackages lists the module's directories with non-test Go code.
func goPackages(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "examples" || name == "mc-out") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(p))
			if dir != "." && !slices.Contains(out, dir) {
				out = append(out, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mcImports returns the mc packages pkg's non-test files import, sorted.
func mcImports(t *testing.T, pkg string) []string {
	t.Helper()
	var out []string
	for _, p := range imports(t, pkg, false) {
		if dep, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out, dep) {
			out = append(out, dep)
		}
	}
	slices.Sort(out)
	return out
}

// imports returns every import path of pkg's Go files (with tests: its
// _test.go files too), repeats included.
func imports(t *testing.T, pkg string, tests bool) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(filepath.FromSlash(pkg), "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") && !tests {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			out = append(out, strings.Trim(imp.Path.Value, `"`))
		}
	}
	return out
}
