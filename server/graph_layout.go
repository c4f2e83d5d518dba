package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The graph is laid out by Graphviz (dot, Debian package graphviz) on the
// server: a layout engine that ranks, orders to reduce crossings and
// routes splines, with no script needed to read the page. Layouts are
// cached per run and graph, so a page shown again (or live) runs dot once.
const (
	dotTimeout    = 20 * time.Second
	layoutEntries = 64 // runs whose layout is kept
)

// errNoDot is the layout's error when Graphviz is not installed.
var errNoDot = errors.New("the graph is not drawn: Graphviz's dot is not installed on the server (apt-get install graphviz)")

// graphLayout is where dot placed v's nodes and routed its edges, in SVG
// coordinates (points, y down).
type graphLayout struct {
	W, H  float64
	Nodes [][2]float64 // top-left corner of each node of the view
	Edges []string     // SVG path of each edge of the view, ending at its arrowhead's tip
}

// layouts runs dot and caches its layouts per run (and graph: a run's
// graph can arrive after its first page view).
type layouts struct {
	sem chan struct{} // dot processes at once

	mu    sync.Mutex
	cache map[layoutKey]*graphLayout
	order []layoutKey // oldest first
}

type layoutKey struct {
	run int64
	sum [32]byte
}

func newLayouts() *layouts {
	return &layouts{sem: make(chan struct{}, 2), cache: map[layoutKey]*graphLayout{}}
}

func (ls *layouts) get(k layoutKey) *graphLayout {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.cache[k]
}

