package server

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/event"
)

// needDot fails the test when Graphviz is missing: the run page's graph
// is part of the contract.
func needDot(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dot"); err != nil {
		t.Fatal("the run page lays its graph out with Graphviz: apt-get install graphviz")
	}
}

// The query graph gives each edge the attribute naming it: srcs (also
// through a generated file), deps, image, base, files; labels relative to
// the package are resolved; source files are no nodes.
func TestServeQueryGraphEdgeKinds(t *testing.T) {
	g, err := parseQueryGraph([]byte(`[
{"label":"//a:a","kind":"stage rule","attrs":{"deps":[],"srcs":["//a:x.txt"]}},
{"label":"//a:x.txt","kind":"source file"},
{"label":"//a:gen","kind":"generated file","generating_rule":"//a:a"},
{"label":"//b:b","kind":"stage rule","attrs":{"srcs":["//a:gen"],"deps":["//a:a"],"image":":img"}},
{"label":"//b:base","kind":"image rule","attrs":{"base":"debian:12","files":{}}},
{"label":"//b:img","kind":"image rule","attrs":{"base":"//b:base","files":{"/bin/a":"//a:gen","/etc/x":"//a:x.txt"}}},
{"label":"//d:d","kind":"stage rule","attrs":{"image":"golang:1.22"}}
]`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, n := range g.Nodes {
		for _, e := range n.edges() {
			got[n.Label] = append(got[n.Label], e.Label+" "+e.Attr)
		}
	}
	want := map[string][]string{
		"//b:b":   {"//a:a srcs", "//a:a deps", "//b:img image"},
		"//b:img": {"//a:a files", "//b:base base"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("edges %v, want %v", got, want)
	}
	if len(g.Nodes) != 5 {
		t.Errorf("%d nodes, want the 5 rules", len(g.Nodes))
	}
}

// A run recorded before edges had kinds still draws its deps.
func TestServeGraphOldRuns(t *testing.T) {
	n := GraphNode{Label: "//b:b", Deps: []string{"//a:a"}}
	if e := n.edges(); len(e) != 1 || e[0] != (event.GraphEdge{Label: "//a:a", Attr: "deps"}) {
		t.Errorf("edges of an old node: %v", e)
	}
}

// layoutOf lays v out with the real dot.
func layoutOf(t *testing.T, v *graphView) *graphLayout {
	t.Helper()
	needDot(t)
	l, err := newLayouts().layout(context.Background(), 1, v)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	rectRE = regexp.MustCompile(`<rect x="([0-9.]+)" y="([0-9.]+)" width="(\d+)" height="(\d+)"`)
	edgeRE = regexp.MustCompile(`<path class="edge e-(\w+)" data-kind="(\w+)" data-from="([^"]*)" data-to="([^"]*)" marker-end="url\(#ah-(\w+)\)" d="M[^"]+"`)
)

// overlaps reports the first two boxes of svg that overlap.
func overlaps(svg string) string {
	type box struct{ x, y, w, h float64 }
	var boxes []box
	for _, m := range rectRE.FindAllStringSubmatch(svg, -1) {
		var b box
		b.x, _ = strconv.ParseFloat(m[1], 64)
		b.y, _ = strconv.ParseFloat(m[2], 64)
		b.w, _ = strconv.ParseFloat(m[3], 64)
		b.h, _ = strconv.ParseFloat(m[4], 64)
		boxes = append(boxes, b)
	}
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].x < boxes[j].x })
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if b.x >= a.x+a.w {
				break
			}
			if a.y < b.y+b.h && b.y < a.y+a.h {
				return fmt.Sprintf("%+v and %+v", a, b)
			}
		}
	}
	return ""
}

// Every kind of edge is drawn, with its arrowhead, by dot's layout: no two
// boxes overlap, and each edge ends at the box of the target reading.
func TestServeGraphLayoutEdgeKinds(t *testing.T) {
	g := &Graph{Nodes: []GraphNode{
		{Label: "//a:a", Kind: "stage"},
		{Label: "//b:b", Kind: "stage", Edges: []event.GraphEdge{{Label: "//a:a", Attr: "srcs"}, {Label: "//a:a", Attr: "deps"}, {Label: "//b:img", Attr: "image"}}},
		{Label: "//b:base", Kind: "image"},
		{Label: "//b:img", Kind: "image", Edges: []event.GraphEdge{{Label: "//a:a", Attr: "files"}, {Label: "//b:base", Attr: "base"}}},
		{Label: "//c:c", Kind: "stage", Edges: []event.GraphEdge{{Label: "//a:a", Attr: "filegroup"}}},
	}}
	v := view(g, []string{"//e:<e>"})
	svg := string(graphSVG(v, layoutOf(t, v), map[string]string{"//b:b": StageFailed, "//e:<e>": StageBuilt}))
	kinds := map[string]int{}
	for _, m := range edgeRE.FindAllStringSubmatch(svg, -1) {
		if m[1] != m[2] || m[2] != m[5] {
			t.Errorf("edge %q: class, kind and arrowhead disagree", m[0])
		}
		kinds[m[1]]++
	}
	want := map[string]int{"deps": 1, "srcs": 1, "image": 1, "base": 1, "files": 1, "filegroup": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("edges by kind %v, want %v", kinds, want)
	}
	for _, k := range edgeKinds {
		if !strings.Contains(svg, `<marker id="ah-`+k+`"`) {
			t.Errorf("no arrowhead for %s", k)
		}
	}
	for _, want := range []string{`class="node st-failed" data-label="//b:b"`, `class="node st-none" data-label="//c:c"`,
		`class="node st-built" data-label="//e:&lt;e&gt;"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if o := overlaps(svg); o != "" {
		t.Errorf("boxes overlap: %s", o)
	}
	if n := strings.Count(svg, `<g class="node `); n != 6 {
		t.Errorf("%d nodes, want 6", n)
	}
}

