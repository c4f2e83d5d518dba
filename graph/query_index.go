package graph

import (
	"math/bits"
	"sort"
	"strings"
)

// Kind strings of query nodes, as label_kind prints them and kind() matches
// them (Bazel's spelling: a rule's class followed by " rule").
const (
	QueryKindSource    = "source file"
	QueryKindGenerated = "generated file"
)

// QueryNode is one node of the query graph: a rule target (stage, image,
// filegroup), a source file, or a declared output ("generated file", whose
// only dependency is the stage that declares it, as in Bazel).
type QueryNode struct {
	Label Label
	// Kind is "stage rule", "image rule", "filegroup rule", "source file" or
	// "generated file".
	Kind string
	// Target is the rule itself for a rule, the generating stage for a
	// generated file, and nil for a source file.
	Target *Target
}

// IsRule reports whether n is a stage, image or filegroup.
func (n *QueryNode) IsRule() bool { return n.Kind != QueryKindSource && n.Kind != QueryKindGenerated }

// queryIndex numbers the nodes of a linked graph and holds its edges both
// ways, so that deps and rdeps are plain array walks.
type queryIndex struct {
	g     *Graph
	ids   map[Label]int32
	nodes []*QueryNode
	fwd   [][]int32 // node -> what it depends on
	rev   [][]int32 // node -> what depends on it
	rules map[string][]int32
}

func newQueryIndex(g *Graph) *queryIndex {
	n := len(g.Targets) + len(g.Outputs)
	ix := &queryIndex{g: g, ids: make(map[Label]int32, 2*n), nodes: make([]*QueryNode, 0, 2*n), rules: map[string][]int32{}}
	pkgs := make([]string, 0, len(g.Packages))
	for p := range g.Packages {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		for _, t := range g.Packages[p].Targets {
			ix.rules[p] = append(ix.rules[p], ix.add(t.Label, string(t.Kind)+" rule", t))
		}
	}
	for _, p := range pkgs {
		for _, t := range g.Packages[p].Targets {
			for _, o := range t.Outs {
				out := ix.add(Label{t.Label.Pkg, strings.TrimSuffix(o, "/")}, QueryKindGenerated, t)
				ix.edge(out, ix.ids[t.Label])
			}
		}
	}
	for _, p := range pkgs {
		for _, t := range g.Packages[p].Targets {
			from := ix.ids[t.Label]
			for _, r := range g.Refs[t.Label] {
				ix.edge(from, ix.refNode(r))
			}
		}
	}
	return ix
}

// add returns the node of l, creating it if needed.
func (ix *queryIndex) add(l Label, kind string, t *Target) int32 {
	if id, ok := ix.ids[l]; ok {
		return id
	}
	id := int32(len(ix.nodes))
	ix.ids[l] = id
	ix.nodes = append(ix.nodes, &QueryNode{Label: l, Kind: kind, Target: t})
	ix.fwd = append(ix.fwd, nil)
	ix.rev = append(ix.rev, nil)
	return id
}

func (ix *queryIndex) edge(from, to int32) {
	ix.fwd[from] = append(ix.fwd[from], to)
	ix.rev[to] = append(ix.rev[to], from)
}

// refNode is the node a resolved reference points at: the rule, the
// generated file, or the source file.
func (ix *queryIndex) refNode(r Ref) int32 {
	switch r.Kind {
	case RefOutput:
		return ix.ids[Label{r.Label.Pkg, strings.TrimSuffix(r.Output, "/")}]
	case RefSource:
		return ix.add(r.Label, QueryKindSource, nil)
	}
	return ix.ids[r.Label]
}

// nodeSet is a set of node ids, as a bitset: the sets of one query are
// dense subsets of a few ten thousand nodes.
type nodeSet struct{ w []uint64 }

func (s *nodeSet) add(i int32) {
	for int(i>>6) >= len(s.w) {
		s.w = append(s.w, 0)
	}
	s.w[i>>6] |= 1 << (uint(i) & 63)
}

func (s *nodeSet) has(i int32) bool {
	return int(i>>6) < len(s.w) && s.w[i>>6]&(1<<(uint(i)&63)) != 0
}

func (s *nodeSet) len() int {
	n := 0
	for _, w := range s.w {
		n += bits.OnesCount64(w)
	}
	return n
}

// each calls f for every member in increasing order.
func (s *nodeSet) each(f func(int32)) {
	for i, w := range s.w {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			f(int32(i<<6 | b))
			w &= w - 1
		}
	}
}

func (s *nodeSet) union(o *nodeSet) *nodeSet {
	out := &nodeSet{w: make([]uint64, max(len(s.w), len(o.w)))}
	copy(out.w, s.w)
	for i, w := range o.w {
		out.w[i] |= w
	}
	return out
}

func (s *nodeSet) intersect(o *nodeSet) *nodeSet {
	out := &nodeSet{w: make([]uint64, min(len(s.w), len(o.w)))}
	for i := range out.w {
		out.w[i] = s.w[i] & o.w[i]
	}
	return out
}

func (s *nodeSet) except(o *nodeSet) *nodeSet {
	out := &nodeSet{w: append([]uint64(nil), s.w...)}
	for i := 0; i < len(out.w) && i < len(o.w); i++ {
		out.w[i] &^= o.w[i]
	}
	return out
}

// closure returns everything reachable from start along adj (start
// included), at most depth steps away (depth < 0: no limit), restricted to
// within when within is not nil.
func closure(adj [][]int32, start *nodeSet, depth int, within *nodeSet) *nodeSet {
	out := &nodeSet{}
	var frontier []int32
	start.each(func(i int32) {
		if within == nil || within.has(i) {
			out.add(i)
			frontier = append(frontier, i)
		}
	})
	for d := 0; len(frontier) > 0 && (depth < 0 || d < depth); d++ {
		var next []int32
		for _, i := range frontier {
			for _, j := range adj[i] {
				if !out.has(j) && (within == nil || within.has(j)) {
					out.add(j)
					next = append(next, j)
				}
			}
		}
		frontier = next
	}
	return out
}

// somePath returns the nodes of one shortest path from a member of from to
// a member of to, or an empty set.
func somePath(fwd [][]int32, from, to *nodeSet) *nodeSet {
	parent := map[int32]int32{}
	var frontier []int32
	found := int32(-1)
	from.each(func(i int32) {
		if _, seen := parent[i]; !seen {
			parent[i] = -1
			frontier = append(frontier, i)
			if found < 0 && to.has(i) {
				found = i
			}
		}
	})
	for found < 0 && len(frontier) > 0 {
		var next []int32
		for _, i := range frontier {
			for _, j := range fwd[i] {
				if _, seen := parent[j]; seen {
					continue
				}
				parent[j] = i
				if to.has(j) {
					found = j
					break
				}
				next = append(next, j)
			}
			if found >= 0 {
				break
			}
		}
		frontier = next
	}
	out := &nodeSet{}
	for i := found; i >= 0; i = parent[i] {
		out.add(i)
	}
	return out
}
