package explain

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/mc-build/mc/graph"
)

// keyChange is one difference between two key preimages of a stage, as
// `mc explain` and `mc build --explain` show it.
type keyChange struct {
	subject  string // "src/main.go", "env CGO_ENABLED", "dep //lib:gen output", "cmd", ...
	from, to string // short old and new values; both "" when the change has none
	verb     string // for changes without values: "changed", "added", "removed", ...
	detail   []string
}

// line is the form `mc explain` lists: `src/main.go: 3fa…→9c1…`.
func (c keyChange) line() string {
	if c.from != "" || c.to != "" {
		return fmt.Sprintf("%s: %s→%s", c.subject, c.from, c.to)
	}
	return c.subject + " " + c.verb
}

// reason is the form of a one-line reason: `src/main.go changed (3fa…→9c1…)`.
func (c keyChange) reason() string {
	if c.from != "" || c.to != "" {
		return fmt.Sprintf("%s changed (%s→%s)", c.subject, c.from, c.to)
	}
	return c.subject + " " + c.verb
}

// summarize is a one-line reason for a list of changes.
func summarizeChanges(changes []keyChange) string {
	switch len(changes) {
	case 0:
		return "its key changed"
	case 1:
		return changes[0].reason()
	case 2:
		return changes[0].reason() + " and 1 more change"
	}
	return fmt.Sprintf("%s and %d more changes", changes[0].reason(), len(changes)-1)
}

// inputOwner returns, for a workspace-relative input path of a, the label
// of the dependency whose declared output it is ("" for a source file).
// It needs no outputs: a dependency's output paths are its declared outs.
func inputOwner(a *graph.Action) func(p string) string {
	type out struct {
		path  string
		dir   bool
		label string
	}
	var outs []out
	for _, in := range a.Inputs {
		t := in.Action.Target
		for _, o := range t.Outs {
			if in.Output != "" && strings.TrimSuffix(in.Output, "/") != strings.TrimSuffix(o, "/") {
				continue
			}
			outs = append(outs, out{path.Join(t.Label.Pkg, strings.TrimSuffix(o, "/")), strings.HasSuffix(o, "/"), t.Label.String()})
		}
	}
	return func(p string) string {
		for _, o := range outs {
			if p == o.path || o.dir && strings.HasPrefix(p, o.path+"/") {
				return o.label
			}
		}
		return ""
	}
}

// diffParts lists what changed from prev to cur; owner attributes inputs
// to dependencies (nil: every input is a source).
func diffParts(prev, cur *graph.KeyParts, owner func(string) string) []keyChange {
	var cs []keyChange
	if !slices.Equal(prev.Cmds, cur.Cmds) {
		cs = append(cs, keyChange{subject: "cmd", verb: "changed", detail: lineDiff(cmdLines(prev.Cmds), cmdLines(cur.Cmds), 12)})
	}
	envKeys := map[string]bool{}
	for k := range prev.Env {
		envKeys[k] = true
	}
	for k := range cur.Env {
		envKeys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(envKeys)) {
		pv, pok := prev.Env[k]
		cv, cok := cur.Env[k]
		if pok == cok && pv == cv {
			continue
		}
		cs = append(cs, keyChange{subject: "env " + k, from: envValue(pv, pok), to: envValue(cv, cok)})
	}
	if !slices.Equal(sorted(prev.Secrets), sorted(cur.Secrets)) {
		cs = append(cs, keyChange{subject: "secret names", from: list(prev.Secrets), to: list(cur.Secrets)})
	}
	if prev.Image != cur.Image {
		cs = append(cs, keyChange{subject: "image", from: orNone(prev.Image), to: orNone(cur.Image)})
	}
	if prev.Platform != cur.Platform {
		cs = append(cs, keyChange{subject: "platform", from: prev.Platform, to: cur.Platform})
	}
	if prev.Network != cur.Network {
		cs = append(cs, keyChange{subject: "network", from: strconv.FormatBool(prev.Network), to: strconv.FormatBool(cur.Network)})
	}
	if !slices.Equal(sorted(prev.Outs), sorted(cur.Outs)) {
		cs = append(cs, keyChange{subject: "outs", from: list(prev.Outs), to: list(cur.Outs)})
	}
	if prev.Package != cur.Package {
		cs = append(cs, keyChange{subject: "package", from: "//" + prev.Package, to: "//" + cur.Package})
	}
	return append(cs, diffInputs(prev.Inputs, cur.Inputs, owner)...)
}

// diffInputs compares input trees: sources one by one, and the outputs of
// each dependency as one change naming the dependency.
func diffInputs(prev, cur []graph.KeyInput, owner func(string) string) []keyChange {
	if owner == nil {
		owner = func(string) string { return "" }
	}
	before := map[string]graph.KeyInput{}
	for _, in := range prev {
		before[in.Path] = in
	}
	after := map[string]graph.KeyInput{}
	for _, in := range cur {
		after[in.Path] = in
	}
	paths := map[string]bool{}
	for p := range before {
		paths[p] = true
	}
	for p := range after {
		paths[p] = true
	}
	var srcs []keyChange
	type depDiff struct {
		lines        []string
		added, total int
	}
	deps := map[string]*depDiff{}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		b, had := before[p]
		a, has := after[p]
		var c *keyChange
		switch {
		case !had:
			c = &keyChange{subject: "input " + p, verb: "added"}
		case !has:
			c = &keyChange{subject: "input " + p, verb: "removed"}
		case b.Digest != a.Digest:
			c = &keyChange{subject: p, from: b.Digest.Short(), to: a.Digest.Short()}
		case b.Exec != a.Exec:
			c = &keyChange{subject: p, verb: map[bool]string{true: "became executable", false: "is no longer executable"}[a.Exec]}
		}
		dep := owner(p)
		if dep != "" && has {
			d := deps[dep]
			if d == nil {
				d = &depDiff{}
				deps[dep] = d
			}
			d.total++
			if c != nil {
				d.lines = append(d.lines, c.line())
				if !had {
					d.added++
				}
			}
			continue
		}
		if c != nil {
			srcs = append(srcs, *c)
		}
	}
	for _, dep := range slices.Sorted(maps.Keys(deps)) {
		d := deps[dep]
		switch {
		case len(d.lines) == 0:
		case d.added == d.total:
			srcs = append(srcs, keyChange{subject: "dep " + dep, verb: "added", detail: d.lines})
		default:
			c := keyChange{subject: "dep " + dep + " output", verb: "changed", detail: d.lines}
			if len(d.lines) == 1 {
				c.verb = "changed (" + d.lines[0] + ")"
			}
			srcs = append(srcs, c)
		}
	}
	return srcs
}

func cmdLines(cmds []string) []string {
	var r []string
	for i, c := range cmds {
		if len(cmds) > 1 {
			r = append(r, fmt.Sprintf("# command %d", i+1))
		}
		r = append(r, strings.Split(c, "\n")...)
	}
	return r
}

// lineDiff is a minimal line diff (longest common subsequence): the
// removed lines with "- " and the added ones with "+ ", at most limit lines.
func lineDiff(a, b []string, limit int) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+a[i])
			i++
		default:
			out = append(out, "+ "+b[j])
			j++
		}
	}
	if len(out) > limit {
		out = append(out[:limit], fmt.Sprintf("… (%d more lines)", len(out)-limit))
	}
	return out
}

func envValue(v string, ok bool) string {
	if !ok {
		return "(unset)"
	}
	return strconv.Quote(v)
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(sorted(xs), " ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func sorted(xs []string) []string {
	return slices.Sorted(slices.Values(xs))
}