// wideGraph is n targets in packages p000/s00… with chains and fan-in.
func wideGraph(n, perPkg int) *Graph {
	g := &Graph{}
	for i := range n {
		l := fmt.Sprintf("//p%03d/s%02d:t%d", i/perPkg, i%perPkg/5, i)
		node := GraphNode{Label: l, Kind: "stage"}
		if i%perPkg > 0 {
			node.Edges = append(node.Edges, event.GraphEdge{Label: g.Nodes[i-1].Label, Attr: "deps"})
		}
		if i >= perPkg && i%7 == 0 {
			node.Edges = append(node.Edges, event.GraphEdge{Label: g.Nodes[i-perPkg].Label, Attr: "srcs"})
		}
		g.Nodes = append(g.Nodes, node)
	}
	return g
}

// 400 targets are drawn one by one, laid out in time, without overlaps.
func TestServeGraph400Targets(t *testing.T) {
	v := view(wideGraph(400, 20), nil)
	if v.Fold != -1 || len(v.Nodes) != 400 {
		t.Fatalf("400 targets: fold %d, %d nodes; want all drawn", v.Fold, len(v.Nodes))
	}
	start := time.Now()
	l := layoutOf(t, v)
	took := time.Since(start)
	t.Logf("dot laid out 400 nodes and %d edges in %s", len(v.Edges), took)
	svg := string(graphSVG(v, l, nil))
	if o := overlaps(svg); o != "" {
		t.Errorf("boxes overlap: %s", o)
	}
	if n := len(edgeRE.FindAllString(svg, -1)); n != len(v.Edges) {
		t.Errorf("%d edges drawn, want %d", n, len(v.Edges))
	}
}

// Beyond 400 targets, they fold into packages (then parent packages) until
// at most 400 boxes remain; edges between packages keep their kinds; a
// package shows its most telling state.
func TestServeGraphFoldsPackages(t *testing.T) {
	g := wideGraph(5000, 20) // 250 packages of 4 subpackages each
	v := view(g, nil)
	if v.Fold != 1 || len(v.Nodes) != 250 {
		t.Fatalf("5000 targets: fold %d, %d nodes; want packages at depth 1 (250)", v.Fold, len(v.Nodes))
	}
	g = wideGraph(1000, 2) // 500 packages: too many too
	if v := view(g, nil); v.Fold != 0 || len(v.Nodes) != 1 {
		t.Errorf("1000 targets in 500 packages of depth 2: fold %d, %d nodes", v.Fold, len(v.Nodes))
	}
	g = wideGraph(1000, 20) // 50 packages, 200 subpackages
	v = view(g, nil)
	if v.Fold != 2 || len(v.Nodes) != 200 {
		t.Fatalf("1000 targets: fold %d, %d nodes; want subpackages at depth 2 (200)", v.Fold, len(v.Nodes))
	}
	states := map[string]string{}
	for _, n := range g.Nodes {
		states[n.Label] = StageCached
	}
	states["//p001/s00:t20"] = StageBuilt
	states["//p001/s00:t21"] = StageFailed
	svg := string(graphSVG(v, layoutOf(t, v), states))
	for _, want := range []string{`data-fold="2"`, `class="node st-failed" data-pkg="//p001/s00"`, `class="node st-cached" data-pkg="//p001/s01"`,
		`1000 targets, folded into 200 packages`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	kinds := map[string]int{}
	for _, m := range edgeRE.FindAllStringSubmatch(svg, -1) {
		kinds[m[1]]++
		if m[3] == m[4] {
			t.Errorf("an edge from a package to itself: %s", m[0])
		}
	}
	if kinds["deps"] == 0 || kinds["srcs"] == 0 {
		t.Errorf("folded edges by kind: %v", kinds)
	}
	if o := overlaps(svg); o != "" {
		t.Errorf("boxes overlap: %s", o)
	}
}

// The layout is cached per run: the same graph runs dot once.
func TestServeGraphLayoutCached(t *testing.T) {
	needDot(t)
	ls := newLayouts()
	v := view(wideGraph(30, 10), nil)
	a, err := ls.layout(context.Background(), 7, v)
	if err != nil {
		t.Fatal(err)
	}
	// Without dot on the PATH, only the cache can answer.
	t.Setenv("PATH", t.TempDir())
	b, err := ls.layout(context.Background(), 7, v)
	if err != nil || a != b {
		t.Fatalf("second layout of run 7: %v (same: %v)", err, a == b)
	}
	if _, err := ls.layout(context.Background(), 8, v); err != errNoDot {
		t.Fatalf("run 8 without dot: %v, want %v", err, errNoDot)
	}
	if !strings.Contains(errNoDot.Error(), "apt-get install graphviz") {
		t.Error("the message does not say how to fix it")
	}
}
