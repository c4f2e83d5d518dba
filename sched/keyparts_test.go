package sched

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

// KeyParts, given the outputs of the dependencies, must compute exactly the
// preimage the scheduler used: `mc explain` relies on it to predict keys.
func TestKeyPartsMatchesScheduler(t *testing.T) {
	h := newSchedHarness(t)
	h.add("a", "echo a", "1")
	h.add("b", "echo b", "2", "a")
	c := h.add("c", "echo c", "3", "a", "b")
	// c takes one named output of a as well as all of b's.
	c.Inputs[0].Output = "out/a"
	rep, _ := h.run(2, false)
	sc, err := h.db.StatCache(context.Background(), h.root)
	if err != nil {
		t.Fatal(err)
	}
	outputs := func(d *graph.Action) []cas.Output { return rep.Outcomes[d].Result.Outputs }
	for _, a := range h.ag.Actions {
		t.Run(a.Label().String(), func(t *testing.T) {
			parts, inputs, err := KeyParts(a, h.root, "test", sc, outputs)
			if err != nil {
				t.Fatal(err)
			}
			want := rep.Outcomes[a]
			if parts.Digest() != want.Key {
				t.Errorf("key %s, scheduler's %s", parts.Digest().Short(), want.Key.Short())
			}
			if !reflect.DeepEqual(parts, want.Parts) {
				t.Errorf("parts\n got %+v\nwant %+v", parts, want.Parts)
			}
			if len(inputs) != len(a.Sources)+len(a.Deps) {
				t.Errorf("inputs %+v: want one per source and dep output", inputs)
			}
		})
	}
	t.Run("a source that cannot be read", func(t *testing.T) {
		a := h.ag.Actions[0]
		a.Sources = append(a.Sources, "p/missing.txt")
		_, _, err := KeyParts(a, h.root, "test", sc, outputs)
		if err == nil || !strings.Contains(err.Error(), "p/missing.txt") {
			t.Errorf("err = %v, want one naming p/missing.txt", err)
		}
	})
	t.Run("two different inputs at one path", func(t *testing.T) {
		b := h.ag.ByLabel[graph.Label{Pkg: "p", Name: "b"}]
		clash := func(d *graph.Action) []cas.Output {
			return []cas.Output{{Path: "p/b.txt", Digest: cas.FromBytes([]byte("other"))}}
		}
		_, _, err := KeyParts(b, h.root, "test", sc, clash)
		if err == nil || !strings.Contains(err.Error(), "two inputs at p/b.txt") {
			t.Errorf("err = %v", err)
		}
	})
}
