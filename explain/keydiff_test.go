package explain

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

func TestDiffParts(t *testing.T) {
	d := func(s string) cas.Digest { return cas.FromBytes([]byte(s)) }
	base := func() *graph.KeyParts {
		return &graph.KeyParts{
			Package: "app", Cmds: []string{"go build\n-o out/app"}, Env: map[string]string{"CGO_ENABLED": "1"},
			Platform: "linux/amd64", Outs: []string{"out/app"}, Network: true,
			Inputs: []graph.KeyInput{
				{Path: "app/main.go", Digest: d("main")},
				{Path: "lib/gen/out/v.go", Digest: d("v1")},
				{Path: "lib/gen/out/w.go", Digest: d("w1")},
			},
		}
	}
	owner := func(p string) string {
		if strings.HasPrefix(p, "lib/gen/out/") {
			return "//lib/gen:gen"
		}
		if strings.HasPrefix(p, "tools/out/") {
			return "//tools:t"
		}
		return ""
	}
	short := func(s string) string { return d(s).Short() }
	cases := []struct {
		name string
		edit func(p *graph.KeyParts)
		want []string
	}{
		{"nothing", func(p *graph.KeyParts) {}, nil},
		{"source content", func(p *graph.KeyParts) { p.Inputs[0].Digest = d("main2") },
			[]string{"app/main.go: " + short("main") + "→" + short("main2")}},
		{"executable bit", func(p *graph.KeyParts) { p.Inputs[0].Exec = true },
			[]string{"app/main.go became executable"}},
		{"env changed, added, removed", func(p *graph.KeyParts) { p.Env = map[string]string{"CGO_ENABLED": "0", "GOOS": "linux"} },
			[]string{`env CGO_ENABLED: "1"→"0"`, `env GOOS: (unset)→"linux"`}},
		{"env removed", func(p *graph.KeyParts) { p.Env = nil },
			[]string{`env CGO_ENABLED: "1"→(unset)`}},
		{"cmd", func(p *graph.KeyParts) { p.Cmds = []string{"go build\n-o out/app2"} },
			[]string{"cmd changed"}},
		{"secret names, in any order", func(p *graph.KeyParts) { p.Secrets = []string{"B", "A"} },
			[]string{"secret names: (none)→A B"}},
		{"image", func(p *graph.KeyParts) { p.Image = "sha256:abc" }, []string{"image: (none)→sha256:abc"}},
		{"platform", func(p *graph.KeyParts) { p.Platform = "linux/arm64" }, []string{"platform: linux/amd64→linux/arm64"}},
		{"network", func(p *graph.KeyParts) { p.Network = false }, []string{"network: true→false"}},
		{"outs", func(p *graph.KeyParts) { p.Outs = []string{"out/b", "out/app"} }, []string{"outs: out/app→out/app out/b"}},
		{"input added and removed", func(p *graph.KeyParts) {
			p.Inputs[0] = graph.KeyInput{Path: "app/other.go", Digest: d("o")}
		}, []string{"input app/main.go removed", "input app/other.go added"}},
		{"one dep output", func(p *graph.KeyParts) { p.Inputs[1].Digest = d("v2") },
			[]string{"dep //lib/gen:gen output changed (lib/gen/out/v.go: " + short("v1") + "→" + short("v2") + ")"}},
		{"two dep outputs: one change", func(p *graph.KeyParts) { p.Inputs[1].Digest = d("v2"); p.Inputs[2].Digest = d("w2") },
			[]string{"dep //lib/gen:gen output changed"}},
		{"a new dep", func(p *graph.KeyParts) {
			p.Inputs = append(p.Inputs, graph.KeyInput{Path: "tools/out/t", Digest: d("t")})
		}, []string{"dep //tools:t added"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := base()
			c.edit(cur)
			var got []string
			for _, ch := range diffParts(base(), cur, owner) {
				got = append(got, ch.line())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("changes:\n got %q\nwant %q", got, c.want)
			}
		})
	}
	t.Run("cmd diff lines", func(t *testing.T) {
		cur := base()
		cur.Cmds = []string{"go build\n-o out/app2", "strip out/app2"}
		cs := diffParts(base(), cur, owner)
		// One command became two: "go build" is common to both sides.
		want := []string{"+ # command 1", "- -o out/app", "+ -o out/app2", "+ # command 2", "+ strip out/app2"}
		if len(cs) != 1 || !reflect.DeepEqual(cs[0].detail, want) {
			t.Fatalf("cmd detail = %q, want %q", cs[0].detail, want)
		}
	})
}

func TestLineDiff(t *testing.T) {
	cases := []struct {
		a, b []string
		want []string
	}{
		{[]string{"x"}, []string{"x"}, nil},
		{[]string{"a", "b", "c"}, []string{"a", "c"}, []string{"- b"}},
		{[]string{"a", "c"}, []string{"a", "b", "c"}, []string{"+ b"}},
		{[]string{"a"}, []string{"b"}, []string{"- a", "+ b"}},
		{nil, []string{"1", "2", "3", "4"}, []string{"+ 1", "+ 2", "… (2 more lines)"}},
	}
	for _, c := range cases {
		if got := lineDiff(c.a, c.b, 2); !reflect.DeepEqual(got, c.want) {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestSummarizeChanges(t *testing.T) {
	c := keyChange{subject: "src/a.go", from: "1", to: "2"}
	e := keyChange{subject: "cmd", verb: "changed"}
	cases := []struct {
		in   []keyChange
		want string
	}{
		{nil, "its key changed"},
		{[]keyChange{c}, "src/a.go changed (1→2)"},
		{[]keyChange{e, c}, "cmd changed and 1 more change"},
		{[]keyChange{c, e, e}, "src/a.go changed (1→2) and 2 more changes"},
	}
	for _, tc := range cases {
		if got := summarizeChanges(tc.in); got != tc.want {
			t.Errorf("summarizeChanges(%d changes) = %q, want %q", len(tc.in), got, tc.want)
		}
	}
}

func TestInputOwner(t *testing.T) {
	gen := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "lib/gen", Name: "gen"}, Outs: []string{"v.go", "docs/"}}}
	other := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "x", Name: "y"}, Outs: []string{"a.txt", "b.txt"}}}
	a := &graph.Action{Target: &graph.Target{Label: graph.Label{Pkg: "app", Name: "bin"}},
		Inputs: []graph.DepInput{{Action: gen}, {Action: other, Output: "b.txt"}}}
	owner := inputOwner(a)
	for p, want := range map[string]string{
		"lib/gen/v.go":        "//lib/gen:gen",
		"lib/gen/docs":        "//lib/gen:gen",
		"lib/gen/docs/a/b.md": "//lib/gen:gen",
		"lib/gen/docsx":       "",
		"x/b.txt":             "//x:y",
		"x/a.txt":             "", // only b.txt was named
		"app/main.go":         "",
	} {
		if got := owner(p); got != want {
			t.Errorf("owner(%s) = %q, want %q", p, got, want)
		}
	}
}
