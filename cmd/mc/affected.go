package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/vcs"
)

// changes lists the workspace files that differ between git revision rev
// and the working tree (for changed(), affected() and --affected-since).
func (s *session) changes(ctx context.Context, rev string) ([]graph.FileChange, error) {
	chs, err := vcs.Changes(ctx, s.root, rev)
	if err != nil {
		return nil, err
	}
	out := make([]graph.FileChange, len(chs))
	for i, c := range chs {
		st := graph.FileModified
		switch c.Status {
		case vcs.Added:
			st = graph.FileAdded
		case vcs.Deleted:
			st = graph.FileDeleted
		}
		out[i] = graph.FileChange{Path: c.Path, Status: st}
	}
	return out, nil
}

// defaultAffectedPatterns makes //... the pattern of `mc build
// --affected-since=REV` without patterns: everything affected.
func defaultAffectedPatterns(fs *pflag.FlagSet, rev string) {
	if rev != "" && fs.NArg() == 0 {
		_ = fs.Parse([]string{"--", "//..."}) // the flags parsed before keep their values
	}
}

// filterAffected keeps the roots that are affected by the changes since
// rev: they, or something they depend on, changed (affected(REV) of mc
// query, within the selected roots). rev "" keeps every root. The graph
// holds every dependency of the roots, which is all this needs: no other
// package is loaded.
func filterAffected(ctx context.Context, s *session, g *graph.Graph, roots []graph.Label, rev string) ([]graph.Label, error) {
	if rev == "" {
		return roots, nil
	}
	chs, err := s.changes(ctx, rev)
	if err != nil {
		return nil, err
	}
	return g.DependingOn(roots, g.ChangedTargets(chs, s.eval.IsPackage)), nil
}
