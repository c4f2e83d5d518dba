package graph

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
)

// QueryEnv is what RunQuery needs from the workspace.
type QueryEnv struct {
	Src PackageSource
	// Dir is the package of the invoking directory: relative patterns
	// (:x, ..., pkg/...) resolve against it.
	Dir string
	// Changes lists the files that differ between revision rev and the
	// working tree, for changed() and affected(). Nil makes them an error.
	Changes func(ctx context.Context, rev string) ([]FileChange, error)
}

// QueryResult is an evaluated query.
type QueryResult struct {
	// Nodes is the result set, sorted by label.
	Nodes []*QueryNode
	// Edges are the direct dependencies among Nodes (from, to: indexes into
	// Nodes), sorted.
	Edges [][2]int
	// Graph is the linked graph the query ran on.
	Graph *Graph
}

// RunQuery loads the packages q needs (the packages its patterns name,
// and what they reference; every package for //..., changed() and
// affected()), links them and evaluates q. Mistakes in q are *QueryError.
func RunQuery(ctx context.Context, env *QueryEnv, q *Query) (*QueryResult, error) {
	ev := &qeval{ctx: ctx, env: env, pats: map[*qword]Pattern{}, regexps: map[*qword]*regexp.Regexp{}, changes: map[string][]FileChange{}}
	pkgs := map[string]bool{}
	if err := ev.check(q.root, nil, pkgs); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	loaded, err := Load(ctx, env.Src, names)
	if err != nil {
		return nil, err
	}
	g, err := Link(ctx, env.Src, loaded)
	if err != nil {
		return nil, err
	}
	ev.g = g
	ev.ix = newQueryIndex(g)
	set, err := ev.eval(q.root, nil)
	if err != nil {
		return nil, err
	}
	return ev.result(set), nil
}

type qeval struct {
	ctx     context.Context
	env     *QueryEnv
	g       *Graph
	ix      *queryIndex
	pats    map[*qword]Pattern
	regexps map[*qword]*regexp.Regexp
	changes map[string][]FileChange // by revision
	all     []string                // every package, once listed
	listed  bool                    // all is set
}

// scope binds let variables; inner bindings shadow outer ones.
type scope struct {
	name string
	val  *nodeSet
	up   *scope
}

func (s *scope) lookup(name string) (*scope, bool) {
	for ; s != nil; s = s.up {
		if s.name == name {
			return s, true
		}
	}
	return nil, false
}

