package builtins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

func TestParallelPackagesShareModules(t *testing.T) {
	const n = 300
	files := map[string]string{
		"tools/base.star": "print(\"base loaded\")\nprefix = \"out/\"\n",
		"tools/defs.star": "load(\":base.star\", \"prefix\")\ndef gen(name):\n    stage(name = name, cmd = \"touch \" + prefix + name, outs = [prefix + name])\n",
	}
	var pkgs []string
	for i := range n {
		p := fmt.Sprintf("p%03d", i)
		pkgs = append(pkgs, p)
		files[p+"/BUILD.mc"] = fmt.Sprintf("load(\"//tools/defs.star\", \"gen\")\ngen(name = \"t%d\")\n", i)
	}
	e := evaluator(t, writeTree(t, files), nil)
	var out bytes.Buffer
	e.SetPrintOutput(&out)
	got, err := e.Packages(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		want := fmt.Sprintf("p%03d", i)
		if p.Name != want || len(p.Targets) != 1 || p.Targets[0].Label != (graph.Label{Pkg: want, Name: fmt.Sprintf("t%d", i)}) {
			t.Fatalf("package %d = %+v, want //%s:t%d", i, p, want, i)
		}
		if !reflect.DeepEqual(p.Targets[0].Outs, []string{fmt.Sprintf("out/t%d", i)}) {
			t.Fatalf("package %d outs = %v", i, p.Targets[0].Outs)
		}
	}
	if got, want := out.String(), "DEBUG: tools/base.star:1:6: base loaded\n"; got != want {
		t.Errorf("print output %q, want %q (each module runs once)", got, want)
	}
}

