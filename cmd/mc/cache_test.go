package main

import (
	"context"
	"path/filepath"

	"github.com/mc-build/mc/cas"
	"github.com/rogpeppe/go-internal/testscript"
)

// statcached FILE...: the stat cache of the workspace (the script's work
// directory, cache under $XDG_CACHE_HOME/mc) knows each FILE as it is now,
// so that a build would not read it; with !, knows none of them.
func cmdStatcached(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: statcached file...")
	}
	db, err := cas.OpenDB(filepath.Join(ts.Getenv("XDG_CACHE_HOME"), "mc", "mc.db"))
	ts.Check(err)
	defer db.Close()
	sc, err := db.StatCache(context.Background(), ts.Getenv("WORK"))
	ts.Check(err)
	for _, a := range args {
		_, ok := sc.Known(ts.MkAbs(a))
		switch {
		case ok && neg:
			ts.Fatalf("the stat cache knows %s", a)
		case !ok && !neg:
			ts.Fatalf("the stat cache does not know %s: a build would read it", a)
		}
	}
}
