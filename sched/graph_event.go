package sched

import (
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
)

// graphEvent is the action graph as build_started carries it: every
// stage and image with its dependencies by attribute.
func graphEvent(ag *graph.ActionGraph) []event.GraphNode {
	out := make([]event.GraphNode, 0, len(ag.Actions))
	for _, a := range ag.Actions {
		n := event.GraphNode{Label: a.Label().String(), Kind: string(a.Target.Kind)}
		for _, d := range a.DepAttrs() {
			n.Deps = append(n.Deps, event.GraphEdge{Label: d.Dep.Label().String(), Attr: d.Attr})
		}
		out = append(out, n)
	}
	return out
}
