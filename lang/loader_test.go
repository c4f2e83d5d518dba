package lang

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

func TestResolveLoad(t *testing.T) {
	for _, tt := range []struct{ spec, from, want, err string }{
		{"//tools/go.star", "a/BUILD.mc", "tools/go.star", ""},
		{"//tools:go.star", "a/BUILD.mc", "tools/go.star", ""},
		{"//:defs.star", "a/BUILD.mc", "defs.star", ""},
		{"//defs.star", "a/BUILD.mc", "defs.star", ""},
		{":defs.star", "a/b/BUILD.mc", "a/b/defs.star", ""},
		{"defs.star", "a/BUILD.mc", "a/defs.star", ""},
		{":lib/defs.star", "BUILD.mc", "lib/defs.star", ""},
		{":x.star", "tools/go.star", "tools/x.star", ""}, // relative to the .star file's directory
		{"//tools/go.bzl", "BUILD.mc", "", "only .star files can be loaded"},
		{"//a/../b.star", "BUILD.mc", "", `invalid label "//a/../b.star": package path must not contain '.' or '..' components`},
		{"@repo//x.star", "BUILD.mc", "", `invalid label "@repo//x.star": external repositories (@repo) are not supported`},
		{"", "BUILD.mc", "", `invalid label "": empty label`},
	} {
		got, err := ResolveLoad(tt.spec, tt.from)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ResolveLoad(%q, %q) error = %v, want %s", tt.spec, tt.from, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveLoad(%q, %q) = %q, %v; want %q", tt.spec, tt.from, got, err, tt.want)
		}
	}
}

// countingPredeclared returns a predeclared environment with count(), which
// counts calls: modules call it at top level to show how often they run.
func countingPredeclared(n *atomic.Int32) starlark.StringDict {
	return starlark.StringDict{
		"count": starlark.NewBuiltin("count", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			n.Add(1)
			return starlark.None, nil
		}),
	}
}

func TestLoaderRunsEachModuleOnce(t *testing.T) {
	files := map[string]string{
		"lib/base.star": "count()\nbase = 1\n_private = 2\n",
		"lib/mid.star":  "load(':base.star', 'base')\ncount()\nmid = base + 1\n",
	}
	const n = 64
	for i := range n {
		files[fmt.Sprintf("p%d/BUILD.mc", i)] = "load('//lib/mid.star', 'mid')\nload('//lib/base.star', 'base')\nx = mid + base\n"
	}
	root := writeTree(t, files)
	var runs atomic.Int32
	l := NewLoader(root, countingPredeclared(&runs), nil)
	var wg sync.WaitGroup
	results := make([]*Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = l.ExecFile(context.Background(), fmt.Sprintf("p%d/BUILD.mc", i), nil)
		}()
	}
	wg.Wait()
	if got := runs.Load(); got != 2 {
		t.Errorf("modules ran %d times, want 2 (once each)", got)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		r := results[i]
		if got := r.Globals["x"]; got != starlark.MakeInt(3) {
			t.Errorf("x = %v, want 3", got)
		}
		self := fmt.Sprintf("p%d/BUILD.mc", i)
		want := map[string]cas.Digest{
			self:            cas.FromBytes([]byte(files[self])),
			"lib/base.star": cas.FromBytes([]byte(files["lib/base.star"])),
			"lib/mid.star":  cas.FromBytes([]byte(files["lib/mid.star"])),
		}
		if !reflect.DeepEqual(r.Files, want) {
			t.Errorf("Files = %v, want %v", r.Files, want)
		}
		if got := r.LoadedModules(self); !reflect.DeepEqual(got, []string{"lib/base.star", "lib/mid.star"}) {
			t.Errorf("LoadedModules = %v", got)
		}
	}
}

