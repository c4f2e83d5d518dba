// Package queryout writes the result of mc query in its output formats:
// labels, labels with kinds, JSON, Graphviz dot, and Starlark (the calls
// that would declare the rules, --output=build).
package queryout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mc-build/mc/graph"
)

// Formats are the output formats by name, as --output spells them.
var Formats = []string{"label", "label_kind", "json", "dot", "build"}

// Write writes res to w in format (one of Formats); false for an unknown
// format.
func Write(w *bufio.Writer, format string, res *graph.QueryResult) (bool, error) {
	var write func(w *bufio.Writer, res *graph.QueryResult) error
	switch format {
	case "label":
		write = writeLabels
	case "label_kind":
		write = writeLabelKinds
	case "json":
		write = writeQueryJSON
	case "dot":
		write = writeDot
	case "build":
		write = writeBuild
	default:
		return false, nil
	}
	return true, write(w, res)
}

// writeLabels is --output=label: one label per line, sorted.
func writeLabels(w *bufio.Writer, res *graph.QueryResult) error {
	for _, n := range res.Nodes {
		w.WriteString(n.Label.String())
		w.WriteByte('\n')
	}
	return nil
}

// writeLabelKinds is --output=label_kind: "stage rule //a:b", "source file //a:main.go".
func writeLabelKinds(w *bufio.Writer, res *graph.QueryResult) error {
	for _, n := range res.Nodes {
		w.WriteString(n.Kind)
		w.WriteByte(' ')
		w.WriteString(n.Label.String())
		w.WriteByte('\n')
	}
	return nil
}

// queryJSON is one element of --output=json.
type queryJSON struct {
	Label string `json:"label"`
	Kind  string `json:"kind"`
	// Location is where a rule was declared (the call in BUILD.mc).
	Location string `json:"location,omitempty"`
	// CallStack is the macro call chain of a rule a macro declared,
	// outermost first, ending at the stage()/image()/filegroup() call.
	CallStack []string `json:"call_stack,omitempty"`
	// GeneratingRule is the stage that declares a generated file.
	GeneratingRule string         `json:"generating_rule,omitempty"`
	Attrs          map[string]any `json:"attrs,omitempty"`
}

