package main

import (
	"bufio"
	"context"
	"slices"
	"strings"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/queryout"
)

func runQuery(ctx context.Context, e *env, args []string) error {
	var output, cacheDir string
	fs := newFlags(e, "query", "[FLAGS] 'EXPR'")
	fs.StringVar(&output, "output", "label", "label, label_kind, json, dot or build")
	fs.StringVar(&cacheDir, "cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/mc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !slices.Contains(queryout.Formats, output) {
		return usagef("--output must be one of label, label_kind, json, dot, build; not %q", output)
	}
	switch fs.NArg() {
	case 0:
		return usagef("query: no expression given (try mc query 'deps(//...)')")
	case 1:
	default:
		return usagef("query: one expression expected, got %d arguments (quote it: mc query '%s')", fs.NArg(), strings.Join(fs.Args(), " "))
	}
	// A syntax error needs no workspace: report it before opening one.
	q, err := graph.ParseQuery(fs.Arg(0))
	if err != nil {
		return err
	}
	s, err := openSession(ctx, e, cacheDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	res, err := graph.RunQuery(ctx, &graph.QueryEnv{Src: s.Eval, Dir: s.RelDir, Changes: s.Changes}, q)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	if _, err := queryout.Write(w, output, res); err != nil {
		return err
	}
	return w.Flush()
}