func TestLoaderParallelCycle(t *testing.T) {
	// As in starlark-go's TestThreadLoad_ParallelCycle: two goroutines enter
	// the cycle a -> c -> b -> a at different points.
	root := writeTree(t, map[string]string{
		"a.star":     "load('//c.star', 'c')\na = 1\n",
		"b.star":     "load('//a.star', 'a')\nb = 1\n",
		"c.star":     "load('//b.star', 'b')\nc = 1\n",
		"x/BUILD.mc": "load('//b.star', 'b')\n",
		"y/BUILD.mc": "load('//c.star', 'c')\n",
	})
	valid := map[string]bool{
		"load cycle: //a.star -> //c.star -> //b.star -> //a.star": true,
		"load cycle: //b.star -> //a.star -> //c.star -> //b.star": true,
		"load cycle: //c.star -> //b.star -> //a.star -> //c.star": true,
	}
	for range 20 {
		l := NewLoader(root, nil, nil)
		errs := make(chan error, 2)
		for _, f := range []string{"x/BUILD.mc", "y/BUILD.mc"} {
			go func() {
				_, err := l.ExecFile(context.Background(), f, nil)
				errs <- err
			}()
		}
		for range 2 {
			select {
			case err := <-errs:
				var le *Error
				if !errors.As(err, &le) || !valid[le.Msg] {
					t.Fatalf("got %v, want a load cycle through a, b and c", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("deadlock")
			}
		}
	}
}

func TestExecErrors(t *testing.T) {
	root := writeTree(t, map[string]string{
		"syntax/BUILD.mc":  "x = (\n",
		"resolve/BUILD.mc": "y = undefined_name\n",
		"eval/BUILD.mc":    "def f():\n    return {}[1]\nf()\n",
		"panic/BUILD.mc":   "boom()\n",
		"set/BUILD.mc":     "s = set([1, 2])\n",
	})
	l := NewLoader(root, starlark.StringDict{
		"boom": starlark.NewBuiltin("boom", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			var m map[string]int
			m["x"] = 1 // a nil map write: a real Go panic
			return starlark.None, nil
		}),
	}, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		file string
		want string
		bt   []graph.Pos
	}{
		{"syntax/BUILD.mc", "syntax/BUILD.mc:2:1: got end of file, want primary expression", nil},
		{"resolve/BUILD.mc", "resolve/BUILD.mc:1:5: undefined: undefined_name", nil},
		{"eval/BUILD.mc", "eval/BUILD.mc:2:14: key 1 not in dict", []graph.Pos{{File: "eval/BUILD.mc", Line: 3, Col: 2}, {File: "eval/BUILD.mc", Line: 2, Col: 14}}},
	} {
		_, err := l.ExecFile(ctx, tt.file, nil)
		var le *Error
		if !errors.As(err, &le) {
			t.Errorf("%s: got %v, want *Error", tt.file, err)
			continue
		}
		if le.Error() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.file, le, tt.want)
		}
		if !reflect.DeepEqual(le.Backtrace, tt.bt) && !(len(le.Backtrace) == 0 && len(tt.bt) == 0) {
			t.Errorf("%s: backtrace %v, want %v", tt.file, le.Backtrace, tt.bt)
		}
	}
	_, err := l.ExecFile(ctx, "panic/BUILD.mc", nil)
	var ie *InternalError
	if !errors.As(err, &ie) || !strings.Contains(ie.Error(), "internal error (mc bug) while evaluating panic/BUILD.mc: assignment to entry in nil map") {
		t.Errorf("panic: got %v", err)
	}
	if _, err := l.ExecFile(ctx, "set/BUILD.mc", nil); err != nil {
		t.Errorf("set() should be allowed: %v", err)
	}
	if _, err := l.ExecFile(ctx, "missing/BUILD.mc", nil); err == nil || !strings.Contains(err.Error(), "reading missing/BUILD.mc") {
		t.Errorf("missing file: got %v", err)
	}
}

func TestErrorTraceback(t *testing.T) {
	e := &Error{
		Pos: graph.Pos{File: "m.star", Line: 2, Col: 3}, Msg: "bad",
		Backtrace: []graph.Pos{{File: "BUILD.mc", Line: 1, Col: 2}, {File: "m.star", Line: 2, Col: 3}},
	}
	want := "m.star:2:3: bad\nTraceback (outermost first):\n  BUILD.mc:1:2\n  m.star:2:3"
	if got := e.Traceback(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (&Error{Msg: "no position"}).Error(); got != "no position" {
		t.Errorf("got %q", got)
	}
}
