package builtins

import (
	"context"
	"reflect"
	"testing"
)

// TestForget: one Evaluator kept across edits (mc watch) evaluates again
// exactly the packages whose files it was told changed: a BUILD.mc edit
// re-evaluates its package, a .star edit the packages loading it
// (transitively), and a .star that failed is retried. Without Forget the
// same edits go unseen, which is what shows the memo it clears is real.
func TestForget(t *testing.T) {
	root := writeTree(t, map[string]string{
		"tools/base.star": "suffix = \".txt\"\n",
		"tools/defs.star": "load(\":base.star\", \"suffix\")\ndef gen(name):\n    stage(name = name, cmd = \"touch \" + name + suffix, outs = [name + suffix])\n",
		"a/BUILD.mc":      "load(\"//tools/defs.star\", \"gen\")\ngen(name = \"a\")\n",
		"b/BUILD.mc":      "stage(name = \"b\", cmd = \"touch b\", outs = [\"b\"])\n",
		"c/BUILD.mc":      "load(\"//tools/base.star\", \"suffix\")\nstage(name = \"c\", cmd = \"touch c\" + suffix, outs = [\"c\" + suffix])\n",
	})
	e := evaluator(t, root, newMemKV())
	c := &counter{n: map[string]int{}}
	e.onEval = c.hook
	all := []string{"a", "b", "c"}
	ctx := context.Background()
	eval := func(t *testing.T, forget []string) []string {
		t.Helper()
		c.mu.Lock()
		c.n = map[string]int{}
		c.mu.Unlock()
		e.Forget(forget)
		if _, err := e.Packages(ctx, all); err != nil {
			t.Fatal(err)
		}
		return c.evaluated()
	}
	if got := eval(t, nil); !reflect.DeepEqual(got, all) {
		t.Fatalf("first evaluation ran %v, want %v", got, all)
	}

	// Served from the package cache, which memoizes every file's digest.
	if got := eval(t, nil); got != nil {
		t.Fatalf("unchanged: ran %v", got)
	}

	writeFile(t, root, "b/BUILD.mc", "stage(name = \"b2\", cmd = \"touch b\", outs = [\"b\"])\n")
	if got := eval(t, nil); got != nil {
		t.Fatalf("without Forget an edit is not seen within one Evaluator, yet %v ran", got)
	}
	if got := eval(t, []string{"b/BUILD.mc"}); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("after a BUILD.mc edit: ran %v, want [b]", got)
	}

	writeFile(t, root, "tools/base.star", "suffix = \".out\"\n")
	if got := eval(t, []string{"tools/base.star"}); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("after editing a .star loaded by a (through defs.star) and c: ran %v, want [a c]", got)
	}
	pkgs, err := e.Packages(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := pkgs[0].Targets[0].Outs; !reflect.DeepEqual(got, []string{"a.out"}) {
		t.Errorf("a's outs = %v, want the edited module's [a.out]", got)
	}

	writeFile(t, root, "tools/defs.star", "this is not starlark\n")
	e.Forget([]string{"tools/defs.star"})
	if _, err := e.Packages(ctx, all); err == nil {
		t.Fatal("a broken defs.star evaluated without an error")
	}
	writeFile(t, root, "tools/defs.star", "def gen(name):\n    stage(name = name, cmd = \"touch \" + name, outs = [name])\n")
	if got := eval(t, []string{"tools/defs.star"}); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("after fixing defs.star: ran %v, want [a]", got)
	}
}
