// Command gen writes a synthetic monorepo for benchmarking mc against ninja:
// a WORKSPACE.mc, one BUILD.mc per package with a chain-like DAG of stages,
// an equivalent build.ninja, and edges.txt, the plain edge list that query
// tests use as an independent oracle. Output is a pure function of the flags.
//
//	go run ./bench/gen -out DIR -packages 1000 -stages 10 -seed 1
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(2)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the workspace into (required)")
	var p Params
	fs.IntVar(&p.Packages, "packages", 1000, "number of packages (pkgNNNN)")
	fs.IntVar(&p.Stages, "stages", 10, "stages per package (sNN)")
	fs.Uint64Var(&p.Seed, "seed", 1, "seed for the graph and file contents")
	quiet := fs.Bool("q", false, "do not print a summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	start := time.Now()
	g, err := Generate(p)
	if err != nil {
		return err
	}
	if err := writeRepo(*out, g); err != nil {
		return err
	}
	if !*quiet {
		edges := 0
		for _, st := range g.Stages {
			edges += len(st.Deps)
		}
		fmt.Fprintf(stderr, "gen: %d packages, %d stages, %d dep edges in %s -> %s\n",
			p.Packages, len(g.Stages), edges, time.Since(start).Round(time.Millisecond), *out)
	}
	return nil
}
