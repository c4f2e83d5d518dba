package graph

import (
	"reflect"
	"testing"
)

// imageT is an image target as builtins declares it: two outputs named
// after it.
func imageT(pkg, name string, line int, spec *ImageSpec) *Target {
	return &Target{Label: Label{pkg, name}, Kind: KindImage, Pos: Pos{File: joinPkg(pkg, "BUILD.mc"), Line: line, Col: 1},
		Cache: true, Network: true, Outs: []string{name + ".digest", name + ".oci/"}, ImageSpec: spec}
}

func TestActionsImages(t *testing.T) {
	bin := stageT("app", "bin", 1, func(x *Target) { x.Outs = []string{"out/api"} })
	tools := stageT("tools", "busybox", 1, func(x *Target) { x.Outs = []string{"bin/"} })
	base := imageT("tools", "toolchain", 5, &ImageSpec{Files: map[string]Label{"/bin": {"tools", "busybox"}}})
	img := imageT("app", "img", 3, &ImageSpec{
		Base: "//tools:toolchain",
		Files: map[string]Label{
			"/usr/local/bin/api": {"app", "out/api"},
			"/etc/app.conf":      {"app", "app.conf"},
		},
	})
	inImage := stageT("app", "check", 9, func(x *Target) { x.Image = "//tools:toolchain" })
	digestOnly := stageT("deploy", "ship", 1, func(x *Target) { x.Deps = mustLabels(t, "deploy", "//app:img.digest") })
	registry := stageT("app", "lint", 12, func(x *Target) { x.Image = "golang:1.22" })
	src := newSource(bin, tools, base, img, inImage, digestOnly, registry)
	src.files["app/app.conf"] = true
	g, err := link(t, src, "//app:img", "//tools:toolchain", "//deploy:ship")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := g.Actions([]Label{img.Label, inImage.Label, digestOnly.Label, registry.Label})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range ag.Actions {
		order = append(order, a.Label().String())
	}
	wantOrder := []string{"//tools:busybox", "//tools:toolchain", "//app:bin", "//app:img", "//app:check", "//deploy:ship", "//app:lint"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Fatalf("actions %v, want %v", order, wantOrder)
	}
	by := func(s string) *Action {
		l, err := ParseLabel(s, "")
		if err != nil {
			t.Fatal(err)
		}
		return ag.ByLabel[l]
	}
	tests := []struct {
		name    string
		a       *Action
		sources []string
		inputs  []DepInput
	}{
		{"an image built from a stage", by("//tools:toolchain"), nil,
			[]DepInput{{Action: by("//tools:busybox")}}},
		{"an image on a base image, with an output and a source file", by("//app:img"), []string{"app/app.conf"},
			[]DepInput{{Action: by("//tools:toolchain")}, {Action: by("//app:bin"), Output: "out/api"}}},
		{"a stage in an image has the image among its inputs", by("//app:check"), nil,
			[]DepInput{{Action: by("//tools:toolchain")}}},
		{"the digest output alone", by("//deploy:ship"), nil,
			[]DepInput{{Action: by("//app:img"), Output: "img.digest"}}},
		{"a registry image is no dependency", by("//app:lint"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.a.Sources, tt.sources) {
				t.Errorf("sources = %v, want %v", tt.a.Sources, tt.sources)
			}
			if !reflect.DeepEqual(tt.a.Inputs, tt.inputs) {
				t.Errorf("inputs = %+v, want %+v", tt.a.Inputs, tt.inputs)
			}
		})
	}
	if rd := by("//tools:toolchain").Rdeps; len(rd) != 2 || rd[0] != by("//app:check") || rd[1] != by("//app:img") {
		t.Errorf("rdeps of the base image = %v, want //app:check, //app:img", rd)
	}
}

func TestActionsImageFilesErrors(t *testing.T) {
	multi := stageT("gen", "two", 1, func(x *Target) { x.Outs = []string{"a.txt", "b/"} })
	none := stageT("gen", "none", 2, nil)
	fg := &Target{Label: Label{"gen", "fg"}, Kind: KindFilegroup, Pos: Pos{File: "gen/BUILD.mc", Line: 3, Col: 1}}
	other := imageT("gen", "other", 4, &ImageSpec{})
	tests := []struct {
		name string
		file Label
		want string
	}{
		{"a stage with several outputs", Label{"gen", "two"},
			`app/BUILD.mc:7:1: //app:img: files: "/x" = //gen:two: the stage has 2 outputs; name one of them (//gen:a.txt, //gen:b)`},
		{"a stage without outputs", Label{"gen", "none"},
			`app/BUILD.mc:7:1: //app:img: files: "/x" = //gen:none: the stage declares no outputs`},
		{"a filegroup", Label{"gen", "fg"},
			`app/BUILD.mc:7:1: //app:img: files: "/x" = //gen:fg is a filegroup; name a source file, an output, or a stage with one output`},
		{"an image", Label{"gen", "other"},
			`app/BUILD.mc:7:1: //app:img: files: "/x" = //gen:other is an image; name a source file, an output, or a stage with one output`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := imageT("app", "img", 7, &ImageSpec{Files: map[string]Label{"/x": tt.file}})
			g, err := link(t, newSource(multi, none, fg, other, img), "//app:img")
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Actions([]Label{img.Label})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error %T is not a *graph.Error (exit 2)", err)
			}
		})
	}
}