// writeQueryJSON is --output=json: an array of objects, one per line.
func writeQueryJSON(w *bufio.Writer, res *graph.QueryResult) error {
	if len(res.Nodes) == 0 {
		w.WriteString("[]\n")
		return nil
	}
	w.WriteString("[")
	for i, n := range res.Nodes {
		o := queryJSON{Label: n.Label.String(), Kind: n.Kind}
		switch {
		case n.IsRule():
			o.Location = n.Target.Pos.String()
			if len(n.Target.Stack) > 1 {
				for _, p := range n.Target.Stack {
					o.CallStack = append(o.CallStack, p.String())
				}
			}
			o.Attrs = jsonAttrs(n.Target)
		case n.Target != nil:
			o.GeneratingRule = n.Target.Label.String()
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // commands are full of > and &
		if err := enc.Encode(o); err != nil {
			return err
		}
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString("\n")
		w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
	w.WriteString("\n]\n")
	return nil
}

func jsonAttrs(t *graph.Target) map[string]any {
	m := map[string]any{"name": t.Label.Name}
	switch t.Kind {
	case graph.KindStage:
		m["srcs"] = labelList(t.Srcs)
		m["deps"] = labelList(t.Deps)
		m["cmd"] = list(t.Cmds)
		m["outs"] = list(t.Outs)
		m["image"] = t.Image
		m["env"] = dict(t.Env)
		m["secrets"] = list(t.Secrets)
		m["tags"] = list(t.Tags)
		m["test"] = t.Test
		m["deploy"] = t.Deploy
		m["cache"] = t.Cache
		m["network"] = t.Network
		m["timeout"] = graph.FormatTimeout(t.Timeout)
		m["cache_mounts"] = dict(t.CacheMounts)
		m["machine"] = dict(t.Machine)
	case graph.KindFilegroup:
		m["srcs"] = labelList(t.Srcs)
	case graph.KindImage:
		if s := t.ImageSpec; s != nil {
			files := map[string]string{}
			for d, l := range s.Files {
				files[d] = l.String()
			}
			m["base"] = s.Base
			m["files"] = files
			m["entrypoint"] = list(s.Entrypoint)
			m["cmd"] = list(s.Cmd)
			m["env"] = dict(s.Env)
			m["workdir"] = s.Workdir
			m["labels"] = dict(s.Labels)
			m["repository"] = s.Repository
			m["tags"] = list(s.Tags)
		}
	}
	return m
}

// list and dict make empty values [] and {} rather than null.
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func dict(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func labelList(ls []graph.Label) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

// writeDot is --output=dot: a Graphviz digraph of the result and the
// direct dependencies among its members. Rules are boxes, source files
// ellipses, generated files notes.
func writeDot(w *bufio.Writer, res *graph.QueryResult) error {
	w.WriteString("digraph mc {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, n := range res.Nodes {
		fmt.Fprintf(w, "  %s", dotQuote(n.Label.String()))
		switch n.Kind {
		case graph.QueryKindSource:
			w.WriteString(" [shape=ellipse]")
		case graph.QueryKindGenerated:
			w.WriteString(" [shape=note]")
		}
		w.WriteString(";\n")
	}
	for _, e := range res.Edges {
		fmt.Fprintf(w, "  %s -> %s;\n", dotQuote(res.Nodes[e[0]].Label.String()), dotQuote(res.Nodes[e[1]].Label.String()))
	}
	w.WriteString("}\n")
	return nil
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// writeBuild is --output=build: each rule as the Starlark call that would
// declare it, evaluated (globs expanded, labels absolute, defaults left
// out), after a comment with where it was declared and, for a rule a macro
// declared, the macro frames that led to it. Files are comment lines.
func writeBuild(w *bufio.Writer, res *graph.QueryResult) error {
	for i, n := range res.Nodes {
		if i > 0 {
			w.WriteByte('\n')
		}
		switch {
		case n.Kind == graph.QueryKindSource:
			fmt.Fprintf(w, "# %s: source file\n", n.Label)
			continue
		case n.Kind == graph.QueryKindGenerated:
			fmt.Fprintf(w, "# %s: generated file, output of %s\n", n.Label, n.Target.Label)
			continue
		}
		t := n.Target
		fmt.Fprintf(w, "# %s\n", t.Pos)
		if len(t.Stack) > 1 {
			for _, p := range t.Stack[1:] {
				fmt.Fprintf(w, "# instantiated by macro at %s\n", p)
			}
		}
		fmt.Fprintf(w, "%s(\n", t.Kind)
		for _, a := range buildAttrs(t) {
			fmt.Fprintf(w, "    %s = %s,\n", a.name, a.value)
		}
		w.WriteString(")\n")
	}
	return nil
}

type starAttr struct{ name, value string }

// buildAttrs lists t's attributes in SPEC order as Starlark source,
// leaving out those at their default.
func buildAttrs(t *graph.Target) []starAttr {
	var out []starAttr
	add := func(name, value string) { out = append(out, starAttr{name, value}) }
	addList := func(name string, xs []string) {
		if len(xs) > 0 {
			add(name, starList(xs))
		}
	}
	addDict := func(name string, m map[string]string) {
		if len(m) > 0 {
			add(name, starDict(m))
		}
	}
	add("name", starString(t.Label.Name))
	switch t.Kind {
	case graph.KindStage:
		addList("srcs", labelList(t.Srcs))
		addList("deps", labelList(t.Deps))
		if len(t.Cmds) == 1 {
			add("cmd", starString(t.Cmds[0]))
		} else {
			addList("cmd", t.Cmds)
		}
		addList("outs", t.Outs)
		if t.Image != "" {
			add("image", starString(t.Image))
		}
		addDict("env", t.Env)
		addList("secrets", t.Secrets)
		addList("tags", t.Tags)
		if t.Test {
			add("test", "True")
		}
		if t.Deploy {
			add("deploy", "True")
		}
		if !t.Cache {
			add("cache", "False")
		}
		if t.Timeout != 0 {
			add("timeout", starString(graph.FormatTimeout(t.Timeout)))
		}
		if !t.Network {
			add("network", "False")
		}
		addDict("cache_mounts", t.CacheMounts)
		addDict("machine", t.Machine)
	case graph.KindFilegroup:
		addList("srcs", labelList(t.Srcs))
	case graph.KindImage:
		s := t.ImageSpec
		if s == nil {
			break
		}
		if s.Base != "" {
			add("base", starString(s.Base))
		}
		files := map[string]string{}
		for d, l := range s.Files {
			files[d] = l.String()
		}
		addDict("files", files)
		addList("entrypoint", s.Entrypoint)
		addList("cmd", s.Cmd)
		addDict("env", s.Env)
		if s.Workdir != "" && s.Workdir != "/" {
			add("workdir", starString(s.Workdir))
		}
		addDict("labels", s.Labels)
		if s.Repository != "" {
			add("repository", starString(s.Repository))
		}
		addList("tags", s.Tags)
	}
	return out
}

// starString quotes s as a Starlark string literal (Go's escapes are a
// subset of Starlark's).
func starString(s string) string { return strconv.Quote(s) }

func starList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = starString(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func starDict(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := make([]string, len(keys))
	for i, k := range keys {
		items[i] = starString(k) + ": " + starString(m[k])
	}
	return "{" + strings.Join(items, ", ") + "}"
}
