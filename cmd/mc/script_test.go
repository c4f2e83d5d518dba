package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run "mc" as a real subprocess of the test binary,
// so exit codes, signals and stderr are exactly what a user sees.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mc": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar: end-to-end CLI scenarios.
func TestScripts(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required by the sandbox tests: apt-get install bubblewrap")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, ".cache"))
			e.Setenv("HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("GOTOOLCHAIN", "local")
			for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT"} {
				if v, ok := os.LookupEnv(k); ok {
					e.Setenv(k, v)
				}
			}
			return os.MkdirAll(filepath.Join(e.WorkDir, "home"), 0o755)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":   cmdWaitfile,
			"countlines": cmdCountlines,
			"chmodx":     cmdChmodx,
		},
	})
}

// waitfile PATH [SECONDS]: wait until PATH exists (default 30 s).
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: waitfile path [seconds]")
	}
	limit := 30 * time.Second
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		limit = time.Duration(n) * time.Second
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			if neg {
				ts.Fatalf("%s exists", args[0])
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !neg {
		ts.Fatalf("%s did not appear within %s", args[0], limit)
	}
}

// countlines FILE N: FILE has exactly N lines.
func cmdCountlines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: countlines file n")
	}
	data := ts.ReadFile(args[0])
	n := strings.Count(data, "\n")
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	if (n == want) == neg {
		ts.Fatalf("%s has %d lines, want %s%d", args[0], n, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// chmodx FILE: make FILE executable.
func cmdChmodx(ts *testscript.TestScript, neg bool, args []string) {
	for _, a := range args {
		ts.Check(os.Chmod(ts.MkAbs(a), 0o755))
	}
}
