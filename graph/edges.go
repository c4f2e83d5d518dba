package graph

import "strings"

// DepAttr is one dependency of an action and the attribute of its target
// that names it: "srcs", "deps", "image", "base", "files", or "filegroup"
// for a dependency reached only through a filegroup.
type DepAttr struct {
	Dep  *Action
	Attr string
}

// DepAttrs lists a's dependencies by attribute, in the order of Deps; a
// dependency named by several attributes is listed once for each.
func (a *Action) DepAttrs() []DepAttr {
	t := a.Target
	var out []DepAttr
	for _, d := range a.Deps {
		names := func(ls ...Label) bool {
			for _, l := range ls {
				if d.namedBy(l) {
					return true
				}
			}
			return false
		}
		n := len(out)
		if names(t.Srcs...) {
			out = append(out, DepAttr{d, "srcs"})
		}
		if names(t.Deps...) {
			out = append(out, DepAttr{d, "deps"})
		}
		if l, ok := imageLabel(t.Image, t.Label.Pkg); ok && names(l) {
			out = append(out, DepAttr{d, "image"})
		}
		if s := t.ImageSpec; s != nil {
			if l, ok := imageLabel(s.Base, t.Label.Pkg); ok && names(l) {
				out = append(out, DepAttr{d, "base"})
			}
			for _, l := range s.Files {
				if names(l) {
					out = append(out, DepAttr{d, "files"})
					break
				}
			}
		}
		if len(out) == n {
			out = append(out, DepAttr{d, "filegroup"})
		}
	}
	return out
}

// namedBy reports whether label l names a or one of its outputs.
func (a *Action) namedBy(l Label) bool {
	if l == a.Label() {
		return true
	}
	if l.Pkg != a.Label().Pkg {
		return false
	}
	name := strings.TrimSuffix(l.Name, "/")
	for _, o := range a.Target.Outs {
		if strings.TrimSuffix(o, "/") == name {
			return true
		}
	}
	return false
}
