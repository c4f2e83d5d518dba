package graph

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Actions returns the action graph needed to build roots (labels of stages,
// images or filegroups), in topological order.
//
// An image target is an action like a stage: its Sources are the source
// files its `files` name, its Inputs the outputs (or single-output stages)
// its `files` name and, for a base that is an image target, that image's
// outputs. A stage whose `image` is an image target depends on it like on
// a `deps` entry: the image's outputs are among its inputs, so the image
// is part of the stage's key.
func (g *Graph) Actions(roots []Label) (*ActionGraph, error) {
	ag := &ActionGraph{ByLabel: map[Label]*Action{}}
	var visit func(l Label) (*Action, error)
	visit = func(l Label) (*Action, error) {
		if a, ok := ag.ByLabel[l]; ok {
			return a, nil
		}
		t := g.Targets[l]
		if t.Kind != KindStage && t.Kind != KindImage {
			return nil, fmt.Errorf("internal error: %s is a %s, not a stage or image", l, t.Kind)
		}
		if t.Kind == KindImage {
			if err := g.checkImageFiles(t); err != nil {
				return nil, err
			}
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
					if d.Kind == KindFilegroup {
						if err := addRefs(d, g.Refs[d.Label]); err != nil {
							return err
						}
						continue
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
		case KindStage, KindImage:
			if _, err := visit(l); err != nil {
				return nil, err
			}
		case KindFilegroup:
			if err := g.visitFilegroup(t, visit, map[Label]bool{}); err != nil {
				return nil, err
			}
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
		case KindStage, KindImage:
			if _, err := visit(d.Label); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkImageFiles makes sure every `files` entry of image t names one
// file or directory: a source file, a declared output, or a stage with
// exactly one output. A filegroup, an image or a stage with several
// outputs would leave it unclear what lands at the destination.
func (g *Graph) checkImageFiles(t *Target) error {
	s := t.ImageSpec
	if s == nil {
		return nil
	}
	dests := make([]string, 0, len(s.Files))
	for d := range s.Files {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	for _, dest := range dests {
		l := s.Files[dest]
		d, ok := g.Targets[l]
		if !ok {
			continue // a source file or an output: one file or directory
		}
		switch {
		case d.Kind == KindStage && len(d.Outs) == 1:
			continue
		case d.Kind == KindStage && len(d.Outs) == 0:
			return errorf(t.Pos, "%s: files: %q = %s: the stage declares no outputs", t.Label, dest, l)
		case d.Kind == KindStage:
			names := make([]string, len(d.Outs))
			for i, o := range d.Outs {
				names[i] = ":" + strings.TrimSuffix(o, "/")
				if d.Label.Pkg != t.Label.Pkg {
					names[i] = "//" + d.Label.Pkg + names[i]
				}
			}
			return errorf(t.Pos, "%s: files: %q = %s: the stage has %d outputs; name one of them (%s)",
				t.Label, dest, l, len(d.Outs), strings.Join(names, ", "))
		default:
			what := "a " + string(d.Kind)
			if d.Kind == KindImage {
				what = "an image"
			}
			return errorf(t.Pos, "%s: files: %q = %s is %s; name a source file, an output, or a stage with one output",
				t.Label, dest, l, what)
		}
	}
	return nil
}
