package explain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/history"
	"github.com/mc-build/mc/sched"
	"github.com/mc-build/mc/session"
)

// Stage is `mc explain LABEL`: it writes to w the parts of the current key
// of the stage arg names, computed without running anything, and what
// changed since the last run of the stage recorded in the store. resolve
// turns a registry image reference into a digest, as a build does.
func Stage(ctx context.Context, s *session.Session, w io.Writer, arg string, resolve func(ctx context.Context, ref string) (string, error)) error {
	if p, err := graph.ParsePattern(arg, s.RelDir); err == nil && p.Kind != graph.PatternTarget {
		return errkind.Usagef("explain: %s is a pattern: give one stage label", arg)
	}
	pats, g, err := s.LoadGraph(ctx, []string{arg})
	if err != nil {
		return err
	}
	t, err := explainTarget(g, pats[0].Label, arg, s.Eval.IsSourceFile)
	if err != nil {
		return err
	}
	ag, err := g.Actions([]graph.Label{t.Label})
	if err != nil {
		return err
	}
	x := &explainer{ctx: ctx, s: s, w: w, resolve: resolve, known: map[*graph.Action]*depState{}}
	return x.explain(ag, ag.ByLabel[t.Label])
}

// explainTarget finds the stage a label names; anything else is exit 2.
func explainTarget(g *graph.Graph, l graph.Label, arg string, isSource func(pkg, name string) bool) (*graph.Target, error) {
	if t, ok := g.Targets[l]; ok {
		if t.Kind != graph.KindStage && t.Kind != graph.KindImage {
			return nil, errkind.Usagef("%s is a %s, not a stage: only stages and images have action keys", l, t.Kind)
		}
		return t, nil
	}
	if st, ok := g.Outputs[graph.Label{Pkg: l.Pkg, Name: strings.TrimSuffix(l.Name, "/")}]; ok {
		return nil, errkind.Usagef("%s is an output of %s: run mc explain %s", l, st.Label, st.Label)
	}
	if isSource(l.Pkg, l.Name) {
		return nil, errkind.Usagef("%s is a source file, not a stage", l)
	}
	pkg := g.Packages[l.Pkg]
	var cands []string
	for _, x := range pkg.Targets {
		cands = append(cands, ":"+x.Label.Name)
	}
	return nil, errkind.Usagef("%s names nothing: no target %q in %s%s", arg, l.Name, pkg.File, errkind.Suggest(graph.Closest(":"+l.Name, cands)))
}

// depState is what explain found out about one action of the graph.
type depState struct {
	parts   *graph.KeyParts
	key     cas.Digest
	hit     bool         // its key is in the action cache with every output blob
	outputs []cas.Output // nil: unknown (it would run)
	note    string       // how its outputs are known, for the deps listing
}

type explainer struct {
	ctx   context.Context
	s     *session.Session
	w     io.Writer
	known map[*graph.Action]*depState
	// resolve turns a registry reference into a digest.
	resolve func(ctx context.Context, ref string) (string, error)
}

func (x *explainer) explain(ag *graph.ActionGraph, target *graph.Action) error {
	// Keys are computed deps first: a key needs the outputs of the deps,
	// which come from the action cache under the deps' own current keys.
	for _, a := range ag.Actions {
		st, err := x.state(a)
		if err != nil {
			fmt.Fprintf(x.w, "%s: cannot compute its key: %v\n", a.Label(), err)
			return errkind.ErrStageFailed
		}
		x.known[a] = st
		if a != target && st.outputs == nil {
			fmt.Fprintf(x.w, "%s (%s)\n", target.Label(), target.Target.Pos)
			via := ""
			if p := depPath(target, a); len(p) > 2 {
				via = " (via " + strings.Join(p[1:len(p)-1], " -> ") + ")"
			}
			fmt.Fprintf(x.w, "dep %s%s is not built yet (its output is unknown; it would run): build it first, or explain it\n", a.Label(), via)
			return nil
		}
	}
	st := x.known[target]
	x.printParts(target, st)
	return x.compare(target, st)
}

