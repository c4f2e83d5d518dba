package watch

import (
	"context"

	"github.com/mc-build/mc/graph"
)

// Packages is the graph.PackageSource of an evaluation made again after
// a change: it serves the packages of the last evaluation from memory and
// asks Src only for the others (those whose files changed, and packages
// not loaded before), so that graph.Load of a 1,000-package workspace
// re-evaluates one package instead of checking all of them.
type Packages struct {
	graph.PackageSource
	// Have are the packages known unchanged.
	Have map[string]*graph.Package
}

// Packages implements graph.PackageSource.
func (p *Packages) Packages(ctx context.Context, names []string) ([]*graph.Package, error) {
	out := make([]*graph.Package, len(names))
	var ask []string
	var at []int
	for i, n := range names {
		if pkg, ok := p.Have[n]; ok {
			out[i] = pkg
			continue
		}
		ask = append(ask, n)
		at = append(at, i)
	}
	if len(ask) == 0 {
		return out, nil
	}
	got, err := p.PackageSource.Packages(ctx, ask)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = got[j]
	}
	return out, nil
}

// IsPackage implements graph.PackageSource: a package held is one (its
// BUILD.mc did not change, or it would not be held), which spares a
// stat(2) per package of the workspace when the graph is loaded again.
func (p *Packages) IsPackage(pkg string) bool {
	if _, ok := p.Have[pkg]; ok {
		return true
	}
	return p.PackageSource.IsPackage(pkg)
}