// layout returns v's layout for run, from the cache or from dot.
func (ls *layouts) layout(ctx context.Context, run int64, v *graphView) (*graphLayout, error) {
	src := v.dotSource()
	k := layoutKey{run, sha256.Sum256([]byte(src))}
	if l := ls.get(k); l != nil {
		return l, nil
	}
	select {
	case ls.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-ls.sem }()
	if l := ls.get(k); l != nil { // laid out while this one waited
		return l, nil
	}
	l, err := runDot(ctx, src, len(v.Nodes), len(v.Edges))
	if err != nil {
		return nil, err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if _, ok := ls.cache[k]; !ok {
		ls.cache[k] = l
		ls.order = append(ls.order, k)
		if len(ls.order) > layoutEntries {
			delete(ls.cache, ls.order[0])
			ls.order = ls.order[1:]
		}
	}
	return l, nil
}

// runDot lays src out with `dot -Tjson0`, within dotTimeout.
func runDot(ctx context.Context, src string, nodes, edges int) (*graphLayout, error) {
	path, err := exec.LookPath("dot")
	if err != nil {
		return nil, errNoDot
	}
	ctx, cancel := context.WithTimeout(ctx, dotTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-Tjson0")
	cmd.Stdin = strings.NewReader(src)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the graph is not drawn: dot took longer than %s", dotTimeout)
		}
		return nil, fmt.Errorf("the graph is not drawn: dot: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	l, err := parseDotJSON(out.Bytes(), nodes, edges)
	if err != nil {
		return nil, fmt.Errorf("the graph is not drawn: reading dot's layout: %w", err)
	}
	return l, nil
}

// parseDotJSON reads dot's -Tjson0 output of a graph with nodes n0… and
// edges e0…: Graphviz's y axis points up; the SVG's down, with a margin.
func parseDotJSON(b []byte, nodes, edges int) (*graphLayout, error) {
	var d struct {
		BB      string `json:"bb"`
		Objects []struct {
			Name   string `json:"name"`
			Pos    string `json:"pos"`
			Width  string `json:"width"`
			Height string `json:"height"`
		} `json:"objects"`
		Edges []struct {
			ID  string `json:"id"`
			Pos string `json:"pos"`
		} `json:"edges"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	bb, err := floats(d.BB, 4)
	if err != nil {
		return nil, fmt.Errorf("bb %q: %w", d.BB, err)
	}
	l := &graphLayout{W: bb[2] - bb[0] + 2*pad, H: bb[3] - bb[1] + 2*pad, Nodes: make([][2]float64, nodes), Edges: make([]string, edges)}
	pt := func(x, y float64) (float64, float64) { return x - bb[0] + pad, bb[3] - y + pad }
	placed := 0
	for _, o := range d.Objects {
		i, err := strconv.Atoi(strings.TrimPrefix(o.Name, "n"))
		if err != nil || i < 0 || i >= nodes {
			continue
		}
		p, err := floats(o.Pos, 2)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", o.Name, err)
		}
		x, y := pt(p[0], p[1])
		l.Nodes[i] = [2]float64{x - nodeW/2, y - nodeH/2}
		placed++
	}
	if placed != nodes {
		return nil, fmt.Errorf("%d of %d nodes placed", placed, nodes)
	}
	for _, e := range d.Edges {
		i, err := strconv.Atoi(strings.TrimPrefix(e.ID, "e"))
		if err != nil || i < 0 || i >= edges {
			continue
		}
		var path strings.Builder
		var end string
		n := 0
		for _, tok := range strings.Fields(e.Pos) {
			tip := strings.HasPrefix(tok, "e,")
			if tip || strings.HasPrefix(tok, "s,") {
				tok = tok[2:]
			}
			p, err := floats(tok, 2)
			if err != nil {
				return nil, fmt.Errorf("edge %s: %w", e.ID, err)
			}
			x, y := pt(p[0], p[1])
			switch {
			case tip:
				end = fmt.Sprintf(" L%.1f %.1f", x, y)
			case n == 0:
				fmt.Fprintf(&path, "M%.1f %.1f", x, y)
				n++
			default:
				if n%3 == 1 {
					path.WriteString(" C")
				} else {
					path.WriteString(" ")
				}
				fmt.Fprintf(&path, "%.1f %.1f", x, y)
				n++
			}
		}
		l.Edges[i] = path.String() + end
	}
	return l, nil
}

// floats parses n comma-separated numbers.
func floats(s string, n int) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("want %d numbers", n)
	}
	out := make([]float64, n)
	for i, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// statePriority orders the states a folded package shows: the most
// telling of its targets'.
var statePriority = []string{StageFailed, StageRunning, StageInterrupted, StageBuilt, StageSkipped, StageCached}

func foldedState(members []string, states map[string]string) string {
	best := len(statePriority)
	for _, m := range members {
		for i, s := range statePriority {
			if states[m] == s && i < best {
				best = i
			}
		}
	}
	if best == len(statePriority) {
		return "none"
	}
	return statePriority[best]
}

// graphSVG draws v as laid out: boxes coloured by their stage's state (a
// CSS class the page's script changes live), edges by kind with
// arrowheads pointing at the target that reads.
func graphSVG(v *graphView, l *graphLayout, states map[string]string) template.HTML {
	esc := template.HTMLEscapeString
	var b strings.Builder
	fold := ""
	if v.Fold >= 0 {
		fmt.Fprintf(&b, `<p class="note" id="graph-note">%d targets, folded into %d packages (at depth %d): too many to draw one by one.</p>`,
			v.Total, len(v.Nodes), v.Fold)
		fold = fmt.Sprintf(` data-fold="%d"`, v.Fold)
	}
	fmt.Fprintf(&b, `<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="stage graph"%s>`,
		l.W, l.H, l.W, l.H, fold)
	b.WriteString(`<defs>`)
	for _, k := range edgeKinds {
		fmt.Fprintf(&b, `<marker id="ah-%s" class="ah e-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0 L10 5 L0 10 z"/></marker>`, k, k)
	}
	b.WriteString(`</defs><g class="edges">`)
	for i, e := range v.Edges {
		from, to := v.Nodes[e.From].ID, v.Nodes[e.To].ID
		fmt.Fprintf(&b, `<path class="edge e-%s" data-kind="%s" data-from="%s" data-to="%s" marker-end="url(#ah-%s)" d="%s"><title>%s → %s (%s)</title></path>`,
			esc(e.Kind), esc(e.Kind), esc(from), esc(to), esc(e.Kind), l.Edges[i], esc(from), esc(to), esc(e.Kind))
	}
	b.WriteString(`</g>`)
	for i, n := range v.Nodes {
		p := l.Nodes[i]
		attr := "data-label"
		st := states[n.ID]
		if v.Fold >= 0 {
			attr, st = "data-pkg", foldedState(n.Members, states)
		}
		if st == "" {
			st = "none"
		}
		text := n.Text
		if r := []rune(text); len(r) > 30 {
			text = "…" + string(r[len(r)-29:])
		}
		fmt.Fprintf(&b, `<g class="node st-%s" %s="%s"><title>%s (%s)</title><rect x="%.1f" y="%.1f" width="%d" height="%d" rx="4"/><text x="%.1f" y="%.1f">%s</text></g>`,
			esc(st), attr, esc(n.ID), esc(n.Text), esc(st), p[0], p[1], nodeW, nodeH, p[0]+8, p[1]+17, esc(text))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
