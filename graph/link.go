package graph

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// PackageSource evaluates packages. The evaluator (builtins) implements it;
// graph only sees the plain-data result.
type PackageSource interface {
	Packages(ctx context.Context, pkgs []string) ([]*Package, error)
	IsPackage(pkg string) bool
	FindPackages(ctx context.Context, under string) ([]string, error)
	// IsSourceFile reports whether pkg/name is a regular file of the workspace.
	IsSourceFile(pkg, name string) bool
}

// RefKind says what a resolved reference points at.
type RefKind int

const (
	RefRule   RefKind = iota // a stage, image or filegroup
	RefOutput                // one declared output of a stage
	RefSource                // a source file
)

// Ref is a resolved srcs/deps/files entry.
type Ref struct {
	Label Label // for RefOutput: the producing stage
	Kind  RefKind
	// Output is the declared out (package-relative, as written) for RefOutput;
	// the file name for RefSource (equal to Label.Name).
	Output string
}

// Graph is the linked target graph: every label resolved, no cycles.
type Graph struct {
	Packages map[string]*Package
	Targets  map[Label]*Target
	// Refs holds each target's resolved srcs then deps (and, for images,
	// base and files), in declaration order, duplicates removed.
	Refs map[Label][]Ref
	// Rdeps is the reverse of the rule edges in Refs (output references
	// count as edges to the producing stage; source files are not keyed here).
	Rdeps map[Label][]Label
	// Outputs maps a stage's output labels (pkg:out, without a trailing "/")
	// to the stage.
	Outputs map[Label]*Target
}

// Load evaluates pkgs and every package their targets reference, transitively.
func Load(ctx context.Context, src PackageSource, pkgs []string) (map[string]*Package, error) {
	loaded := map[string]*Package{}
	todo := pkgs
	for len(todo) > 0 {
		var want []string
		seen := map[string]bool{}
		for _, p := range todo {
			if _, ok := loaded[p]; !ok && !seen[p] && src.IsPackage(p) {
				seen[p] = true
				want = append(want, p)
			}
		}
		if len(want) == 0 {
			break
		}
		sort.Strings(want)
		got, err := src.Packages(ctx, want)
		if err != nil {
			return nil, err
		}
		todo = nil
		for _, p := range got {
			loaded[p.Name] = p
			for _, t := range p.Targets {
				for _, l := range referenced(t) {
					if _, ok := loaded[l.Pkg]; !ok && l.Pkg != p.Name {
						todo = append(todo, l.Pkg)
					}
				}
			}
		}
	}
	return loaded, nil
}

// referenced lists every label a target names, in declaration order.
func referenced(t *Target) []Label {
	out := append(append([]Label(nil), t.Srcs...), t.Deps...)
	if l, ok := imageLabel(t.Image, t.Label.Pkg); ok {
		out = append(out, l)
	}
	if s := t.ImageSpec; s != nil {
		if l, ok := imageLabel(s.Base, t.Label.Pkg); ok {
			out = append(out, l)
		}
		dests := make([]string, 0, len(s.Files))
		for d := range s.Files {
			dests = append(dests, d)
		}
		sort.Strings(dests)
		for _, d := range dests {
			out = append(out, s.Files[d])
		}
	}
	return out
}

// imageLabel parses an image attribute that names a target ("//images:go",
// ":base"); registry references ("debian:12", "ghcr.io/x/y@sha256:…") are not labels.
func imageLabel(s, pkg string) (Label, bool) {
	if !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, ":") {
		return Label{}, false
	}
	l, err := ParseLabel(s, pkg)
	return l, err == nil
}