func errAt(t token, format string, args ...any) *QueryError {
	return &QueryError{Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

// check validates q before anything is loaded (variables, patterns,
// regexps, attribute names, revisions) and collects the packages to load.
func (ev *qeval) check(e qexpr, sc *scope, pkgs map[string]bool) error {
	switch e := e.(type) {
	case *qword:
		return ev.checkPattern(e, pkgs)
	case *qvar:
		if _, ok := sc.lookup(e.tok.text); !ok {
			return errAt(e.tok, "undefined variable $%s (define it with let %s = ... in ...)", e.tok.text, e.tok.text)
		}
	case *qlet:
		if err := ev.check(e.val, sc, pkgs); err != nil {
			return err
		}
		return ev.check(e.body, &scope{name: e.name.text, up: sc}, pkgs)
	case *qset:
		for i := range e.words {
			if err := ev.checkPattern(&e.words[i], pkgs); err != nil {
				return err
			}
		}
	case *qbinary:
		if err := ev.check(e.left, sc, pkgs); err != nil {
			return err
		}
		return ev.check(e.right, sc, pkgs)
	case *qcall:
		return ev.checkCall(e, sc, pkgs)
	}
	return nil
}

func (ev *qeval) checkCall(c *qcall, sc *scope, pkgs map[string]bool) error {
	for i, a := range c.args {
		w, isWord := a.(*qword)
		switch {
		case !isWord || queryFuncs[c.name].args[i] == argExpr:
			if err := ev.check(a, sc, pkgs); err != nil {
				return err
			}
		case c.name == "attr" && i == 0:
			if !knownAttrs[w.tok.text] {
				return errAt(w.tok, "unknown attribute %q%s (attributes: %s)", w.tok.text,
					didYouMean(Closest(w.tok.text, sortedKeys(knownAttrs))), strings.Join(sortedKeys(knownAttrs), ", "))
			}
		case c.name == "labels":
			if !labelAttrs[w.tok.text] {
				return errAt(w.tok, "labels: %q is not a label attribute (one of: %s)", w.tok.text, strings.Join(sortedKeys(labelAttrs), ", "))
			}
		case c.name == "changed" || c.name == "affected":
			if w.tok.text == "" || strings.HasPrefix(w.tok.text, "-") || strings.ContainsAny(w.tok.text, "\x00\n") {
				return errAt(w.tok, "%s: invalid git revision %q", c.name, w.tok.text)
			}
			if ev.env.Changes == nil {
				return errAt(c.tok, "%s() is not available here", c.name)
			}
			// Ask git now: an unknown revision fails before anything is loaded.
			if _, err := ev.fileChanges(w.tok.text); err != nil {
				return err
			}
			if err := ev.addAll(pkgs); err != nil {
				return err
			}
		default: // a regex
			re, err := regexp.Compile(w.tok.text)
			if err != nil {
				return errAt(w.tok, "%s: invalid regular expression %q: %v", c.name, w.tok.text, regexpReason(err))
			}
			ev.regexps[w] = re
		}
	}
	return nil
}

func regexpReason(err error) string {
	var re *syntax.Error
	if errors.As(err, &re) {
		return string(re.Code)
	}
	return err.Error()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// addAll adds every package of the workspace to pkgs.
func (ev *qeval) addAll(pkgs map[string]bool) error {
	if !ev.listed {
		all, err := ev.env.Src.FindPackages(ev.ctx, "")
		if err != nil {
			return err
		}
		ev.all, ev.listed = all, true
	}
	for _, p := range ev.all {
		pkgs[p] = true
	}
	return nil
}

func (ev *qeval) checkPattern(w *qword, pkgs map[string]bool) error {
	p, err := ParsePattern(w.tok.text, ev.env.Dir)
	if err != nil {
		var le *LabelError
		if errors.As(err, &le) {
			return errAt(w.tok, "invalid target pattern %q: %s", w.tok.text, le.Reason)
		}
		return errAt(w.tok, "invalid target pattern %q: %v", w.tok.text, err)
	}
	ev.pats[w] = p
	src := ev.env.Src
	switch p.Kind {
	case PatternRecursive:
		if p.Label.Pkg == "" {
			return ev.addAll(pkgs)
		}
		found, err := src.FindPackages(ev.ctx, p.Label.Pkg)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errAt(w.tok, "no packages match %s (there is no directory //%s)", w.tok.text, p.Label.Pkg)
			}
			return err
		}
		if len(found) == 0 {
			return errAt(w.tok, "no packages match %s (no BUILD.mc files at or below //%s)", w.tok.text, p.Label.Pkg)
		}
		for _, f := range found {
			pkgs[f] = true
		}
	default:
		if !src.IsPackage(p.Label.Pkg) {
			all, _ := src.FindPackages(ev.ctx, "")
			return errAt(w.tok, "%s: there is no package %q (no %s)%s", w.tok.text, p.Label.Pkg,
				joinPkg(p.Label.Pkg, "BUILD.mc"), didYouMean(prefixAll("//", Closest(p.Label.Pkg, all))))
		}
		pkgs[p.Label.Pkg] = true
	}
	return nil
}

func (ev *qeval) eval(e qexpr, sc *scope) (*nodeSet, error) {
	if err := ev.ctx.Err(); err != nil {
		return nil, err
	}
	switch e := e.(type) {
	case *qword:
		return ev.pattern(e)
	case *qvar:
		s, _ := sc.lookup(e.tok.text)
		return s.val, nil
	case *qlet:
		v, err := ev.eval(e.val, sc)
		if err != nil {
			return nil, err
		}
		return ev.eval(e.body, &scope{name: e.name.text, val: v, up: sc})
	case *qset:
		out := &nodeSet{}
		for i := range e.words {
			s, err := ev.pattern(&e.words[i])
			if err != nil {
				return nil, err
			}
			out = out.union(s)
		}
		return out, nil
	case *qbinary:
		l, err := ev.eval(e.left, sc)
		if err != nil {
			return nil, err
		}
		r, err := ev.eval(e.right, sc)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case '+':
			return l.union(r), nil
		case '-':
			return l.except(r), nil
		}
		return l.intersect(r), nil
	case *qcall:
		return ev.call(e, sc)
	}
	return nil, fmt.Errorf("internal error: unknown query node %T", e)
}

// pattern evaluates a target pattern: //... and :all are the rule targets
// of their packages; a label names a rule, a generated file or a source file.
func (ev *qeval) pattern(w *qword) (*nodeSet, error) {
	p := ev.pats[w]
	out := &nodeSet{}
	switch p.Kind {
	case PatternRecursive:
		for pkg, ids := range ev.ix.rules {
			if p.MatchesPkg(pkg) {
				for _, id := range ids {
					out.add(id)
				}
			}
		}
	case PatternAll:
		for _, id := range ev.ix.rules[p.Label.Pkg] {
			out.add(id)
		}
	default:
		id, err := ev.label(w, p.Label)
		if err != nil {
			return nil, err
		}
		out.add(id)
	}
	return out, nil
}

