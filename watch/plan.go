package watch

import (
	"path"
	"sort"
	"strings"

	"github.com/mc-build/mc/graph"
)

// Files of the workspace the evaluation reads.
const (
	buildFile     = "BUILD.mc"
	workspaceFile = "WORKSPACE.mc"
)

// Index says, for an evaluated workspace and its action graph, what
// reads each file: which packages' evaluations (BUILD.mc, loaded .star
// files, the directories globs list) and which stages (their sources). It
// is built once per graph, so that a batch costs a few map lookups.
type Index struct {
	pkgs     map[string]*graph.Package
	loadedBy map[string][]string // .star file -> packages that load it
	bySource map[string][]*graph.Action
	sources  []string // the keys of bySource, sorted (a removed directory's files)
}

// NewIndex indexes pkgs (the evaluated packages) and ag (nil: none yet).
func NewIndex(pkgs map[string]*graph.Package, ag *graph.ActionGraph) *Index {
	ix := &Index{pkgs: pkgs, loadedBy: map[string][]string{}, bySource: map[string][]*graph.Action{}}
	for name, p := range pkgs {
		for _, f := range p.Loads {
			ix.loadedBy[f] = append(ix.loadedBy[f], name)
		}
	}
	if ag != nil {
		for _, a := range ag.Actions {
			for _, s := range a.Sources {
				ix.bySource[s] = append(ix.bySource[s], a)
			}
		}
	}
	ix.sources = make([]string, 0, len(ix.bySource))
	for s := range ix.bySource {
		ix.sources = append(ix.sources, s)
	}
	sort.Strings(ix.sources)
	return ix
}

// Plan is what a batch of changes means for the workspace.
type Plan struct {
	// Reload: WORKSPACE.mc changed, or events were lost; evaluate
	// everything again.
	Reload bool
	// Rescan: a BUILD.mc appeared or went away, so a recursive pattern
	// may match other packages.
	Rescan bool
	// Reeval are the packages whose evaluation may have changed (sorted):
	// their BUILD.mc or a .star they load changed, or a file appeared or
	// went away in their directories (a glob may see it). The evaluator
	// decides whether each really runs again (its package cache checks
	// the digests and globs).
	Reeval []string
	// Forget are the changed files whose digests and loaded modules the
	// evaluator must read again.
	Forget []string
	// Sources are the changed files that stages read (sorted).
	Sources []string
}

// Empty reports whether the plan has nothing to do.
func (p Plan) Empty() bool {
	return !p.Reload && !p.Rescan && len(p.Reeval) == 0 && len(p.Sources) == 0
}

// Plan decides what b means. isPackage reports whether a directory holds a
// BUILD.mc now (the evaluator's IsPackage).
func (ix *Index) Plan(b Batch, isPackage func(dir string) bool) Plan {
	var p Plan
	if b.Overflow {
		p.Reload = true
	}
	reeval := map[string]bool{}
	sources := map[string]bool{}
	for _, c := range b.Changes {
		p.Forget = append(p.Forget, c.Path)
		dir, name := splitDir(c.Path)
		switch {
		case c.Path == workspaceFile:
			p.Reload = true
		case name == buildFile:
			_, known := ix.pkgs[dir]
			if known != isPackage(dir) {
				p.Rescan = true
			}
			if known {
				reeval[dir] = true
			}
		case strings.HasSuffix(name, ".star"):
			for _, pkg := range ix.loadedBy[c.Path] {
				reeval[pkg] = true
			}
		}
		if c.Op&(Created|Removed) != 0 {
			// A glob of the enclosing package may now list another set.
			if pkg, ok := ix.enclosing(dir); ok {
				reeval[pkg] = true
			}
		}
		if ix.bySource[c.Path] != nil {
			sources[c.Path] = true
		}
		if c.Op&Removed != 0 {
			// A directory moved away takes its files without an event each.
			i := sort.SearchStrings(ix.sources, c.Path+"/")
			for ; i < len(ix.sources) && strings.HasPrefix(ix.sources[i], c.Path+"/"); i++ {
				sources[ix.sources[i]] = true
			}
		}
	}
	p.Reeval = sortedSet(reeval)
	p.Sources = sortedSet(sources)
	return p
}

// enclosing returns the package whose directory holds dir: the nearest
// known package at or above it.
func (ix *Index) enclosing(dir string) (string, bool) {
	for {
		if _, ok := ix.pkgs[dir]; ok {
			return dir, true
		}
		if dir == "" {
			return "", false
		}
		dir = path.Dir(dir)
		if dir == "." {
			dir = ""
		}
	}
}

// Affected returns the actions that read one of sources and, transitively,
// every action depending on them.
func (ix *Index) Affected(sources []string) map[*graph.Action]bool {
	out := map[*graph.Action]bool{}
	var todo []*graph.Action
	for _, s := range sources {
		for _, a := range ix.bySource[s] {
			if !out[a] {
				out[a] = true
				todo = append(todo, a)
			}
		}
	}
	for len(todo) > 0 {
		a := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, r := range a.Rdeps {
			if !out[r] {
				out[r] = true
				todo = append(todo, r)
			}
		}
	}
	return out
}

// Subgraph is the part of ag a build of the affected actions needs: those
// actions and their direct dependencies (whose prior results they read),
// in ag's order. Running it instead of ag makes a rebuild cost what the
// edit affects, not the size of the graph.
func Subgraph(ag *graph.ActionGraph, affected map[*graph.Action]bool) *graph.ActionGraph {
	in := make(map[*graph.Action]bool, 2*len(affected))
	for a := range affected {
		in[a] = true
		for _, d := range a.Deps {
			in[d] = true
		}
	}
	sub := &graph.ActionGraph{Actions: make([]*graph.Action, 0, len(in)), ByLabel: make(map[graph.Label]*graph.Action, len(in))}
	// A walk of ag keeps its topological order: ~0.1 ms for 10,000 actions.
	for _, a := range ag.Actions {
		if in[a] {
			sub.Actions = append(sub.Actions, a)
			sub.ByLabel[a.Label()] = a
		}
	}
	return sub
}

// Unaffected maps each action of next (a graph made after packages were
// evaluated again) to the action of prev it can take its result from:
// same label, the same target (a package not evaluated again keeps its
// targets), the same sources and inputs, none of its sources in changed,
// and every dependency unaffected too. Actions missing from the map must
// be keyed again.
func Unaffected(prev, next *graph.ActionGraph, changed map[string]bool) map[*graph.Action]*graph.Action {
	out := make(map[*graph.Action]*graph.Action, len(next.Actions))
	if prev == nil {
		return out
	}
next:
	for _, n := range next.Actions { // dependencies first
		o := prev.ByLabel[n.Label()]
		if o == nil || o.Target != n.Target || len(o.Sources) != len(n.Sources) || len(o.Inputs) != len(n.Inputs) {
			continue
		}
		for i, s := range n.Sources {
			if o.Sources[i] != s || changed[s] {
				continue next
			}
		}
		for i, in := range n.Inputs {
			oi := o.Inputs[i]
			if oi.Output != in.Output || out[in.Action] != oi.Action {
				continue next
			}
		}
		out[n] = o
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
