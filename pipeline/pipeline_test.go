package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sandbox"
)

type countSink struct{ started int }

func (c *countSink) Event(e event.Event) {
	if e.Type == event.StageStarted {
		c.started++
	}
}

// TestEvaluateOnceBuildTwice drives the API mc watch uses: one Open, one
// Evaluate, two Runs against the same graph (the second finds everything
// cached), then Reevaluate after a BUILD.mc edit and a
// Run that builds the changed stage.
func TestEvaluateOnceBuildTwice(t *testing.T) {
	ws := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("WORKSPACE.mc", `workspace(name = "pipe")`+"\n")
	write("p/BUILD.mc", `stage(name = "x", cmd = "echo one > x.txt", outs = ["x.txt"])`+"\n")
	var stderr bytes.Buffer
	env := Env{Stdout: &stderr, Stderr: &stderr, Dir: ws, Getenv: func(k string) (string, bool) {
		if k == "PATH" {
			return os.LookupEnv(k)
		}
		return "", false
	}}
	ctx := context.Background()
	p, err := Open(ctx, env, Options{CacheDir: filepath.Join(t.TempDir(), "cache"), Jobs: 2, Sandbox: sandbox.SandboxRequired})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	ev, err := p.Evaluate(ctx, []string{"//..."})
	if err != nil {
		t.Fatal(err)
	}
	roots, err := p.Select(ctx, ev, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0] != (graph.Label{Pkg: "p", Name: "x"}) {
		t.Fatalf("roots = %v, want [//p:x]", roots)
	}
	run := func(ev *Evaluation, wantBuilt, wantCached int, wantOut string) {
		t.Helper()
		var sink countSink
		res, err := p.Run(ctx, ev.Graph, roots, RunOptions{Sink: &sink})
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		if res.Report.Built != wantBuilt || res.Report.Cached != wantCached || res.OutErr != nil || !res.Isolated {
			t.Fatalf("built %d cached %d (want %d, %d), out error %v, isolated %v\n%s", res.Report.Built, res.Report.Cached,
				wantBuilt, wantCached, res.OutErr, res.Isolated, stderr.String())
		}
		if sink.started != wantBuilt {
			t.Errorf("%d stage_started events, want %d", sink.started, wantBuilt)
		}
		b, err := os.ReadFile(filepath.Join(ws, "mc-out", "p", "x.txt"))
		if err != nil || string(b) != wantOut {
			t.Errorf("mc-out/p/x.txt = %q, %v; want %q", b, err, wantOut)
		}
	}
	run(ev, 1, 0, "one\n")
	run(ev, 0, 1, "one\n")
	write("p/BUILD.mc", `stage(name = "x", cmd = "echo two > x.txt", outs = ["x.txt"])`+"\n")
	ev2, err := p.Reevaluate(ctx, ev, []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	run(ev2, 1, 0, "two\n")
	// The old evaluation still describes the old command: its result is
	// in the cache.
	run(ev, 0, 1, "one\n")
}
