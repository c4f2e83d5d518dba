package graph

import (
	"fmt"
	"path"
	"sort"
)

// Actions returns the action graph needed to build roots (labels of stages
// or filegroups), in topological order. Image targets become actions in a
// later issue; until then naming or depending on one is an error.
func (g *Graph) Actions(roots []Label) (*ActionGraph, error) {
	ag := &ActionGraph{ByLabel: map[Label]*Action{}}
	var visit func(l Label) (*Action, error)
	visit = func(l Label) (*Action, error) {
		if a, ok := ag.ByLabel[l]; ok {
			return a, nil
		}
		t := g.Targets[l]
		if t.Kind != KindStage {
			return nil, fmt.Errorf("internal error: %s is a %s, not a stage", l, t.Kind)
		}
		if err := imagesNotYet(t); err != nil {
			return nil, err
		}
		a := &Action{Target: t}
		ag.ByLabel[l] = a // refs are acyclic (checked by Link), so no re-entry
		srcs := map[string]bool{}
		deps := map[*Action]bool{}
		seenIn := map[DepInput]bool{}
		var addRefs func(from *Target, refs []Ref) error
		addRefs = func(from *Target, refs []Ref) error {
			for _, r := range refs {
				switch r.Kind {
				case RefSource:
					srcs[path.Join(r.Label.Pkg, r.Label.Name)] = true
				case RefOutput, RefRule:
					d := g.Targets[r.Label]
					switch d.Kind {
					case KindFilegroup:
						if err := addRefs(d, g.Refs[d.Label]); err != nil {
							return err
						}
						continue
					case KindImage:
						return errorf(from.Pos, "%s: depends on image %s: building images is not implemented yet", from.Label, d.Label)
					}
					da, err := visit(d.Label)
					if err != nil {
						return err
					}
					in := DepInput{Action: da, Output: r.Output}
					if !seenIn[in] {
						seenIn[in] = true
						a.Inputs = append(a.Inputs, in)
					}
					deps[da] = true
				}
			}
			return nil
		}
		if err := addRefs(t, g.Refs[l]); err != nil {
			return nil, err
		}
		for s := range srcs {
			a.Sources = append(a.Sources, s)
		}
		sort.Strings(a.Sources)
		for d := range deps {
			a.Deps = append(a.Deps, d)
			d.Rdeps = append(d.Rdeps, a)
		}
		sort.Slice(a.Deps, func(i, j int) bool { return a.Deps[i].Label().Less(a.Deps[j].Label()) })
		ag.Actions = append(ag.Actions, a) // post-order: deps first
		return a, nil
	}
	for _, l := range roots {
		t, ok := g.Targets[l]
		if !ok {
			return nil, fmt.Errorf("internal error: unknown root %s", l)
		}
		switch t.Kind {
		case KindStage:
			if _, err := visit(l); err != nil {
				return nil, err
			}
		case KindFilegroup:
			if err := g.visitFilegroup(t, visit, map[Label]bool{}); err != nil {
				return nil, err
			}
		case KindImage:
			return nil, errorf(t.Pos, "%s: building images is not implemented yet", l)
		}
	}
	for _, a := range ag.Actions {
		sort.Slice(a.Rdeps, func(i, j int) bool { return a.Rdeps[i].Label().Less(a.Rdeps[j].Label()) })
	}
	return ag, nil
}

func (g *Graph) visitFilegroup(t *Target, visit func(Label) (*Action, error), seen map[Label]bool) error {
	if seen[t.Label] {
		return nil
	}
	seen[t.Label] = true
	for _, r := range g.Refs[t.Label] {
		if r.Kind == RefSource {
			continue
		}
		d := g.Targets[r.Label]
		switch d.Kind {
		case KindFilegroup:
			if err := g.visitFilegroup(d, visit, seen); err != nil {
				return err
			}
		case KindStage:
			if _, err := visit(d.Label); err != nil {
				return err
			}
		case KindImage:
			return errorf(t.Pos, "%s: depends on image %s: building images is not implemented yet", t.Label, d.Label)
		}
	}
	return nil
}

func imagesNotYet(t *Target) error {
	if t.Image != "" {
		return errorf(t.Pos, "%s: image = %q: running stages inside images is not implemented yet", t.Label, t.Image)
	}
	return nil
}