func (x *explainer) state(a *graph.Action) (*depState, error) {
	// Registry references resolve to digests as a build resolves them.
	resolve := func(ref string) (string, error) { return x.resolve(x.ctx, ref) }
	parts, _, err := sched.KeyPartsResolved(a, x.s.Root, platform, x.s.Stat, func(d *graph.Action) []cas.Output { return x.known[d].outputs }, resolve)
	if err != nil {
		return nil, err
	}
	st := &depState{parts: parts, key: parts.Digest()}
	t := a.Target
	if t.Cache && !t.Deploy {
		res, err := x.s.DB.GetAction(x.ctx, st.key)
		if err != nil {
			return nil, errkind.Infra(err)
		}
		if res != nil && x.haveOutputs(res.Outputs) {
			st.hit, st.outputs = true, res.Outputs
			st.note = "cached"
			return st, nil
		}
		return st, nil
	}
	// Never cached: it runs on every build. Its dependents' keys use what
	// it produces then; the best guess is what it produced last time.
	why := "cache = False"
	if t.Deploy {
		why = "a deploy stage"
	}
	by, err := history.BuiltBy(x.ctx, x.s.DB, st.key)
	if err != nil {
		return nil, errkind.Infra(err)
	}
	if by != nil && by.Outputs != nil {
		st.outputs = by.Outputs
		st.note = fmt.Sprintf("runs on every build (%s); assuming the outputs of run %d again", why, by.Run)
	}
	return st, nil
}

// haveOutputs mirrors the scheduler: a result whose blobs are gone is a miss.
func (x *explainer) haveOutputs(outs []cas.Output) bool {
	for _, o := range outs {
		if !x.s.Store.Has(o.Digest) {
			return false
		}
	}
	return true
}

// depPath is a dependency chain from a to d (labels), for messages.
func depPath(a, d *graph.Action) []string {
	if a == d {
		return []string{d.Label().String()}
	}
	for _, x := range a.Deps {
		if p := depPath(x, d); p != nil {
			return append([]string{a.Label().String()}, p...)
		}
	}
	return nil
}

func (x *explainer) printParts(a *graph.Action, st *depState) {
	w, p := x.w, st.parts
	field := func(name, v string) { fmt.Fprintf(w, "  %-9s %s\n", name, v) }
	fmt.Fprintf(w, "%s (%s)\n", a.Label(), a.Target.Pos)
	field("key", st.key.String())
	field("package", "//"+p.Package)
	for i, c := range p.Cmds {
		name := "cmd"
		if i > 0 {
			name = ""
		}
		field(name, strings.ReplaceAll(c, "\n", "\n            "))
	}
	if len(p.Env) == 0 {
		field("env", "(none)")
	}
	for i, k := range sortedEnv(p.Env) {
		name := "env"
		if i > 0 {
			name = ""
		}
		field(name, fmt.Sprintf("%s=%q", k, p.Env[k]))
	}
	if len(p.Secrets) == 0 {
		field("secrets", "(none)")
	} else {
		field("secrets", list(p.Secrets)+" (names only: values are not part of the key)")
	}
	field("image", orNone(p.Image))
	field("platform", p.Platform)
	field("network", fmt.Sprint(p.Network))
	field("outs", list(p.Outs))
	owner := inputOwner(a)
	in := append([]graph.KeyInput(nil), p.Inputs...)
	sort.Slice(in, func(i, j int) bool { return in[i].Path < in[j].Path })
	field("inputs", fmt.Sprint(len(in)))
	width := 0
	for _, f := range in {
		width = max(width, len(f.Path))
	}
	for _, f := range in {
		var notes []string
		if f.Exec {
			notes = append(notes, "executable")
		}
		if f.Tree {
			notes = append(notes, "directory")
		}
		if dep := owner(f.Path); dep != "" {
			notes = append(notes, "output of "+dep)
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("    %-*s  %s  %s", width, f.Path, f.Digest.Short(), strings.Join(notes, ", ")), " "))
	}
	if len(a.Deps) == 0 {
		field("deps", "(none)")
	}
	for i, d := range a.Deps {
		name := "deps"
		if i > 0 {
			name = ""
		}
		ds := x.known[d]
		var outs []string
		for _, o := range ds.outputs {
			outs = append(outs, path.Base(o.Path)+" "+o.Digest.Short())
		}
		field(name, fmt.Sprintf("%s  %s; outputs: %s", d.Label(), ds.note, strings.Join(outs, ", ")))
	}
}

