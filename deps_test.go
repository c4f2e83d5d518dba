package mc_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mc-build/mc/"

// allowed lists, for each package, the mc packages it may import: the one
// direction of dependencies of the architecture (README). A new import that
// breaks it fails here, not in review.
var allowed = map[string][]string{
	"cas":                {"internal/fdio", "internal/wire"},
	"graph":              {"cas"},
	"lang":               {"graph", "cas", "stdlib"},
	"stdlib":             {},
	"builtins":           {"lang", "graph", "cas", "oci"},
	"exec":               {"graph", "cas", "oci", "exec/runc", "internal/fdio", "internal/wire", "confine"},
	"ui":                 {"exec"},
	"vcs":                {},
	"profile":            {"exec"},
	"cmd/mc":             {"builtins", "lang", "graph", "cas", "cas/s3", "exec", "ui", "vcs", "profile", "oci", "server", "runner", "exec/runc"},
	"runner":             {"exec", "graph", "cas", "cas/s3"},
	"internal/ec2double": {},
	"cas/s3":             {"cas"},
	"oci":                {},
	"exec/runc":          {"confine"},
	"confine":            {},
	"internal/syncbuf":   {},
	"internal/fdio":      {},
	"internal/wire":      {},
	"server":             {"exec", "graph", "cas"},
}

// Starlark values never leave lang and builtins.
var starlarkOK = []string{"lang", "builtins"}

func TestDependencyDirection(t *testing.T) {
	for pkg, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(filepath.FromSlash(pkg), "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("package %s: no Go files (%v)", pkg, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
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
				if dep, isMC := strings.CutPrefix(path, module); isMC && !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s: %s may import only %v", f, path, pkg, ok)
				}
			}
		}
	}
}
