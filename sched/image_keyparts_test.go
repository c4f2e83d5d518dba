package sched

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

const testHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// imageGraph is //app:bin (output out/api) and //app:img, an image of it
// and of the source app/app.conf, made by spec(img).
func imageGraph(t *testing.T, root string, spec func(s *graph.ImageSpec)) (img, bin *graph.Action) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app", "app.conf"), []byte("port = 80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bt := &graph.Target{Label: graph.Label{Pkg: "app", Name: "bin"}, Kind: graph.KindStage, Cmds: []string{"go build"},
		Outs: []string{"out/api"}, Cache: true}
	bin = &graph.Action{Target: bt}
	s := &graph.ImageSpec{
		Files: map[string]graph.Label{
			"/usr/local/bin/api": {Pkg: "app", Name: "out/api"},
			"/etc/app.conf":      {Pkg: "app", Name: "app.conf"},
		},
		Entrypoint: []string{"/usr/local/bin/api"},
		Env:        map[string]string{"PORT": "80"},
		Workdir:    "/",
	}
	if spec != nil {
		spec(s)
	}
	it := &graph.Target{Label: graph.Label{Pkg: "app", Name: "img"}, Kind: graph.KindImage, Cache: true, Network: true,
		Outs: []string{"img.digest", "img.oci/"}, ImageSpec: s}
	img = &graph.Action{Target: it, Sources: []string{"app/app.conf"},
		Inputs: []graph.DepInput{{Action: bin, Output: "out/api"}}, Deps: []*graph.Action{bin}}
	return img, bin
}

func TestKeyPartsImage(t *testing.T) {
	h := newSchedHarness(t)
	sc, err := h.db.StatCache(context.Background(), h.root)
	if err != nil {
		t.Fatal(err)
	}
	binOut := []cas.Output{{Path: "app/out/api", Digest: cas.FromBytes([]byte("binary")), Size: 6, Exec: true}}
	outputs := func(*graph.Action) []cas.Output { return binOut }
	resolved := "example.com/base@sha256:" + testHex
	resolve := func(ref string) (string, error) {
		if ref == "example.com/base:1" {
			return resolved, nil
		}
		return "", errors.New("unknown reference " + ref)
	}
	key := func(t *testing.T, spec func(*graph.ImageSpec), platform string) (*graph.KeyParts, []Input) {
		t.Helper()
		img, _ := imageGraph(t, h.root, spec)
		parts, inputs, err := KeyPartsResolved(img, h.root, platform, sc, outputs, resolve)
		if err != nil {
			t.Fatal(err)
		}
		return parts, inputs
	}

	ref, inputs := key(t, nil, "linux/amd64")
	t.Run("recipe", func(t *testing.T) {
		if len(ref.Cmds) != 2 || ref.Cmds[0] != imageRecipe {
			t.Fatalf("cmds = %q, want the recipe version and its JSON", ref.Cmds)
		}
		var b ImageBuild
		if err := json.Unmarshal([]byte(ref.Cmds[1]), &b); err != nil {
			t.Fatal(err)
		}
		wantFiles := []ImageFile{{Dest: "/etc/app.conf", Src: "app/app.conf"}, {Dest: "/usr/local/bin/api", Src: "app/out/api"}}
		if !reflect.DeepEqual(b.Files, wantFiles) {
			t.Errorf("files = %+v, want %+v", b.Files, wantFiles)
		}
		if b.Digest != "app/img.digest" || b.Layout != "app/img.oci" || b.Config.Platform != "linux/amd64" {
			t.Errorf("recipe %+v: wrong outputs or platform", b)
		}
		if ref.Image != "" || !reflect.DeepEqual(ref.Outs, []string{"img.digest", "img.oci/"}) {
			t.Errorf("image %q outs %q", ref.Image, ref.Outs)
		}
		var paths []string
		for _, in := range inputs {
			paths = append(paths, in.Path)
		}
		if !reflect.DeepEqual(paths, []string{"app/app.conf", "app/out/api"}) {
			t.Errorf("inputs %q, want the source and the output", paths)
		}
	})

	// Every attribute that makes the image different makes the key different.
	changes := []struct {
		name     string
		spec     func(*graph.ImageSpec)
		platform string
	}{
		{"entrypoint", func(s *graph.ImageSpec) { s.Entrypoint = []string{"/api"} }, ""},
		{"cmd", func(s *graph.ImageSpec) { s.Cmd = []string{"--port", "80"} }, ""},
		{"env", func(s *graph.ImageSpec) { s.Env = map[string]string{"PORT": "81"} }, ""},
		{"workdir", func(s *graph.ImageSpec) { s.Workdir = "/srv" }, ""},
		{"labels", func(s *graph.ImageSpec) { s.Labels = map[string]string{"a": "b"} }, ""},
		{"a destination", func(s *graph.ImageSpec) {
			s.Files = map[string]graph.Label{"/api": {Pkg: "app", Name: "out/api"}, "/etc/app.conf": {Pkg: "app", Name: "app.conf"}}
		}, ""},
		{"a registry base", func(s *graph.ImageSpec) { s.Base = "example.com/base:1" }, ""},
		{"a base image target", func(s *graph.ImageSpec) { s.Base = "//images:base" }, ""},
		{"platform", nil, "linux/arm64"},
	}
	for _, c := range changes {
		t.Run("changed "+c.name, func(t *testing.T) {
			p := c.platform
			if p == "" {
				p = "linux/amd64"
			}
			got, _ := key(t, c.spec, p)
			if got.Digest() == ref.Digest() {
				t.Errorf("same key %s", got.Digest().Short())
			}
		})
	}
	t.Run("same attributes, same key", func(t *testing.T) {
		got, _ := key(t, nil, "linux/amd64")
		if got.Digest() != ref.Digest() {
			t.Errorf("key %s, first %s", got.Digest().Short(), ref.Digest().Short())
		}
	})
	t.Run("registry base resolved", func(t *testing.T) {
		got, _ := key(t, func(s *graph.ImageSpec) { s.Base = "example.com/base:1" }, "linux/amd64")
		if got.Image != resolved {
			t.Errorf("image = %q, want %q", got.Image, resolved)
		}
		img, _ := imageGraph(t, h.root, func(s *graph.ImageSpec) { s.Base = "example.com/other:1" })
		_, _, err := KeyPartsResolved(img, h.root, "linux/amd64", sc, outputs, resolve)
		if err == nil || !strings.Contains(err.Error(), "base image example.com/other:1") {
			t.Errorf("err = %v, want one naming the base", err)
		}
	})
}