func sortedEnv(env map[string]string) []string {
	ks := make([]string, 0, len(env))
	for k := range env {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// compare prints the difference with the label's newest history entry and
// whether the current key is a cache hit.
func (x *explainer) compare(a *graph.Action, st *depState) error {
	w, t := x.w, a.Target
	label := a.Label().String()
	hist, err := history.StageHistory(x.ctx, x.s.DB, x.s.Scope, label, 1)
	if err != nil {
		return errkind.Infra(err)
	}
	fmt.Fprintln(w)
	var prev *history.StageEntry
	if len(hist) > 0 {
		prev = &hist[0]
	}
	switch {
	case prev == nil:
		fmt.Fprintf(w, "no previous run of %s is recorded in this cache\n", label)
	case prev.Key == st.key:
		fmt.Fprintf(w, "unchanged since run %s", x.runName(prev.Run, prev.Time))
		if prev.Status == history.StageFailed {
			fmt.Fprint(w, ", which failed")
		}
		switch {
		case st.hit:
			fmt.Fprintf(w, ": cache hit%s\n", x.builtBy(prev, st.key))
		case t.Deploy:
			fmt.Fprintln(w, ": deploy stages always run (with --deploy)")
		case !t.Cache:
			fmt.Fprintln(w, ": cache = False, so it runs on every build")
		case prev.Status == history.StageFailed:
			fmt.Fprintln(w, ": failures are not cached, so it would run again")
		default:
			fmt.Fprintln(w, ", but its result is no longer in the cache: it would run")
		}
		return nil
	default:
		fmt.Fprintf(w, "changed since run %s (%s, key %s):\n", x.runName(prev.Run, prev.Time), prev.Status, prev.Key.Short())
		x.printChanges(a, st, prev)
	}
	switch {
	case t.Deploy:
		fmt.Fprintln(w, "deploy stages always run (with --deploy)")
	case !t.Cache:
		fmt.Fprintln(w, "cache = False: it runs on every build")
	case st.hit:
		fmt.Fprintf(w, "cache hit%s\n", x.builtBy(nil, st.key))
	default:
		fmt.Fprintln(w, "not in the cache: it would run")
	}
	return nil
}

func (x *explainer) printChanges(a *graph.Action, st *depState, prev *history.StageEntry) {
	b, err := history.KeyParts(x.ctx, x.s.DB, prev.Key)
	var parts graph.KeyParts
	if err == nil && b != nil {
		err = json.Unmarshal(b, &parts)
	}
	if err != nil || b == nil {
		fmt.Fprintf(x.w, "  (the key parts of run %d are not stored: cannot say what changed)\n", prev.Run)
		return
	}
	changes := diffParts(&parts, st.parts, inputOwner(a))
	if len(changes) == 0 {
		// Same parts, other key: a new key format (mc was upgraded).
		fmt.Fprintln(x.w, "  the key format changed (a different version of mc)")
	}
	for _, c := range changes {
		fmt.Fprintf(x.w, "  %s\n", c.line())
		for _, d := range c.detail {
			if len(c.detail) == 1 && strings.Contains(c.verb, d) {
				break // already on the line
			}
			fmt.Fprintf(x.w, "      %s\n", d)
		}
	}
}

// builtBy names the run that built key: " (built by run N at TIME)";
// e is the history entry just named, if any.
func (x *explainer) builtBy(e *history.StageEntry, key cas.Digest) string {
	if e != nil && e.Status == history.StageBuilt && e.Key == key {
		return ", built by that run"
	}
	by, err := history.BuiltBy(x.ctx, x.s.DB, key)
	switch {
	case err != nil || by == nil:
		return " (built by a run this cache has no history of)"
	case by.Scope != x.s.Scope:
		return fmt.Sprintf(" (built by run %s in %s)", x.runName(by.Run, by.Time), by.Scope)
	}
	return fmt.Sprintf(" (built by run %s)", x.runName(by.Run, by.Time))
}

// runName is "7 at 2025-01-02 15:04:05 (mc build //...)".
func (x *explainer) runName(id int64, at time.Time) string {
	s := fmt.Sprintf("%d at %s", id, at.Local().Format("2006-01-02 15:04:05"))
	if r, err := history.Run(x.ctx, x.s.DB, id); err == nil && r != nil {
		s += " (mc " + r.Command + ")"
	}
	return s
}

// platform is the platform of the keys a build on this machine computes.
const platform = runtime.GOOS + "/" + runtime.GOARCH
