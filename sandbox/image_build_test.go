package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sched"
)

// imageJob is the job of image //app:img holding files.
func imageJob(files []sched.ImageFile, inputs ...sched.Input) *sched.Job {
	return &sched.Job{
		Label: graph.Label{Pkg: "app", Name: "img"}, Pkg: "app",
		Outs:   []string{"app/img.digest", "app/img.oci/"},
		Inputs: inputs,
		Build: &sched.ImageBuild{Files: files, Config: oci.Config{Entrypoint: []string{"/api"}, Platform: "linux/amd64"},
			Digest: "app/img.digest", Layout: "app/img.oci"},
	}
}

// builtImage checks the two outputs of an image job and returns the digest
// and the layout, materialized.
func builtImage(t *testing.T, h *harness, res *sched.Result) (string, string) {
	t.Helper()
	mustSucceed(t, h, res)
	if len(res.Outputs) != 2 || res.Outputs[0].Path != "app/img.digest" || res.Outputs[1].Path != "app/img.oci" || !res.Outputs[1].IsDir {
		t.Fatalf("outputs %+v, want app/img.digest and the directory app/img.oci", res.Outputs)
	}
	b, err := h.store.ReadBytes(res.Outputs[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if err := h.store.MaterializeTree(res.Outputs[1].Digest, layout, false); err != nil {
		t.Fatal(err)
	}
	d, err := oci.ReadDigest(layout)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != d {
		t.Errorf("digest file holds %q, the layout's image is %s", b, d)
	}
	return d, layout
}

func TestLocalImageBuild(t *testing.T) {
	build := func(t *testing.T, h *harness, base *sched.Input) *sched.Result {
		t.Helper()
		tree := t.TempDir()
		writeFile(t, filepath.Join(tree, "static", "index.html"), "<p>hi</p>")
		td, _, err := h.store.PutTree(tree, false)
		if err != nil {
			t.Fatal(err)
		}
		inputs := []sched.Input{
			h.input("app/out/api", "#!/bin/sh\necho api\n", true),
			h.input("app/app.conf", "port = 80\n", false),
			{Path: "app/web", Digest: td, IsTree: true},
		}
		files := []sched.ImageFile{{Dest: "/api", Src: "app/out/api"}, {Dest: "/etc/app.conf", Src: "app/app.conf"}, {Dest: "/srv", Src: "app/web"}}
		j := imageJob(files, inputs...)
		if base != nil {
			j.Inputs = append(j.Inputs, *base)
			j.Build.Base = base.Path
		}
		res, err := h.l.Run(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	h1 := newHarness(t, "direct")
	d1, layout := builtImage(t, h1, build(t, h1, nil))
	cfg, err := oci.ImageConfig(layout)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/api" || cfg.Platform != "linux/amd64" {
		t.Errorf("config %+v", cfg)
	}
	t.Run("the same inputs on another store give the same digest", func(t *testing.T) {
		h2 := newHarness(t, "direct")
		if d2, _ := builtImage(t, h2, build(t, h2, nil)); d2 != d1 {
			t.Errorf("digest %s, first %s", d2, d1)
		}
	})
	t.Run("on a base image among the inputs", func(t *testing.T) {
		bd, _, err := h1.store.PutTree(layout, false)
		if err != nil {
			t.Fatal(err)
		}
		base := &sched.Input{Path: "base/base.oci", Digest: bd, IsTree: true}
		d, _ := builtImage(t, h1, build(t, h1, base))
		if d == d1 {
			t.Error("the image on a base has the base's digest")
		}
	})
	t.Run("an input that is missing is the image's failure", func(t *testing.T) {
		j := imageJob([]sched.ImageFile{{Dest: "/x", Src: "app/nothing"}})
		res, err := h1.l.Run(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err == nil || !strings.Contains(res.Err.Error(), "building the image") {
			t.Errorf("result error %v, want a failure to build the image", res.Err)
		}
	})
	h1.checkNoSandbox()
}

// splitExec runs image jobs on a real executor and the rest on fakeExec.
type splitExec struct {
	images sched.Executor
	fake   *fakeExec
}

func (s *splitExec) Run(ctx context.Context, job *sched.Job) (*sched.Result, error) {
	if job.Build != nil {
		return s.images.Run(ctx, job)
	}
	return s.fake.Run(ctx, job)
}

// TestSchedulerPushesImages checks that an image with a repository is
// pushed (built or cached) before what depends on it runs, and that a
// failed push stops the build as an infrastructure failure.
func TestSchedulerPushesImages(t *testing.T) {
	h := newSchedHarness(t)
	local := newHarness(t, "direct")
	local.l.opts.Store = h.store
	root := h.root
	if err := os.WriteFile(filepath.Join(root, "p", "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	it := &graph.Target{Label: graph.Label{Pkg: "p", Name: "img"}, Kind: graph.KindImage, Cache: true,
		Outs: []string{"img.digest", "img.oci/"},
		ImageSpec: &graph.ImageSpec{Files: map[string]graph.Label{"/hello.txt": {Pkg: "p", Name: "hello.txt"}},
			Repository: "team/app", Tags: []string{"v1"}}}
	img := &graph.Action{Target: it, Sources: []string{"p/hello.txt"}}
	dep := h.add("deploy", "ship", "x")
	dep.Target.Cache = false // runs every time, like a deploy stage
	dep.Inputs = []graph.DepInput{{Action: img, Output: "img.digest"}}
	dep.Deps = []*graph.Action{img}
	img.Rdeps = []*graph.Action{dep}
	h.ag.Actions = []*graph.Action{img, dep}
	h.ag.ByLabel[it.Label] = img

	var order []string
	run := func(t *testing.T, push func(ctx context.Context, a *graph.Action, dir string) ([]string, error)) (*sched.Report, []event.Event, error) {
		t.Helper()
		order = nil
		sc, err := h.db.StatCache(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		var events []event.Event
		fake := &fakeExec{store: h.store}
		rep, err := sched.Run(context.Background(), h.ag, sched.Options{
			Root: root, Scope: root, Jobs: 2, Platform: "linux/amd64", Store: h.store, DB: h.db, Files: sc,
			Executor: &splitExec{images: local.l, fake: fake},
			Sink: event.SinkFunc(func(e event.Event) {
				if e.Type == event.StageStarted && e.Label == "//p:deploy" {
					order = append(order, "run deploy")
				}
				events = append(events, e)
			}),
			Getenv: func(string) (string, bool) { return "", false },
			Images: sched.ImageOptions{Push: push},
		})
		return rep, events, err
	}
	var pushedDigest string
	push := func(ctx context.Context, a *graph.Action, dir string) ([]string, error) {
		d, err := oci.ReadDigest(dir)
		if err != nil {
			return nil, err
		}
		pushedDigest = d
		order = append(order, "push "+a.Label().String())
		return []string{"registry.test/team/app@" + d, "registry.test/team/app:" + oci.DigestTag(d), "registry.test/team/app:v1"}, nil
	}
	pushLine := func(events []event.Event) string {
		for _, e := range events {
			if e.Type == event.Log && strings.HasPrefix(e.Line, "pushed") {
				return e.Line
			}
		}
		return ""
	}
	for _, round := range []string{"built", "cached"} {
		t.Run(round, func(t *testing.T) {
			rep, events, err := run(t, push)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(order, ", "); got != "push //p:img, run deploy" {
				t.Errorf("order %q, want the push before the dependent", got)
			}
			if round == "cached" && rep.Outcomes[img].Status != sched.StatusCached {
				t.Errorf("image %v, want cached", rep.Outcomes[img].Status)
			}
			want := "pushed registry.test/team/app@" + pushedDigest + " (tags " + oci.DigestTag(pushedDigest) + ", v1)"
			if got := pushLine(events); got != want {
				t.Errorf("log line %q, want %q", got, want)
			}
		})
	}
	t.Run("no push without Push", func(t *testing.T) {
		_, events, err := run(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if line := pushLine(events); line != "" || strings.Join(order, ", ") != "run deploy" {
			t.Errorf("pushed: %q, %q", line, order)
		}
	})
	t.Run("a failed push stops the build", func(t *testing.T) {
		failing := func(context.Context, *graph.Action, string) ([]string, error) {
			return nil, &oci.RegistryError{Registry: "registry.test", Err: os.ErrDeadlineExceeded}
		}
		rep, _, err := run(t, failing)
		if err == nil || !strings.Contains(err.Error(), "registry registry.test") {
			t.Fatalf("err = %v, want the registry's failure", err)
		}
		if rep.Outcomes[img].Status != sched.StatusFailed || rep.Outcomes[dep] == nil || rep.Outcomes[dep].Status != sched.StatusSkipped {
			t.Errorf("image %v, deploy %+v: want failed, then skipped", rep.Outcomes[img].Status, rep.Outcomes[dep])
		}
	})
}