func TestParallelLoadCycle(t *testing.T) {
	files := map[string]string{
		"a.star": "load(\"//b.star\", \"b\")\na = 1\n",
		"b.star": "load(\"//a.star\", \"a\")\nb = 1\n",
	}
	var pkgs []string
	for i := range 40 {
		p := fmt.Sprintf("p%d", i)
		pkgs = append(pkgs, p)
		// Half start from a, half from b, so that goroutines meet in the cycle.
		files[p+"/BUILD.mc"] = fmt.Sprintf("load(\"//%s.star\", \"%s\")\n", "ab"[i%2:i%2+1], "ab"[i%2:i%2+1])
	}
	e := evaluator(t, writeTree(t, files), nil)
	done := make(chan error, 1)
	go func() {
		_, err := e.Packages(context.Background(), pkgs)
		done <- err
	}()
	select {
	case err := <-done:
		var le *lang.Error
		if !errors.As(err, &le) || !strings.Contains(le.Msg, "load cycle: //") {
			t.Fatalf("got %v, want a load cycle error", err)
		}
		cycles := map[string]bool{"load cycle: //a.star -> //b.star -> //a.star": true, "load cycle: //b.star -> //a.star -> //b.star": true}
		if !cycles[le.Msg] {
			t.Errorf("got %q, want the a/b cycle", le.Msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock: Packages did not return")
	}
}

func TestPanicBecomesError(t *testing.T) {
	root := writeTree(t, map[string]string{
		"boom.star":  "x = boom()\n",
		"a/BUILD.mc": "boom()\n",
		"b/BUILD.mc": "load(\"//boom.star\", \"x\")\n",
		"c/BUILD.mc": "load(\"//boom.star\", \"x\")\n",
	})
	e := evaluator(t, root, nil)
	predeclared := starlark.StringDict{
		"boom": starlark.NewBuiltin("boom", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			panic("kaboom")
		}),
	}
	e.loader = lang.NewLoader(root, predeclared, nil)
	for _, pkgs := range [][]string{{"a"}, {"b", "c"}} {
		_, err := e.Packages(context.Background(), pkgs)
		var ie *lang.InternalError
		if !errors.As(err, &ie) || ie.Value != "kaboom" {
			t.Errorf("%v: got %v, want an InternalError for the panic", pkgs, err)
		}
	}
}

func TestCancel(t *testing.T) {
	root := writeTree(t, map[string]string{
		"slow/BUILD.mc": "def spin():\n    for i in range(1000000000):\n        pass\nspin()\n",
		"ok/BUILD.mc":   "",
	})
	e := evaluator(t, root, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Packages(ctx, []string{"ok"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: got %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Packages(ctx, []string{"slow"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

func TestPrint(t *testing.T) {
	e := evaluator(t, writeTree(t, map[string]string{"a/BUILD.mc": "print(\"hello\", 1)\n"}), nil)
	var out bytes.Buffer
	e.SetPrintOutput(&out)
	if _, err := e.Packages(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "DEBUG: a/BUILD.mc:1:6: hello 1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFindPackages(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.mc":                  `workspace(name = "w", ignore = ["node_modules", "build/tmp"])`,
		"BUILD.mc":                      "",
		"svc/api/BUILD.mc":              "",
		"svc/api/internal/BUILD.mc":     "",
		"svc/web/BUILD.mc":              "",
		"svc/web/node_modules/BUILD.mc": "",
		"svc/nobuild/x.go":              "",
		"build/tmp/BUILD.mc":            "",
		"build/keep/BUILD.mc":           "",
		".git/BUILD.mc":                 "",
		"svc/.hidden/BUILD.mc":          "",
		"mc-out/svc/BUILD.mc":           "",
		"lib/BUILD.mc/x":                "", // a directory named BUILD.mc is not a build file
	})
	e := evaluator(t, root, nil)
	ctx := context.Background()
	tests := []struct {
		under string
		want  []string
	}{
		{"", []string{"", "build/keep", "svc/api", "svc/api/internal", "svc/web"}},
		{"svc", []string{"svc/api", "svc/api/internal", "svc/web"}},
		{"svc/api", []string{"svc/api", "svc/api/internal"}},
		{"svc/nobuild", nil},
		{"build/tmp", nil},
	}
	for _, tt := range tests {
		t.Run("under "+tt.under, func(t *testing.T) {
			got, err := e.FindPackages(ctx, tt.under)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := e.FindPackages(ctx, "nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FindPackages(nope): got %v, want ErrNotExist", err)
	}
	if _, err := e.FindPackages(ctx, "../x"); err == nil {
		t.Error("FindPackages(../x): want an error")
	}

	for pkg, want := range map[string]bool{
		"": true, "svc/api": true, "svc/api/internal": true, "svc": false, "svc/web/node_modules": false,
		"build/tmp": false, "build/keep": true, ".git": false, "svc/.hidden": false, "mc-out/svc": false,
		"lib": false, "../x": false, "svc/api/": false,
	} {
		if got := e.IsPackage(pkg); got != want {
			t.Errorf("IsPackage(%q) = %v, want %v", pkg, got, want)
		}
	}
}

func TestIsSourceFile(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.mc":       `workspace(name = "w", ignore = ["*.log", "svc/secret"])`,
		"svc/BUILD.mc":       "",
		"svc/main.go":        "",
		"svc/sub/x.go":       "",
		"svc/debug.log":      "",
		"svc/secret/key":     "",
		"svc/.config/a.yaml": "",
		"mc-out/svc/out":     "",
	})
	if err := os.Symlink("main.go", filepath.Join(root, "svc/link.go")); err != nil {
		t.Fatal(err)
	}
	e := evaluator(t, root, nil)
	for _, tt := range []struct {
		pkg, name string
		want      bool
	}{
		{"svc", "main.go", true},
		{"svc", "sub/x.go", true},
		{"svc", "link.go", true},
		{"svc", ".config/a.yaml", true},
		{"svc", "sub", false},
		{"svc", "missing.go", false},
		{"svc", "debug.log", false},
		{"svc", "secret/key", false},
		{"svc", "../WORKSPACE.mc", false},
		{"", "mc-out/svc/out", false},
		{"", "WORKSPACE.mc", true},
	} {
		if got := e.IsSourceFile(tt.pkg, tt.name); got != tt.want {
			t.Errorf("IsSourceFile(%q, %q) = %v, want %v", tt.pkg, tt.name, got, tt.want)
		}
	}
}

func TestGlobInBuild(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.mc":   `workspace(name = "w", ignore = ["vendor"])`,
		"p/a.go":         "",
		"p/a_test.go":    "",
		"p/x/b.go":       "",
		"p/x/y/c.go":     "",
		"p/vendor/v.go":  "",
		"p/.cache/h.go":  "",
		"p/sub/BUILD.mc": "",
		"p/sub/s.go":     "",
		"p/BUILD.mc": `
filegroup(name = "all_go", srcs = glob(["**/*.go"]))
filegroup(name = "top", srcs = glob(["*.go"], exclude = ["*_test.go"]))
filegroup(name = "none", srcs = glob(["*.rs"], allow_empty = True))
filegroup(name = "two", srcs = glob(["x/*.go", "x/**/c.go"]))
`,
	})
	pkgs, err := evaluator(t, root, nil).Packages(context.Background(), []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"all_go": {"a.go", "a_test.go", "x/b.go", "x/y/c.go"},
		"top":    {"a.go"},
		"none":   nil,
		"two":    {"x/b.go", "x/y/c.go"},
	}
	for _, tg := range pkgs[0].Targets {
		var got []string
		for _, l := range tg.Srcs {
			if l.Pkg != "p" {
				t.Errorf("%s: label %v outside the package", tg.Label, l)
			}
			got = append(got, l.Name)
		}
		if !reflect.DeepEqual(got, want[tg.Label.Name]) {
			t.Errorf("%s: got %q, want %q", tg.Label.Name, got, want[tg.Label.Name])
		}
	}
}
