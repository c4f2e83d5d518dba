package builtins

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

func pos(file string, line, col int) graph.Pos { return graph.Pos{File: file, Line: line, Col: col} }

func lbl(pkg, name string) graph.Label { return graph.Label{Pkg: pkg, Name: name} }

func TestTargets(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		pkg   string
		want  []*graph.Target
	}{
		{
			name: "minimal stage",
			files: map[string]string{
				"app/BUILD.mc": `stage(name = "build", cmd = "make")`,
			},
			pkg: "app",
			want: []*graph.Target{{
				Label: lbl("app", "build"), Kind: graph.KindStage,
				Pos: pos("app/BUILD.mc", 1, 6), Stack: []graph.Pos{pos("app/BUILD.mc", 1, 6)},
				Cmds: []string{"make"}, Cache: true, Network: true,
			}},
		},
		{
			name: "every stage attribute",
			files: map[string]string{
				"images/BUILD.mc": "",
				"svc/api/main.go": "",
				"svc/api/BUILD.mc": `
stage(
    name = "build",
    srcs = ["main.go", "//lib/core:srcs", ":gen"],
    deps = ["//lib/gen:proto"],
    cmd = ["go vet ./...", "go build -o out/api ."],
    outs = ["out/api", "out/docs/"],
    image = "//images:golang",
    env = {"CGO_ENABLED": "0", "GOOS": "linux"},
    secrets = ["NPM_TOKEN"],
    tags = ["go", "slow"],
    test = True,
    cache = False,
    timeout = "1h30m",
    network = False,
    cache_mounts = {"GOMODCACHE": "go-mod", "GOCACHE": "go-build"},
    machine = {"instance_type": "c6i.2xlarge", "disk_gb": 50},
)
stage(name = "deploy", cmd = "ship", deploy = True, image = "registry.example.com/tools/ship:1.2@sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `")
`,
			},
			pkg: "svc/api",
			want: []*graph.Target{
				{
					Label: lbl("svc/api", "build"), Kind: graph.KindStage,
					Pos: pos("svc/api/BUILD.mc", 2, 6), Stack: []graph.Pos{pos("svc/api/BUILD.mc", 2, 6)},
					Srcs:        []graph.Label{lbl("svc/api", "main.go"), lbl("lib/core", "srcs"), lbl("svc/api", "gen")},
					Deps:        []graph.Label{lbl("lib/gen", "proto")},
					Cmds:        []string{"go vet ./...", "go build -o out/api ."},
					Outs:        []string{"out/api", "out/docs/"},
					Image:       "//images:golang",
					Env:         map[string]string{"CGO_ENABLED": "0", "GOOS": "linux"},
					Secrets:     []string{"NPM_TOKEN"},
					Tags:        []string{"go", "slow"},
					Test:        true,
					Cache:       false,
					Network:     false,
					Timeout:     90 * time.Minute,
					CacheMounts: map[string]string{"GOMODCACHE": "go-mod", "GOCACHE": "go-build"},
					Machine:     map[string]string{"instance_type": "c6i.2xlarge", "disk_gb": "50"},
				},
				{
					Label: lbl("svc/api", "deploy"), Kind: graph.KindStage,
					Pos: pos("svc/api/BUILD.mc", 19, 6), Stack: []graph.Pos{pos("svc/api/BUILD.mc", 19, 6)},
					Cmds: []string{"ship"}, Deploy: true, Cache: true, Network: true,
					Image: "registry.example.com/tools/ship:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				},
			},
		},
		{
			name: "None means the default",
			files: map[string]string{
				"BUILD.mc": `stage(name = "x", cmd = "true", srcs = None, cache = None, image = None, timeout = None)`,
			},
			pkg: "",
			want: []*graph.Target{{
				Label: lbl("", "x"), Kind: graph.KindStage,
				Pos: pos("BUILD.mc", 1, 6), Stack: []graph.Pos{pos("BUILD.mc", 1, 6)},
				Cmds: []string{"true"}, Cache: true, Network: true,
			}},
		},
		{
			name: "filegroup",
			files: map[string]string{
				"lib/a.go": "", "lib/b.go": "", "lib/x.txt": "",
				"lib/BUILD.mc": `filegroup(name = "srcs", srcs = glob(["*.go"]) + ["//other:thing"])`,
			},
			pkg: "lib",
			want: []*graph.Target{{
				Label: lbl("lib", "srcs"), Kind: graph.KindFilegroup,
				Pos: pos("lib/BUILD.mc", 1, 10), Stack: []graph.Pos{pos("lib/BUILD.mc", 1, 10)},
				Srcs: []graph.Label{lbl("lib", "a.go"), lbl("lib", "b.go"), lbl("other", "thing")},
			}},
		},
		{
			name: "image",
			files: map[string]string{
				"svc/BUILD.mc": `
image(
    name = "image",
    base = "//images:base",
    files = {"/usr/local/bin/api": ":out/api", "/etc/app.conf": "app.conf"},
    entrypoint = ["/usr/local/bin/api"],
    cmd = ["--port", "80"],
    env = {"PORT": "80"},
    workdir = "/srv",
    labels = {"org.opencontainers.image.source": "https://example.com"},
    repository = "service/api",
    tags = ["latest", "v1.2.3"],
)
image(name = "plain", base = "alpine:3.20")
`,
			},
			pkg: "svc",
			want: []*graph.Target{
				{
					Label: lbl("svc", "image"), Kind: graph.KindImage, Cache: true, Network: true,
					Pos: pos("svc/BUILD.mc", 2, 6), Stack: []graph.Pos{pos("svc/BUILD.mc", 2, 6)},
					Outs: []string{"image.digest", "image.oci/"},
					ImageSpec: &graph.ImageSpec{
						Base:       "//images:base",
						Files:      map[string]graph.Label{"/usr/local/bin/api": lbl("svc", "out/api"), "/etc/app.conf": lbl("svc", "app.conf")},
						Entrypoint: []string{"/usr/local/bin/api"},
						Cmd:        []string{"--port", "80"},
						Env:        map[string]string{"PORT": "80"},
						Workdir:    "/srv",
						Labels:     map[string]string{"org.opencontainers.image.source": "https://example.com"},
						Repository: "service/api",
						Tags:       []string{"latest", "v1.2.3"},
					},
				},
				{
					Label: lbl("svc", "plain"), Kind: graph.KindImage, Cache: true, Network: true,
					Pos: pos("svc/BUILD.mc", 14, 6), Stack: []graph.Pos{pos("svc/BUILD.mc", 14, 6)},
					Outs:      []string{"plain.digest", "plain.oci/"},
					ImageSpec: &graph.ImageSpec{Base: "alpine:3.20", Workdir: "/"},
				},
			},
		},
		{
			name: "macro records its call site",
			files: map[string]string{
				"tools/go.star": `
def _cmd(out):
    return "go build -o " + out

def go_binary(name, srcs = []):
    stage(
        name = name,
        srcs = srcs,
        cmd = _cmd("out/" + name),
        outs = ["out/" + name],
    )
`,
				"cmd/BUILD.mc": `load("//tools/go.star", "go_binary")

go_binary(name = "tool")
`,
			},
			pkg: "cmd",
			want: []*graph.Target{{
				Label: lbl("cmd", "tool"), Kind: graph.KindStage,
				Pos:   pos("cmd/BUILD.mc", 3, 10),
				Stack: []graph.Pos{pos("cmd/BUILD.mc", 3, 10), pos("tools/go.star", 6, 10)},
				Cmds:  []string{"go build -o out/tool"}, Outs: []string{"out/tool"}, Cache: true, Network: true,
			}},
		},
		{
			name: "nested macros, lambda and a macro defined in BUILD.mc",
			files: map[string]string{
				"tools/a.star": `
load(":b.star", "inner")
def outer(name):
    inner(name)
`,
				"tools/b.star": `
def inner(name):
    f = lambda n: filegroup(name = n)
    f(name)
`,
				"p/BUILD.mc": `load("//tools:a.star", "outer")
def local(n):
    outer(n)
local("g")
`,
			},
			pkg: "p",
			want: []*graph.Target{{
				Label: lbl("p", "g"), Kind: graph.KindFilegroup,
				Pos: pos("p/BUILD.mc", 4, 6),
				Stack: []graph.Pos{
					pos("p/BUILD.mc", 4, 6), pos("p/BUILD.mc", 3, 10),
					pos("tools/a.star", 4, 10), pos("tools/b.star", 4, 6), pos("tools/b.star", 3, 28),
				},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := evalOne(t, tt.files, tt.pkg)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Targets) != len(tt.want) {
				t.Fatalf("got %d targets, want %d", len(p.Targets), len(tt.want))
			}
			for i := range tt.want {
				if !reflect.DeepEqual(p.Targets[i], tt.want[i]) {
					t.Errorf("target %d:\n got %+v\nwant %+v", i, *p.Targets[i], *tt.want[i])
				}
			}
		})
	}
}

func TestPackageFields(t *testing.T) {
	p, err := evalOne(t, map[string]string{
		"tools/a.star": "load('//tools/b.star', 'b')\na = b\n",
		"tools/b.star": "b = 1\n_hidden = 2\n",
		"x/y/BUILD.mc": "load('//tools/a.star', 'a')\nload('//tools/b.star', 'b')\n",
	}, "x/y")
	if err != nil {
		t.Fatal(err)
	}
	want := &graph.Package{Name: "x/y", File: "x/y/BUILD.mc", Loads: []string{"tools/a.star", "tools/b.star"}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		pkg   string
		want  string
	}{
		{"syntax error", map[string]string{"a/BUILD.mc": "stage(name = \"x\",\n  cmd = )\n"},
			"a", `a/BUILD.mc:2:9: got ')', want primary expression`},
		{"unknown attribute", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", srcz = [])`},
			"a", `a/BUILD.mc:1:6: stage: unexpected keyword argument "srcz" (did you mean "srcs"?)`},
		{"positional argument", map[string]string{"a/BUILD.mc": `filegroup("x")`},
			"a", `a/BUILD.mc:1:10: filegroup: got 1 positional argument(s); filegroup() takes keyword arguments only (name = ...)`},
		{"missing name", map[string]string{"a/BUILD.mc": `stage(cmd = "true")`},
			"a", `a/BUILD.mc:1:6: stage: missing argument for name`},
		{"missing cmd", map[string]string{"a/BUILD.mc": `stage(name = "x")`},
			"a", `a/BUILD.mc:1:6: stage: missing argument for cmd`},
		{"wrong type outs", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = 1)`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "outs": got int, want list of strings`},
		{"wrong element type", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", srcs = ["a", 2])`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "srcs": got int at index 1, want list of strings`},
		{"wrong type cmd", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = 3)`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "cmd": got int, want string or list of strings`},
		{"empty cmd", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = [])`},
			"a", `a/BUILD.mc:1:6: stage: cmd: must not be empty`},
		{"blank command", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = ["ls", " "])`},
			"a", `a/BUILD.mc:1:6: stage: cmd: command 2 is empty`},
		{"wrong type bool", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", test = "yes")`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "test": got string, want bool`},
		{"wrong type env", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", env = {"A": 1})`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "env": got int value for key "A", want dict of string to string`},
		{"wrong type machine", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", machine = {"gpu": True})`},
			"a", `a/BUILD.mc:1:6: stage: for parameter "machine": got bool value for key "gpu", want dict of string to string or int`},
		{"duplicate name", map[string]string{"a/BUILD.mc": "stage(name = \"x\", cmd = \"true\")\n\nfilegroup(name = \"x\")\n"},
			"a", `a/BUILD.mc:3:10: filegroup: duplicate target name "x" (first declared at a/BUILD.mc:1:6)`},
		{"duplicate name from a macro", map[string]string{
			"m.star":     "def m():\n    filegroup(name = \"fixed\")\n",
			"a/BUILD.mc": "load(\"//m.star\", \"m\")\nm()\nm()\n"},
			"a", `a/BUILD.mc:3:2: filegroup: duplicate target name "fixed" (first declared at a/BUILD.mc:2:2)`},
		{"bad name", map[string]string{"a/BUILD.mc": `filegroup(name = "a:b")`},
			"a", `a/BUILD.mc:1:10: filegroup: name: invalid label "a:b": target name contains ':' or a control character`},
		{"name with a space", map[string]string{"a/BUILD.mc": `stage(name = "a b", cmd = "true")`},
			"a", `a/BUILD.mc:1:6: stage: name: invalid label "a b": ' ' is not allowed in a target name (letters, digits and % - @ ^ _ + , = ~ / . are)`},
		{"name with a bang", map[string]string{"a/BUILD.mc": `filegroup(name = "x!")`},
			"a", `a/BUILD.mc:1:10: filegroup: name: invalid label "x!": '!' is not allowed in a target name (letters, digits and % - @ ^ _ + , = ~ / . are)`},
		{"out with a quote", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["out/it's.txt"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: invalid label "out/it's.txt": '\'' is not allowed in a target name (letters, digits and % - @ ^ _ + , = ~ / . are)`},
		{"reserved name", map[string]string{"a/BUILD.mc": `filegroup(name = "all")`},
			"a", `a/BUILD.mc:1:10: filegroup: name: target name "all" is reserved: //pkg:all means every target of the package`},
		{"bad label", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", deps = ["//b/../c:x"])`},
			"a", `a/BUILD.mc:1:6: stage: deps: invalid label "//b/../c:x": package path must not contain '.' or '..' components`},
		{"bad label in filegroup", map[string]string{"a/BUILD.mc": `filegroup(name = "x", srcs = ["//b:"])`},
			"a", `a/BUILD.mc:1:10: filegroup: srcs: invalid label "//b:": empty target name after ':'`},
		{"absolute out", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["/etc/x"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: "/etc/x" must be relative to the package`},
		{"dotdot out", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["out/../../x"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: "out/../../x" must not contain '.' or '..' components`},
		{"duplicate out", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["out/", "out"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: "out" is declared twice`},
		{"nested out", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["out/", "out/bin/x"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: "out/bin/x" is inside "out", which is declared too; declare only one of them`},
		{"out parent is a source file", map[string]string{"a/gen": "a file", "a/BUILD.mc": `stage(name = "x", cmd = "true", outs = ["gen/x/y.txt"])`},
			"a", `a/BUILD.mc:1:6: stage: outs: "gen/x/y.txt" cannot be created: its parent "gen" is a source file in the package`},
		{"bad env name", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", env = {"1X": "a"})`},
			"a", `a/BUILD.mc:1:6: stage: env: "1X" is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"reserved env", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", env = {"MC_TARGET": "a"})`},
			"a", `a/BUILD.mc:1:6: stage: env: MC_TARGET is set by mc`},
		{"bad secret name", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", secrets = ["NPM-TOKEN"])`},
			"a", `a/BUILD.mc:1:6: stage: secrets: "NPM-TOKEN" is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"secret also in env", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", env = {"TOKEN": "a"}, secrets = ["TOKEN"])`},
			"a", `a/BUILD.mc:1:6: stage: secrets: TOKEN is also set in env`},
		{"cache mount also in env", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", env = {"GOCACHE": "/x"}, cache_mounts = {"GOCACHE": "go"})`},
			"a", `a/BUILD.mc:1:6: stage: cache_mounts: GOCACHE is also set in env`},
		{"bad cache mount name", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", cache_mounts = {"GOCACHE": "../x"})`},
			"a", `a/BUILD.mc:1:6: stage: cache_mounts: GOCACHE: invalid cache name "../x" (letters, digits, . _ -, not starting with . _ or -)`},
		{"bad timeout", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", timeout = "30 minutes")`},
			"a", `a/BUILD.mc:1:6: stage: timeout: invalid duration "30 minutes" (want a number with a unit, like "90s", "30m" or "2h")`},
		{"negative timeout", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", timeout = "-5m")`},
			"a", `a/BUILD.mc:1:6: stage: timeout: duration "-5m" must be positive`},
		{"test and deploy", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", test = True, deploy = True)`},
			"a", `a/BUILD.mc:1:6: stage: a stage cannot be both test = True and deploy = True`},
		{"bad image reference", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", image = "Golang:1.22")`},
			"a", `a/BUILD.mc:1:6: stage: image: invalid image reference "Golang:1.22": repository names must be lowercase`},
		{"bad image label", map[string]string{"a/BUILD.mc": `stage(name = "x", cmd = "true", image = "//images:")`},
			"a", `a/BUILD.mc:1:6: stage: image: invalid label "//images:": empty target name after ':'`},
		{"image dest not absolute", map[string]string{"a/BUILD.mc": `image(name = "i", files = {"bin/app": ":app"})`},
			"a", `a/BUILD.mc:1:6: image: files: destination "bin/app" must be an absolute, clean file path in the image, like "/usr/local/bin/app"`},
		{"image bad file label", map[string]string{"a/BUILD.mc": `image(name = "i", files = {"/app": "//x/../y"})`},
			"a", `a/BUILD.mc:1:6: image: files: "/app": invalid label "//x/../y": package path must not contain '.' or '..' components`},
		{"image bad workdir", map[string]string{"a/BUILD.mc": `image(name = "i", workdir = "srv")`},
			"a", `a/BUILD.mc:1:6: image: workdir: "srv" must be an absolute, clean path`},
		{"image bad repository", map[string]string{"a/BUILD.mc": `image(name = "i", repository = "Service/API")`},
			"a", `a/BUILD.mc:1:6: image: repository: invalid repository "Service/API": want lowercase path components like "service/api" (letters, digits, and . _ __ - between them)`},
		{"image bad tag", map[string]string{"a/BUILD.mc": `image(name = "i", tags = [".hidden"])`},
			"a", `a/BUILD.mc:1:6: image: tags: invalid tag ".hidden": want up to 128 letters, digits, _ . -, not starting with . or -`},
		{"image bad base", map[string]string{"a/BUILD.mc": `image(name = "i", base = "ubuntu:")`},
			"a", `a/BUILD.mc:1:6: image: base: invalid image reference "ubuntu:": want [registry/]repository[:tag][@digest], or a label starting with // or :`},
		{"missing load file", map[string]string{"a/BUILD.mc": "\nload(\"//tools/missing.star\", \"m\")\n"},
			"a", `a/BUILD.mc:2:1: cannot load "//tools/missing.star": tools/missing.star does not exist`},
		{"missing relative load file", map[string]string{"a/BUILD.mc": `load(":defs.star", "m")`},
			"a", `a/BUILD.mc:1:1: cannot load ":defs.star": a/defs.star does not exist`},
		{"load of a non-star file", map[string]string{"a/BUILD.mc": `load("//b/BUILD.mc", "m")`},
			"a", `a/BUILD.mc:1:1: cannot load "//b/BUILD.mc": only .star files can be loaded`},
		{"missing symbol", map[string]string{"m.star": "x = 1\n", "a/BUILD.mc": `load("//m.star", "y")`},
			"a", `a/BUILD.mc:1:1: load: name y not found in module //m.star`},
		{"private symbol", map[string]string{"m.star": "_x = 1\n", "a/BUILD.mc": `load("//m.star", "_x")`},
			"a", `a/BUILD.mc:1:19: load: names with leading underscores are not exported: _x`},
		{"load cycle", map[string]string{
			"tools/a.star": "load(\":b.star\", \"b\")\na = 1\n",
			"tools/b.star": "x = 1\nload(\"//tools/a.star\", \"a\")\nb = 1\n",
			"a/BUILD.mc":   `load("//tools/a.star", "a")`},
			"a", `tools/b.star:2:1: load cycle: //tools/a.star -> //tools/b.star -> //tools/a.star`},
		{"self load", map[string]string{"a/s.star": "load(\":s.star\", \"y\")\nx = 1\n", "a/BUILD.mc": `load(":s.star", "x")`},
			"a", `a/s.star:1:1: load cycle: //a/s.star -> //a/s.star`},
		{"error inside a loaded file", map[string]string{"m.star": "x = {}\ny = x[\"k\"]\n", "a/BUILD.mc": `load("//m.star", "y")`},
			"a", `m.star:2:6: key "k" not in dict`},
		{"syntax error inside a loaded file", map[string]string{"m.star": "def f(:\n", "a/BUILD.mc": `load("//m.star", "f")`},
			"a", `m.star:1:8: got ':', want ')'`},
		{"stage at top level of a .star file", map[string]string{
			"m.star": "stage(name = \"x\", cmd = \"true\")\n", "a/BUILD.mc": `load("//m.star", "x")`},
			"a", `m.star:1:6: stage() can only be called while a BUILD.mc file is evaluated (directly or from a macro it calls), not at the top level of a .star file`},
		{"glob at top level of a .star file", map[string]string{
			"m.star": "x = glob([\"*\"])\n", "a/BUILD.mc": `load("//m.star", "x")`},
			"a", `m.star:1:9: glob() can only be called while a BUILD.mc file is evaluated (directly or from a macro it calls), not at the top level of a .star file`},
		{"glob empty", map[string]string{"a/BUILD.mc": "x = 1\nfilegroup(name = \"x\", srcs = glob([\"*.c\"], exclude = [\"x.c\"]))\n"},
			"a", `a/BUILD.mc:2:34: glob: ["*.c"] minus ["x.c"] matched no files (pass allow_empty = True if that is expected)`},
		{"glob bad pattern", map[string]string{"a/BUILD.mc": `glob(["../*.c"])`},
			"a", `a/BUILD.mc:1:5: glob: invalid glob pattern "../*.c": "." and ".." are not allowed`},
		{"glob string instead of list", map[string]string{"a/BUILD.mc": `glob("*.c")`},
			"a", `a/BUILD.mc:1:5: glob: for parameter include: got string, want list of strings`},
		{"glob unknown keyword", map[string]string{"a/BUILD.mc": `glob(["*"], excludes = [])`},
			"a", `a/BUILD.mc:1:5: glob: unexpected keyword argument "excludes" (did you mean "exclude"?)`},
		{"error in a macro is reported at its call", map[string]string{
			"m.star":     "def m(name, outs):\n    stage(name = name, cmd = \"true\", outs = outs)\n",
			"a/BUILD.mc": "load(\"//m.star\", \"m\")\n\nm(name = \"x\", outs = 3)\n"},
			"a", `a/BUILD.mc:3:2: stage: for parameter "outs": got int, want list of strings`},
		{"bad macro call", map[string]string{
			"m.star":     "def m(name):\n    filegroup(name = name)\n",
			"a/BUILD.mc": "load(\"//m.star\", \"m\")\nm(nam = \"x\")\n"},
			"a", `a/BUILD.mc:2:2: function m got an unexpected keyword argument "nam"`},
		{"runtime error in a macro", map[string]string{
			"m.star":     "def m(name):\n    filegroup(name = name + 1)\n",
			"a/BUILD.mc": "load(\"//m.star\", \"m\")\nm(name = \"x\")\n"},
			"a", `m.star:2:27: unknown binary op: string + int`},
		{"recursion", map[string]string{"a/BUILD.mc": "def f(n):\n    return f(n)\nf(1)\n"},
			"a", `a/BUILD.mc:2:12: function f called recursively`},
		{"while is not allowed", map[string]string{"a/BUILD.mc": "def f():\n    while True:\n        pass\n"},
			"a", `a/BUILD.mc:2:5: this Starlark dialect does not support while loops`},
		{"top-level for is not allowed", map[string]string{"a/BUILD.mc": "for x in []:\n    pass\n"},
			"a", `a/BUILD.mc:1:1: for loop not within a function`},
		{"globals are frozen", map[string]string{"a/BUILD.mc": "x = 1\nx = 2\n"},
			"a", `a/BUILD.mc:2:1: cannot reassign global x declared at a/BUILD.mc:1:1`},
		{"loaded values are frozen", map[string]string{"m.star": "l = []\n", "a/BUILD.mc": "load(\"//m.star\", \"l\")\nl.append(1)\n"},
			"a", `a/BUILD.mc:2:9: append: cannot append to frozen list`},
		{"undefined name", map[string]string{"a/BUILD.mc": `stagee(name = "x")`},
			"a", `a/BUILD.mc:1:1: undefined: stagee`},
		{"workspace() in BUILD.mc", map[string]string{"a/BUILD.mc": `workspace(name = "x")`},
			"a", `a/BUILD.mc:1:1: undefined: workspace`},
		{"not a package", map[string]string{"a/x": ""},
			"a", `no package //a: a/BUILD.mc does not exist (or is ignored)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evalOne(t, tt.files, tt.pkg)
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			var le *lang.Error
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v is not a *lang.Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestDeclaredNameChars is the positive control of the name checks in
// TestErrors: every character of the allowed set is accepted, in a rule
// name and an output.
func TestDeclaredNameChars(t *testing.T) {
	if _, err := evalOne(t, map[string]string{"a/BUILD.mc": `stage(name = "Az09%-@^_+,=~/.x", cmd = "true", outs = ["o/Az09%-@^_+,=~.x"])`}, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorBacktrace(t *testing.T) {
	_, err := evalOne(t, map[string]string{
		"m.star":     "def m(name):\n    stage(name = name, cmd = 1)\n",
		"a/BUILD.mc": "load(\"//m.star\", \"m\")\nm(name = \"x\")\n",
	}, "a")
	var le *lang.Error
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *lang.Error", err)
	}
	want := []graph.Pos{pos("a/BUILD.mc", 2, 2), pos("m.star", 2, 10)}
	if !reflect.DeepEqual(le.Backtrace, want) {
		t.Errorf("backtrace %v, want %v", le.Backtrace, want)
	}

	// An error inside a loaded module gains the load site.
	_, err = evalOne(t, map[string]string{
		"m.star":     "load(\":n.star\", \"n\")\nm = n\n",
		"n.star":     "n = 1 // 0\n",
		"a/BUILD.mc": "load(\"//m.star\", \"m\")\n",
	}, "a")
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *lang.Error", err)
	}
	if le.Error() != "n.star:1:7: floored division by zero" {
		t.Errorf("got %v", le)
	}
	want = []graph.Pos{pos("a/BUILD.mc", 1, 1), pos("m.star", 1, 1), pos("n.star", 1, 7)}
	if !reflect.DeepEqual(le.Backtrace, want) {
		t.Errorf("backtrace %v, want %v", le.Backtrace, want)
	}
}

func TestFirstErrorInPackageOrder(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a/BUILD.mc": `filegroup(name = "ok")`,
		"b/BUILD.mc": `filegroup(name = 1)`,
		"c/BUILD.mc": `filegroup(name = 2)`,
	})
	e := evaluator(t, root, nil)
	for _, order := range [][]string{{"a", "b", "c"}, {"c", "b", "a"}} {
		_, err := e.Packages(context.Background(), order)
		wantFile := order[0] + "/BUILD.mc"
		if order[0] == "a" {
			wantFile = "b/BUILD.mc"
		}
		var le *lang.Error
		if !errors.As(err, &le) || le.Pos.File != wantFile {
			t.Errorf("order %v: got %v, want an error in %s", order, err, wantFile)
		}
	}
}
