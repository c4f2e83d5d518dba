package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestServeANSI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain <b> & 'q'", "plain &lt;b&gt; &amp; &#39;q&#39;"},
		{"\x1b[31mred\x1b[0m rest", `<span class="fg31">red</span> rest`},
		{"\x1b[1;92mbold green\x1b[m", `<span class="fg92 b">bold green</span>`},
		{"\x1b[32ma\x1b[44mb\x1b[39mc", `<span class="fg32">a</span><span class="fg32 bg44">b</span><span class="bg44">c</span>`},
		{"\x1b[2K\x1b[1Aclear", "clear"},
		{"\x1b]0;title\atext", "text"},
		{"cut \x1b[3", "cut "},
		{"\x1b[31m<script>", `<span class="fg31">&lt;script&gt;</span>`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := string(ansiHTML(tc.in)); got != tc.want {
				t.Fatalf("ansiHTML(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestServeGraphLayers(t *testing.T) {
	g, err := parseQueryGraph([]byte(`[
{"label":"//a:a","kind":"stage rule","attrs":{"deps":[],"srcs":["//a:x.txt"]}},
{"label":"//a:x.txt","kind":"source file"},
{"label":"//a:gen","kind":"generated file","generating_rule":"//a:a"},
{"label":"//b:b","kind":"stage rule","attrs":{"srcs":["//a:gen"]}},
{"label":"//c:c","kind":"stage rule","attrs":{"deps":["//a:a","//b:b"]}},
{"label":"//d:d","kind":"stage rule","attrs":{}}
]`))
	if err != nil {
		t.Fatal(err)
	}
	layers := g.layers()
	for l, want := range map[string]int{"//a:a": 0, "//b:b": 1, "//c:c": 2, "//d:d": 0} {
		if layers[l] != want {
			t.Errorf("layer of %s = %d, want %d (longest path)", l, layers[l], want)
		}
	}
	if len(g.Nodes) != 4 {
		t.Errorf("%d nodes, want the 4 rules", len(g.Nodes))
	}
	svg := string(graphSVG(g, map[string]string{"//c:c": StageFailed, "//e:<e>": StageBuilt}))
	for _, want := range []string{`class="node st-failed" data-label="//c:c"`, `class="node st-none" data-label="//d:d"`,
		`data-label="//e:&lt;e&gt;"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if n := strings.Count(svg, "<path"); n != 3 {
		t.Errorf("%d edges, want 3", n)
	}
}

func TestServeTimelineCriticalPath(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &Run{Status: StatusSuccess, Started: t0, Finished: t0.Add(10 * time.Second), CriticalPath: []string{"//a:a"}}
	svg := string(timelineSVG(r, []*Stage{
		{Label: "//a:a", Status: StageBuilt, Started: t0, Finished: t0.Add(5 * time.Second)},
		{Label: "//b:b", Status: StageBuilt, Started: t0.Add(5 * time.Second), Finished: t0.Add(10 * time.Second)},
		{Label: "//c:c", Status: StageCached, Started: t0, Finished: t0},
	}, t0))
	for _, want := range []string{`class="bar st-built crit" data-label="//a:a"`, `class="bar st-built" data-label="//b:b"`,
		`<rect x="240" y="12" width="300"`, `<rect x="540" y="30" width="300"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("timeline lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "//c:c") {
		t.Errorf("a cached stage has a bar")
	}
}

// A graph too big to draw whole: the page draws the stages the run did not
// find in the cache and their direct dependencies, and says so.
func TestServeGraphBigRunsSubgraph(t *testing.T) {
	g := &Graph{}
	states := map[string]string{}
	for i := range 1000 {
		n := GraphNode{Label: fmt.Sprintf("//p%04d:s", i), Kind: "stage"}
		if i > 0 {
			n.Deps = []string{fmt.Sprintf("//p%04d:s", i-1)}
		}
		g.Nodes = append(g.Nodes, n)
		states[n.Label] = StageCached
	}
	states["//p0500:s"] = StageBuilt
	states["//p0501:s"] = StageFailed
	svg := string(graphSVG(g, states))
	for _, want := range []string{`3 of the graph&#39;s 1000 targets`, `class="node st-built" data-label="//p0500:s"`,
		`class="node st-failed" data-label="//p0501:s"`, `class="node st-cached" data-label="//p0499:s"`} {
		if !strings.Contains(svg, want) && !strings.Contains(svg, strings.ReplaceAll(want, "&#39;", "'")) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if n := strings.Count(svg, `class="node `); n != 3 {
		t.Errorf("%d nodes drawn, want 3", n)
	}
	if n := strings.Count(svg, "<path"); n != 2 {
		t.Errorf("%d edges, want 2", n)
	}
	// Nothing ran: nothing to draw but the note.
	for l := range states {
		states[l] = StageCached
	}
	if svg := string(graphSVG(g, states)); !strings.Contains(svg, "too many to draw") || strings.Contains(svg, "<svg") {
		t.Errorf("all cached: %s", svg)
	}
}