// label resolves a label word to its node.
func (ev *qeval) label(w *qword, l Label) (int32, error) {
	if id, ok := ev.ix.ids[Label{l.Pkg, strings.TrimSuffix(l.Name, "/")}]; ok {
		return id, nil
	}
	// A file below a sub-package belongs to that package (as in Link).
	for dir := path.Dir(l.Name); dir != "."; dir = path.Dir(dir) {
		if sub := joinPkg(l.Pkg, dir); ev.env.Src.IsPackage(sub) {
			return 0, errAt(w.tok, "%s crosses into package //%s; use //%s:%s", w.tok.text, sub, sub, strings.TrimPrefix(l.Name, dir+"/"))
		}
	}
	if ev.env.Src.IsSourceFile(l.Pkg, l.Name) {
		return ev.ix.add(l, QueryKindSource, nil), nil
	}
	pkg := ev.g.Packages[l.Pkg]
	var cands []string
	for _, t := range pkg.Targets {
		cands = append(cands, ":"+t.Label.Name)
		for _, o := range t.Outs {
			cands = append(cands, ":"+strings.TrimSuffix(o, "/"))
		}
	}
	return 0, errAt(w.tok, "%s names nothing: no target, output or source file %q in %s%s",
		w.tok.text, l.Name, pkg.File, didYouMean(Closest(":"+l.Name, cands)))
}

func (ev *qeval) call(c *qcall, sc *scope) (*nodeSet, error) {
	arg := func(i int) (*nodeSet, error) { return ev.eval(c.args[i], sc) }
	depth := func(i int) int {
		if i < len(c.args) {
			return c.args[i].(*qint).n
		}
		return -1
	}
	word := func(i int) *qword { return c.args[i].(*qword) }
	switch c.name {
	case "deps":
		x, err := arg(0)
		if err != nil {
			return nil, err
		}
		return closure(ev.ix.fwd, x, depth(1), nil), nil
	case "rdeps":
		u, err := arg(0)
		if err != nil {
			return nil, err
		}
		x, err := arg(1)
		if err != nil {
			return nil, err
		}
		return closure(ev.ix.rev, x, depth(2), closure(ev.ix.fwd, u, -1, nil)), nil
	case "allpaths", "somepath":
		from, err := arg(0)
		if err != nil {
			return nil, err
		}
		to, err := arg(1)
		if err != nil {
			return nil, err
		}
		if c.name == "somepath" {
			return somePath(ev.ix.fwd, from, to), nil
		}
		return closure(ev.ix.fwd, from, -1, nil).intersect(closure(ev.ix.rev, to, -1, nil)), nil
	case "kind", "filter", "attr":
		x, err := arg(len(c.args) - 1)
		if err != nil {
			return nil, err
		}
		return ev.filter(c, x), nil
	case "tests":
		x, err := arg(0)
		if err != nil {
			return nil, err
		}
		out := &nodeSet{}
		x.each(func(i int32) {
			if n := ev.ix.nodes[i]; n.IsRule() && n.Target.Kind == KindStage && n.Target.Test {
				out.add(i)
			}
		})
		return out, nil
	case "buildfiles":
		x, err := arg(0)
		if err != nil {
			return nil, err
		}
		return ev.buildfiles(x), nil
	case "labels":
		x, err := arg(1)
		if err != nil {
			return nil, err
		}
		return ev.labels(word(0).tok.text, x), nil
	case "changed", "affected":
		ch, err := ev.changed(word(0).tok.text)
		if err != nil {
			return nil, err
		}
		if c.name == "affected" {
			all := &nodeSet{}
			for _, ids := range ev.ix.rules {
				for _, id := range ids {
					all.add(id)
				}
			}
			return closure(ev.ix.rev, ch, -1, closure(ev.ix.fwd, all, -1, nil)), nil
		}
		return ch, nil
	}
	return nil, fmt.Errorf("internal error: unknown query function %q", c.name)
}

// filter implements kind, filter and attr: the members of x whose kind,
// label or attribute matches the regex (unanchored, as in Bazel).
func (ev *qeval) filter(c *qcall, x *nodeSet) *nodeSet {
	re := ev.regexps[c.args[len(c.args)-2].(*qword)]
	out := &nodeSet{}
	x.each(func(i int32) {
		n := ev.ix.nodes[i]
		var ok bool
		switch c.name {
		case "kind":
			ok = re.MatchString(n.Kind)
		case "filter":
			ok = re.MatchString(n.Label.String())
		default:
			if n.IsRule() {
				vals, has := AttrValues(n.Target, c.args[0].(*qword).tok.text)
				ok = has && matchAny(re, vals)
			}
		}
		if ok {
			out.add(i)
		}
	})
	return out
}

