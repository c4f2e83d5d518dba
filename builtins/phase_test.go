package builtins

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
)

func TestPhases(t *testing.T) {
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
	root := writeTree(t, files)
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error { return os.Chtimes(p, old, old) })
	db, _ := cas.OpenDB(filepath.Join(t.TempDir(), "mc.db"))
	ctx := context.Background()
	for run := range 4 {
		t0 := time.Now()
		sc, _ := db.StatCache(ctx, root)
		t1 := time.Now()
		ws, _ := LoadWorkspace(ctx, root)
		e := NewEvaluator(ws, db, sc)
		t2 := time.Now()
		found, _ := e.FindPackages(ctx, "")
		t3 := time.Now()
		e.Packages(ctx, found)
		t4 := time.Now()
		sc.Flush(ctx)
		t5 := time.Now()
		e2 := NewEvaluator(ws, nil, nil)
		e2.Packages(ctx, found)
		t6 := time.Now()
		fmt.Printf("run %d: statcache %v ws %v find %v packages %v flush %v | nocache packages %v\n", run, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), t5.Sub(t4), t6.Sub(t5))
	}
}
