package builtins

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
)

// BenchmarkNullEvaluation measures what a null build pays for evaluation
// with the package cache: finding 1,000 packages and getting every one of
// them from the cache, with mc's real SQLite store and stat cache.
func BenchmarkNullEvaluation(b *testing.B) {
	const n = 1000
	files := map[string]string{
		"tools/defs.star": "def lib(name):\n    stage(name = name, srcs = glob([\"*.go\"]), cmd = \"go build\", outs = [\"out/\" + name])\n",
	}
	var pkgs []string
	for i := range n {
		p := fmt.Sprintf("d%d/p%d", i/100, i)
		pkgs = append(pkgs, p)
		files[p+"/BUILD.mc"] = "load(\"//tools/defs.star\", \"lib\")\nlib(name = \"bin\")\nfilegroup(name = \"docs\", srcs = glob([\"**/*.md\"], allow_empty = True))\n"
		files[p+"/a.go"] = "package a"
		files[p+"/b.go"] = "package a"
		files[p+"/doc/x.md"] = "# x"
	}
	root := writeTree(b, files)
	// Old mtimes, so that the stat cache trusts every file.
	old := time.Now().Add(-time.Hour)
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		b.Fatal(err)
	}
	db, err := cas.OpenDB(filepath.Join(b.TempDir(), "mc.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	run := func() int {
		sc, err := db.StatCache(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		ws, err := LoadWorkspace(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		e := NewEvaluator(ws, db, sc)
		var evaluated atomic.Int32
		e.onEval = func(string) { evaluated.Add(1) }
		found, err := e.FindPackages(ctx, "")
		if err != nil || len(found) != n {
			b.Fatalf("FindPackages: %d packages, %v", len(found), err)
		}
		if _, err := e.Packages(ctx, found); err != nil {
			b.Fatal(err)
		}
		if err := sc.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return int(evaluated.Load())
	}
	run() // fill the caches
	b.ResetTimer()
	for b.Loop() {
		if evaluated := run(); evaluated != 0 {
			b.Fatalf("%d packages evaluated on a null run", evaluated)
		}
	}
}

// BenchmarkColdEvaluation is the same workspace without the package cache:
// what every run would pay without it.
func BenchmarkColdEvaluation(b *testing.B) {
	files := map[string]string{
		"tools/defs.star": "def lib(name):\n    stage(name = name, srcs = glob([\"*.go\"]), cmd = \"go build\", outs = [\"out/\" + name])\n",
	}
	for i := range 1000 {
		p := fmt.Sprintf("d%d/p%d", i/100, i)
		files[p+"/BUILD.mc"] = "load(\"//tools/defs.star\", \"lib\")\nlib(name = \"bin\")\nfilegroup(name = \"docs\", srcs = glob([\"**/*.md\"], allow_empty = True))\n"
		files[p+"/a.go"] = "package a"
		files[p+"/b.go"] = "package a"
		files[p+"/doc/x.md"] = "# x"
	}
	root := writeTree(b, files)
	ctx := context.Background()
	ws, err := LoadWorkspace(ctx, root)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		e := NewEvaluator(ws, nil, nil)
		found, err := e.FindPackages(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Packages(ctx, found); err != nil {
			b.Fatal(err)
		}
	}
}
