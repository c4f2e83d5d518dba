package lang

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/stdlib"
)

func TestResolveLoadStdlib(t *testing.T) {
	for _, tt := range []struct{ spec, from, want, err string }{
		{"@mc//go.star", "a/BUILD.mc", "@mc//go.star", ""},
		{"@mc//:go.star", "BUILD.mc", "@mc//go.star", ""},
		{":label.star", "@mc//go.star", "@mc//label.star", ""}, // relative inside the library stays in it
		{"label.star", "@mc//go.star", "@mc//label.star", ""},
		{"//tools/x.star", "@mc//go.star", "", "a module of mc's standard library can load only its own modules (@mc//NAME.star)"},
		{"@other//x.star", "@mc//go.star", "", "a module of mc's standard library can load only its own modules (@mc//NAME.star)"},
		{"@mc//sub/go.star", "BUILD.mc", "", `invalid label "@mc//sub/go.star": mc's standard library is loaded as @mc//NAME.star`},
		{"@mc//go.bzl", "BUILD.mc", "", `invalid label "@mc//go.bzl": mc's standard library is loaded as @mc//NAME.star`},
		{"@mc//", "BUILD.mc", "", `invalid label "@mc//": mc's standard library is loaded as @mc//NAME.star`},
	} {
		got, err := ResolveLoad(tt.spec, tt.from)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("ResolveLoad(%q, %q) error = %v, want %s...", tt.spec, tt.from, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveLoad(%q, %q) = %q, %v; want %q", tt.spec, tt.from, got, err, tt.want)
		}
	}
}

// The library's modules load from the binary, not the workspace: a file of
// the same name in the workspace is not what runs, and the result's Files
// hold only workspace files (their digests are what the package cache
// checks; the library is accounted for by StdlibDigest).
func TestLoaderStdlib(t *testing.T) {
	files := map[string]string{
		"p/BUILD.mc": `load("@mc//label.star", "label_path")
load("//defs.star", "mine")
rel = label_path(":gen.py")
abs = label_path("//tools/gen:gen.py")
short = label_path("//tools/gen")
own = mine()
`,
		"defs.star":        "def mine():\n    return 'user macro'\n",
		"@mc/label.star":   "fail('the workspace copy ran')\n",
		"mc/label.star":    "fail('the workspace copy ran')\n",
		"label.star":       "fail('the workspace copy ran')\n",
		"@mc:/label.star":  "fail('the workspace copy ran')\n",
		"p/@mc/label.star": "fail('the workspace copy ran')\n",
	}
	root := writeTree(t, files)
	res, err := NewLoader(root, nil, nil).ExecFile(context.Background(), "p/BUILD.mc", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"rel":   "gen.py",
		"abs":   "$MC_WORKSPACE/tools/gen/gen.py",
		"short": "$MC_WORKSPACE/tools/gen/gen",
		"own":   "user macro",
	} {
		if got, ok := starlark.AsString(res.Globals[name]); !ok || got != want {
			t.Errorf("%s = %v, want %q", name, res.Globals[name], want)
		}
	}
	want := map[string]cas.Digest{
		"p/BUILD.mc": cas.FromBytes([]byte(files["p/BUILD.mc"])),
		"defs.star":  cas.FromBytes([]byte(files["defs.star"])),
	}
	if !reflect.DeepEqual(res.Files, want) {
		t.Errorf("Files = %v, want only the workspace files %v", res.Files, want)
	}
}

func TestLoaderStdlibErrors(t *testing.T) {
	root := writeTree(t, map[string]string{
		"missing/BUILD.mc": "load('@mc//nope.star', 'x')\n",
		"inside/BUILD.mc":  "load('@mc//label.star', 'label_path')\n\nlabel_path(1)\n",
		"name/BUILD.mc":    "load('@mc//go.star', 'no_such_macro')\n",
	})
	l := NewLoader(root, stubs(), nil)
	for _, tt := range []struct {
		file, want string
		bt         []graph.Pos
	}{
		{"missing/BUILD.mc", `missing/BUILD.mc:1:1: cannot load "@mc//nope.star": no such module in mc's standard library (it has deploy.star, go.star, gobuild.star, image.star, label.star, node.star, python.star)`, nil},
		// An error inside a library macro points into the library, with the
		// user's call site in the backtrace.
		{"inside/BUILD.mc", "@mc//label.star:", []graph.Pos{{File: "inside/BUILD.mc", Line: 3, Col: 11}}},
		{"name/BUILD.mc", "name/BUILD.mc:1:1: load: name no_such_macro not found in module @mc//go.star", nil},
	} {
		_, err := l.ExecFile(context.Background(), tt.file, nil)
		var le *Error
		if !errors.As(err, &le) {
			t.Errorf("%s: got %v, want *Error", tt.file, err)
			continue
		}
		if tt.bt != nil && !strings.HasSuffix(le.Error(), " (in a macro called at inside/BUILD.mc:3:11)") {
			t.Errorf("%s: got %q, want it to name the call site", tt.file, le)
		}
		if !strings.HasPrefix(le.Error(), tt.want) {
			t.Errorf("%s: got %q, want %q...", tt.file, le, tt.want)
		}
		if tt.bt != nil && (len(le.Backtrace) < 2 || le.Backtrace[0] != tt.bt[0] || le.Backtrace[len(le.Backtrace)-1].File != "@mc//label.star") {
			t.Errorf("%s: backtrace %v, want it to start at %v and end in @mc//label.star", tt.file, le.Backtrace, tt.bt[0])
		}
	}
}

// stubs are the builtins the library's macros call, failing when called.
func stubs() starlark.StringDict {
	stub := starlark.NewBuiltin("stub", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return nil, errors.New("called at load time")
	})
	return starlark.StringDict{"stage": stub, "image": stub, "filegroup": stub, "glob": stub}
}

// Every module of the library parses and runs in mc's dialect (with the
// builtins it calls stubbed: it must not call them at load time).
func TestStdlibModulesLoad(t *testing.T) {
	l := NewLoader(t.TempDir(), stubs(), nil)
	if len(stdlib.Names()) < 5 {
		t.Fatalf("stdlib has %v, want go, python, node, image, deploy and label", stdlib.Names())
	}
	for _, n := range stdlib.Names() {
		m, err := l.get(context.Background(), new(loadChain), StdlibPrefix+n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if len(m.globals) == 0 {
			t.Errorf("%s exports nothing", n)
		}
	}
	if StdlibDigest() == "" || StdlibDigest() != stdlib.Digest() {
		t.Errorf("StdlibDigest = %q", StdlibDigest())
	}
}
