package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Limits of the naming scheme: pkgNNNN and sNN.
const (
	maxPackages = 10000
	maxStages   = 100
	maxDeps     = 3
	// crossWindow bounds how far below its own package a cross-package dep
	// may reach. Real monorepos are layered and mostly local; a window keeps
	// the blast radius of one edited file a fraction of the repo instead of
	// nearly everything above it.
	crossWindow = 50
)

// Params selects the shape of the generated repository.
type Params struct {
	Packages int
	Stages   int
	Seed     uint64
}

func (p Params) validate() error {
	if p.Packages < 1 || p.Packages > maxPackages {
		return fmt.Errorf("packages must be in 1..%d, got %d", maxPackages, p.Packages)
	}
	if p.Stages < 1 || p.Stages > maxStages {
		return fmt.Errorf("stages must be in 1..%d, got %d", maxStages, p.Stages)
	}
	return nil
}

// StageID names one stage: package index and stage index.
type StageID struct {
	Pkg, Stage int
}

// PkgName is the package directory, e.g. "pkg0042".
func (id StageID) PkgName() string { return fmt.Sprintf("pkg%04d", id.Pkg) }

// StageName is the target name, e.g. "s03".
func (id StageID) StageName() string { return fmt.Sprintf("s%02d", id.Stage) }

// String is the edges.txt spelling, e.g. "pkg0042:s03".
func (id StageID) String() string { return id.PkgName() + ":" + id.StageName() }

// Src is the stage's source file relative to its package.
func (id StageID) Src() string { return "src/" + id.StageName() + ".txt" }

// Out is the stage's output file relative to its package.
func (id StageID) Out() string { return "out/" + id.StageName() + ".txt" }

// before reports whether id comes strictly earlier than o in the
// generation order; every dep is before its dependent, which is what makes
// the graph acyclic by construction.
func (id StageID) before(o StageID) bool {
	return id.Pkg < o.Pkg || (id.Pkg == o.Pkg && id.Stage < o.Stage)
}

func (id StageID) compare(o StageID) int {
	if id.Pkg != o.Pkg {
		return id.Pkg - o.Pkg
	}
	return id.Stage - o.Stage
}

// Stage is one generated stage and its direct deps, sorted by (package, stage).
type Stage struct {
	ID   StageID
	Deps []StageID
}

// Graph is every stage, package-major: stage s of package p is at p*Stages+s.
type Graph struct {
	Params Params
	Stages []Stage
}

// Package returns the stages of package p.
func (g *Graph) Package(p int) []Stage {
	n := g.Params.Stages
	return g.Stages[p*n : (p+1)*n]
}

// Generate builds the dependency graph for p. It is a pure function of p.
func Generate(p Params) (*Graph, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	// A fixed second PCG word keeps graph and file contents on separate
	// streams, so changing one never reshuffles the other.
	r := rand.New(rand.NewPCG(p.Seed, 0x6d632d6772617068))
	g := &Graph{Params: p, Stages: make([]Stage, 0, p.Packages*p.Stages)}
	for pkg := 0; pkg < p.Packages; pkg++ {
		for s := 0; s < p.Stages; s++ {
			id := StageID{pkg, s}
			g.Stages = append(g.Stages, Stage{ID: id, Deps: pickDeps(r, p, id)})
		}
	}
	return g, nil
}

// pickDeps draws up to maxDeps distinct deps for id: about two thirds from
// earlier stages of the same package, the rest from the crossWindow packages
// below it.
func pickDeps(r *rand.Rand, p Params, id StageID) []StageID {
	if id.Pkg == 0 && id.Stage == 0 {
		return nil
	}
	want := r.IntN(maxDeps + 1)
	deps := make([]StageID, 0, want)
	for range want {
		var d StageID
		if id.Stage > 0 && (id.Pkg == 0 || r.IntN(3) < 2) {
			d = StageID{id.Pkg, r.IntN(id.Stage)}
		} else {
			d = StageID{id.Pkg - 1 - r.IntN(min(id.Pkg, crossWindow)), r.IntN(p.Stages)}
		}
		if !slices.Contains(deps, d) {
			deps = append(deps, d)
		}
	}
	slices.SortFunc(deps, StageID.compare)
	return deps
}