func TestKeyPartsStageImage(t *testing.T) {
	h := newSchedHarness(t)
	sc, err := h.db.StatCache(context.Background(), h.root)
	if err != nil {
		t.Fatal(err)
	}
	none := func(*graph.Action) []cas.Output { return nil }
	digestRef := "alpine@sha256:" + testHex
	tests := []struct {
		name, image string
		resolve     func(string) (string, error)
		want        string
	}{
		{"no image", "", nil, ""},
		{"an image target: its label", "//images:go", nil, "//images:go"},
		{"a tag, resolved", "golang:1.22", func(string) (string, error) { return "index.docker.io/library/golang@sha256:" + testHex, nil },
			"index.docker.io/library/golang@sha256:" + testHex},
		{"a digest without a resolver: canonical", digestRef, nil, "index.docker.io/library/alpine@sha256:" + testHex},
		{"a tag without a resolver: as written", "golang:1.22", nil, "golang:1.22"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "p", Name: "x"}, Kind: graph.KindStage,
				Cmds: []string{"true"}, Image: tt.image}}
			parts, _, err := KeyPartsResolved(a, h.root, "linux/amd64", sc, none, tt.resolve)
			if err != nil {
				t.Fatal(err)
			}
			if parts.Image != tt.want {
				t.Errorf("image = %q, want %q", parts.Image, tt.want)
			}
		})
	}
	t.Run("a stage in an image and the same stage outside differ", func(t *testing.T) {
		mk := func(image string) cas.Digest {
			a := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "p", Name: "x"}, Kind: graph.KindStage,
				Cmds: []string{"true"}, Image: image}}
			parts, _, err := KeyParts(a, h.root, "linux/amd64", sc, none)
			if err != nil {
				t.Fatal(err)
			}
			return parts.Digest()
		}
		if mk("") == mk("//images:go") {
			t.Error("same key with and without the image")
		}
	})
	t.Run("resolve fails", func(t *testing.T) {
		a := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "p", Name: "x"}, Kind: graph.KindStage,
			Cmds: []string{"true"}, Image: "golang:1.22"}}
		_, _, err := KeyPartsResolved(a, h.root, "linux/amd64", sc, none, func(string) (string, error) { return "", errors.New("down") })
		if err == nil || err.Error() != "image golang:1.22: down" {
			t.Errorf("err = %v", err)
		}
	})
}