// matchAny: a list attribute matches if one of its elements does; an
// empty list matches a regex that matches the empty string.
func matchAny(re *regexp.Regexp, vals []string) bool {
	if len(vals) == 0 {
		return re.MatchString("")
	}
	for _, v := range vals {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// buildfiles returns the BUILD.mc of every package of x's members and
// every .star file those packages loaded, as source-file nodes.
func (ev *qeval) buildfiles(x *nodeSet) *nodeSet {
	pkgs := map[string]bool{}
	x.each(func(i int32) { pkgs[ev.ix.nodes[i].Label.Pkg] = true })
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	out := &nodeSet{}
	for _, p := range names {
		pkg, ok := ev.g.Packages[p]
		if !ok {
			continue
		}
		out.add(ev.ix.add(fileLabel(pkg.File), QueryKindSource, nil))
		for _, f := range pkg.Loads {
			out.add(ev.ix.add(fileLabel(f), QueryKindSource, nil))
		}
	}
	return out
}

// fileLabel labels a workspace file by its directory and base name, the
// way load() names .star files (//tools:go.star).
func fileLabel(p string) Label {
	dir, base := path.Split(p)
	return Label{Pkg: strings.TrimSuffix(dir, "/"), Name: base}
}

// labelAttrs are the attributes labels() accepts.
var labelAttrs = map[string]bool{"srcs": true, "deps": true, "image": true, "base": true, "files": true}

// labels returns the nodes named by attribute attr of the rules in x.
func (ev *qeval) labels(attr string, x *nodeSet) *nodeSet {
	out := &nodeSet{}
	x.each(func(i int32) {
		n := ev.ix.nodes[i]
		if !n.IsRule() {
			return
		}
		t := n.Target
		var ls []Label
		switch attr {
		case "srcs":
			ls = t.Srcs
		case "deps":
			ls = t.Deps
		case "image":
			if l, ok := imageLabel(t.Image, t.Label.Pkg); ok {
				ls = []Label{l}
			}
		case "base":
			if t.ImageSpec != nil {
				if l, ok := imageLabel(t.ImageSpec.Base, t.Label.Pkg); ok {
					ls = []Label{l}
				}
			}
		case "files":
			if t.ImageSpec != nil {
				for _, l := range t.ImageSpec.Files {
					ls = append(ls, l)
				}
			}
		}
		for _, l := range ls {
			// Link resolved every one of them: a rule, an output, or else a source file.
			if id, ok := ev.ix.ids[Label{l.Pkg, strings.TrimSuffix(l.Name, "/")}]; ok {
				out.add(id)
			} else {
				out.add(ev.ix.add(l, QueryKindSource, nil))
			}
		}
	})
	return out
}

// fileChanges asks env.Changes once per revision.
func (ev *qeval) fileChanges(rev string) ([]FileChange, error) {
	if ch, ok := ev.changes[rev]; ok {
		return ch, nil
	}
	ch, err := ev.env.Changes(ev.ctx, rev)
	if err != nil {
		return nil, err
	}
	ev.changes[rev] = ch
	return ch, nil
}

// changed returns the rule nodes whose inputs differ from revision rev.
func (ev *qeval) changed(rev string) (*nodeSet, error) {
	ch, err := ev.fileChanges(rev)
	if err != nil {
		return nil, err
	}
	out := &nodeSet{}
	for _, l := range ev.g.ChangedTargets(ch, ev.env.Src.IsPackage) {
		out.add(ev.ix.ids[l])
	}
	return out, nil
}

// result turns the final set into sorted nodes and the edges among them.
func (ev *qeval) result(s *nodeSet) *QueryResult {
	res := &QueryResult{Graph: ev.g}
	ids := make([]int32, 0, s.len())
	s.each(func(i int32) { ids = append(ids, i) })
	sort.Slice(ids, func(a, b int) bool { return ev.ix.nodes[ids[a]].Label.Less(ev.ix.nodes[ids[b]].Label) })
	pos := make(map[int32]int, len(ids))
	for k, i := range ids {
		pos[i] = k
		res.Nodes = append(res.Nodes, ev.ix.nodes[i])
	}
	for k, i := range ids {
		var tos []int
		for _, j := range ev.ix.fwd[i] {
			if p, ok := pos[j]; ok {
				tos = append(tos, p)
			}
		}
		sort.Ints(tos)
		for _, p := range tos {
			res.Edges = append(res.Edges, [2]int{k, p})
		}
	}
	return res
}