// Link resolves every reference of the loaded packages and checks the graph
// for cycles. Errors are *Error at the position of the referring target.
func Link(ctx context.Context, src PackageSource, pkgs map[string]*Package) (*Graph, error) {
	src = &memoPackages{PackageSource: src, known: map[string]bool{}}
	g := &Graph{
		Packages: pkgs,
		Targets:  map[Label]*Target{},
		Refs:     map[Label][]Ref{},
		Rdeps:    map[Label][]Label{},
		Outputs:  map[Label]*Target{},
	}
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, t := range pkgs[n].Targets {
			g.Targets[t.Label] = t
		}
	}
	for _, n := range names {
		for _, t := range pkgs[n].Targets {
			for _, o := range t.Outs {
				ol := Label{t.Label.Pkg, strings.TrimSuffix(o, "/")}
				if prev, dup := g.Outputs[ol]; dup {
					return nil, errorf(t.Pos, "%s: output %s is also declared by %s (%s)", t.Label, o, prev.Label, prev.Pos)
				}
				if other, clash := g.Targets[ol]; clash {
					return nil, errorf(t.Pos, "%s: output %s has the name of %s %s", t.Label, o, other.Kind, other.Label)
				}
				g.Outputs[ol] = t
			}
		}
	}
	var all []*Target
	for _, n := range names {
		all = append(all, pkgs[n].Targets...)
	}
	refs, errs := g.resolveAll(ctx, src, all)
	// Recorded in order: the graph and the error reported are those of
	// resolving the targets one by one.
	for i, t := range all {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if len(refs[i]) > 0 {
			g.Refs[t.Label] = refs[i]
		}
		for _, r := range refs[i] {
			if r.Kind != RefSource {
				g.Rdeps[r.Label] = append(g.Rdeps[r.Label], t.Label)
			}
		}
	}
	if err := g.checkCycles(); err != nil {
		return nil, err
	}
	return g, nil
}

// resolveAll resolves every target's labels, on as many goroutines as
// there are processors: in a large graph this is most of linking, and
// mostly one stat(2) per source file (is the label a file?). It only reads
// the graph.
func (g *Graph) resolveAll(ctx context.Context, src PackageSource, all []*Target) ([][]Ref, []error) {
	refs := make([][]Ref, len(all))
	errs := make([]error, len(all))
	const chunk = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (len(all)+chunk-1)/chunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(all) {
					return
				}
				for i := lo; i < min(lo+chunk, len(all)); i++ {
					refs[i], errs[i] = g.resolve(ctx, src, all[i])
				}
			}
		}()
	}
	wg.Wait()
	return refs, errs
}

