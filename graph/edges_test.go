package graph

import (
	"reflect"
	"testing"
)

// Every attribute that can name a stage or image gives its edge its kind:
// what the run page of mc serve draws.
func TestActionDepAttrs(t *testing.T) {
	gen := stageT("gen", "gen", 1, func(x *Target) { x.Outs = []string{"v.txt", "w.txt"} })
	lib := stageT("lib", "lib", 1, func(x *Target) { x.Outs = []string{"lib.a"} })
	tools := stageT("tools", "busybox", 1, func(x *Target) { x.Outs = []string{"bin/"} })
	base := imageT("tools", "toolchain", 5, &ImageSpec{Files: map[string]Label{"/bin": {"tools", "busybox"}}})
	fg := &Target{Label: Label{"gen", "fg"}, Kind: KindFilegroup, Pos: Pos{File: "gen/BUILD.mc", Line: 3, Col: 1},
		Srcs: []Label{{"gen", "w.txt"}}}
	app := stageT("app", "app", 1, func(x *Target) {
		x.Srcs = mustLabels(t, "app", "//gen:v.txt", "//gen:fg")
		x.Deps = mustLabels(t, "app", "//lib")
		x.Image = "//tools:toolchain"
		x.Outs = []string{"app.bin"}
	})
	img := imageT("app", "img", 3, &ImageSpec{Base: "//tools:toolchain", Files: map[string]Label{"/app": {"app", "app.bin"}}})
	src := newSource(gen, lib, tools, base, fg, app, img)
	g, err := link(t, src, "//app:img")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := g.Actions([]Label{img.Label})
	if err != nil {
		t.Fatal(err)
	}
	attrs := func(label string) []string {
		l, _ := ParseLabel(label, "")
		var out []string
		for _, d := range ag.ByLabel[l].DepAttrs() {
			out = append(out, d.Dep.Label().String()+" "+d.Attr)
		}
		return out
	}
	if got, want := attrs("//app:app"), []string{"//gen:gen srcs", "//lib:lib deps", "//tools:toolchain image"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stage: %v, want %v", got, want)
	}
	if got, want := attrs("//app:img"), []string{"//app:app files", "//tools:toolchain base"}; !reflect.DeepEqual(got, want) {
		t.Errorf("image: %v, want %v", got, want)
	}
	// Only through a filegroup: said so.
	only := stageT("x", "x", 1, func(x *Target) { x.Srcs = mustLabels(t, "x", "//gen:fg") })
	src = newSource(gen, fg, only)
	g, err = link(t, src, "//x:x")
	if err != nil {
		t.Fatal(err)
	}
	ag, err = g.Actions([]Label{only.Label})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := attrs("//x:x"), []string{"//gen:gen filegroup"}; !reflect.DeepEqual(got, want) {
		t.Errorf("through a filegroup: %v, want %v", got, want)
	}
}
