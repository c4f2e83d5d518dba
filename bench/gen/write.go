package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// writeRepo writes the workspace for g under dir, creating dir if needed.
// Existing files of the same names are overwritten; nothing else is touched.
func writeRepo(dir string, g *Graph) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"WORKSPACE.mc", workspaceFile()},
		{"build.ninja", ninjaFile(g)},
		{"edges.txt", edgesFile(g)},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	// Draw all contents up front, in order, so they do not depend on how the
	// writers below are scheduled. They come from their own stream (see Generate).
	r := rand.New(rand.NewPCG(g.Params.Seed, 0x6d632d7372637321))
	srcs := make([][]byte, len(g.Stages))
	for i, st := range g.Stages {
		srcs[i] = sourceFile(r, st.ID)
	}
	// Creating ~11k small files is syscall-bound; a few writers keep the
	// generator well under a second for 10k stages.
	var eg errgroup.Group
	eg.SetLimit(2 * runtime.GOMAXPROCS(0))
	n := g.Params.Stages
	for p := range g.Params.Packages {
		eg.Go(func() error { return writePackage(dir, g.Package(p), srcs[p*n:(p+1)*n]) })
	}
	return eg.Wait()
}

// writePackage writes one package's BUILD.mc and source files.
func writePackage(dir string, stages []Stage, srcs [][]byte) error {
	pkgDir := filepath.Join(dir, stages[0].ID.PkgName())
	if err := os.MkdirAll(filepath.Join(pkgDir, "src"), 0o755); err != nil {
		return fmt.Errorf("create package dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(pkgDir, "BUILD.mc"), buildFile(stages), 0o644); err != nil {
		return fmt.Errorf("write BUILD.mc: %w", err)
	}
	for i, st := range stages {
		if err := os.WriteFile(filepath.Join(pkgDir, st.ID.Src()), srcs[i], 0o644); err != nil {
			return fmt.Errorf("write source: %w", err)
		}
	}
	return nil
}