// resolve returns the references of t's labels, in the order named and
// without repeats.
func (g *Graph) resolve(ctx context.Context, src PackageSource, t *Target) ([]Ref, error) {
	var refs []Ref
	seen := map[Ref]bool{}
	add := func(r Ref) {
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for _, l := range t.Srcs {
		r, err := g.lookup(ctx, src, t, "srcs", l, true)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	for _, l := range t.Deps {
		r, err := g.lookup(ctx, src, t, "deps", l, false)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	if l, ok := imageLabel(t.Image, t.Label.Pkg); ok {
		r, err := g.lookup(ctx, src, t, "image", l, false)
		if err != nil {
			return nil, err
		}
		if r.Kind != RefRule || g.Targets[r.Label].Kind != KindImage {
			return nil, errorf(t.Pos, "%s: image = %q is not an image target", t.Label, t.Image)
		}
		add(r)
	}
	if s := t.ImageSpec; s != nil {
		if l, ok := imageLabel(s.Base, t.Label.Pkg); ok {
			r, err := g.lookup(ctx, src, t, "base", l, false)
			if err != nil {
				return nil, err
			}
			if r.Kind != RefRule || g.Targets[r.Label].Kind != KindImage {
				return nil, errorf(t.Pos, "%s: base = %q is not an image target", t.Label, s.Base)
			}
			add(r)
		}
		dests := make([]string, 0, len(s.Files))
		for d := range s.Files {
			dests = append(dests, d)
		}
		sort.Strings(dests)
		for _, d := range dests {
			r, err := g.lookup(ctx, src, t, "files", s.Files[d], true)
			if err != nil {
				return nil, err
			}
			add(r)
		}
	}
	return refs, nil
}

// lookup resolves one label named by attribute attr of t.
func (g *Graph) lookup(ctx context.Context, src PackageSource, t *Target, attr string, l Label, filesOK bool) (Ref, error) {
	if l == t.Label {
		return Ref{}, errorf(t.Pos, "%s: %s: a target cannot depend on itself", t.Label, attr)
	}
	if d, ok := g.Targets[l]; ok {
		if d.Kind == KindStage && d.Test && !t.Test {
			return Ref{}, errorf(t.Pos, "%s: %s: %s is a test stage; only test stages may depend on it", t.Label, attr, l)
		}
		if d.Kind == KindStage && d.Deploy && !t.Deploy {
			return Ref{}, errorf(t.Pos, "%s: %s: %s is a deploy stage; only deploy stages may depend on it", t.Label, attr, l)
		}
		return Ref{Label: l, Kind: RefRule}, nil
	}
	if d, ok := g.Outputs[Label{l.Pkg, strings.TrimSuffix(l.Name, "/")}]; ok {
		if d.Test && !t.Test || d.Deploy && !t.Deploy {
			return Ref{}, errorf(t.Pos, "%s: %s: %s is an output of test or deploy stage %s", t.Label, attr, l, d.Label)
		}
		out := ""
		for _, o := range d.Outs {
			if strings.TrimSuffix(o, "/") == strings.TrimSuffix(l.Name, "/") {
				out = o
			}
		}
		return Ref{Label: d.Label, Kind: RefOutput, Output: out}, nil
	}
	pkg, loaded := g.Packages[l.Pkg]
	if !loaded {
		if !src.IsPackage(l.Pkg) {
			return Ref{}, g.noPackage(ctx, src, t, attr, l)
		}
		// Load guarantees referenced packages are loaded; reaching here is a bug.
		return Ref{}, fmt.Errorf("internal error: package %q referenced by %s was not loaded", l.Pkg, t.Label)
	}
	if filesOK {
		// A file reached through a subdirectory that is itself a package
		// belongs to that package (as in Bazel).
		if i := strings.LastIndexByte(l.Name, '/'); i >= 0 {
			for dir := l.Name[:i]; ; {
				sub := joinPkg(l.Pkg, dir)
				if src.IsPackage(sub) {
					return Ref{}, errorf(t.Pos, "%s: %s: %s crosses into package //%s; use //%s:%s", t.Label, attr, l, sub, sub, strings.TrimPrefix(l.Name, dir+"/"))
				}
				j := strings.LastIndexByte(dir, '/')
				if j < 0 {
					break
				}
				dir = dir[:j]
			}
		}
		if src.IsSourceFile(l.Pkg, l.Name) {
			return Ref{Label: l, Kind: RefSource, Output: l.Name}, nil
		}
	}
	var cands []string
	for _, x := range pkg.Targets {
		if x == t {
			continue // never suggest that a target depend on itself
		}
		cands = append(cands, x.Label.Name)
		cands = append(cands, x.Outs...)
	}
	what := "no target, output or source file"
	if !filesOK {
		what = "no target or output"
	}
	return Ref{}, errorf(t.Pos, "%s: %s: %s names nothing: %s %q in %s%s",
		t.Label, attr, l, what, l.Name, pkg.File, didYouMean(prefixAll(":", Closest(l.Name, cands))))
}

func (g *Graph) noPackage(ctx context.Context, src PackageSource, t *Target, attr string, l Label) error {
	all, _ := src.FindPackages(ctx, "")
	return errorf(t.Pos, "%s: %s: %s names nothing: there is no package %q (no %s)%s",
		t.Label, attr, l, l.Pkg, joinPkg(l.Pkg, "BUILD.mc"), didYouMean(prefixAll("//", Closest(l.Pkg, all))))
}

func prefixAll(p string, xs []string) []string {
	for i := range xs {
		xs[i] = p + xs[i]
	}
	return xs
}

// checkCycles finds a cycle among rule edges with an iterative DFS and
// reports it as //a:x -> //b:y -> //a:x at the first target's position.
func (g *Graph) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	color := map[Label]int{}
	labels := make([]Label, 0, len(g.Targets))
	for l := range g.Targets {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Less(labels[j]) })
	type frame struct {
		l Label
		i int
	}
	for _, root := range labels {
		if color[root] != white {
			continue
		}
		stack := []frame{{root, 0}}
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			refs := g.Refs[top.l]
			if top.i >= len(refs) {
				color[top.l] = black
				stack = stack[:len(stack)-1]
				continue
			}
			r := refs[top.i]
			top.i++
			if r.Kind == RefSource {
				continue
			}
			switch color[r.Label] {
			case grey:
				var cyc []string
				start := 0
				for k := range stack {
					if stack[k].l == r.Label {
						start = k
					}
				}
				for _, f := range stack[start:] {
					cyc = append(cyc, f.l.String())
				}
				cyc = append(cyc, r.Label.String())
				return errorf(g.Targets[r.Label].Pos, "dependency cycle: %s", strings.Join(cyc, " -> "))
			case white:
				color[r.Label] = grey
				stack = append(stack, frame{r.Label, 0})
			}
		}
	}
	return nil
}
