package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exampleChecks are the per-example assertions on top of the common ones:
// what the built outputs must do.
var exampleChecks = map[string]func(t *testing.T, dir string){
	"monorepo": func(t *testing.T, dir string) {
		api := filepath.Join(dir, "mc-out", "service", "api", "out", "api")
		out, err := exec.Command(api, "tester").CombinedOutput()
		if err != nil {
			t.Fatalf("running %s: %v\n%s", api, err, out)
		}
		if !strings.Contains(string(out), "hello") {
			t.Errorf("%s printed %q, want a line with hello", api, out)
		}
		smoke, err := os.ReadFile(filepath.Join(dir, "mc-out", "service", "api", "out", "smoke.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(smoke), "api 1.4.2") {
			t.Errorf("smoke.txt = %q, want the version from lib/gen/VERSION", smoke)
		}
	},
}

// TestExamples builds and tests every workspace under examples/ as a user
// would (mc build //..., mc test //...), each twice on a fresh cache: the
// first run must succeed, the second must start nothing.
func TestExamples(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required by the examples: apt-get install bubblewrap")
	}
	workspaces, err := filepath.Glob("../../examples/*/WORKSPACE.mc")
	if err != nil {
		t.Fatal(err)
	}
	if len(workspaces) == 0 {
		t.Fatal("no examples/*/WORKSPACE.mc found")
	}
	for _, ws := range workspaces {
		src := filepath.Dir(ws)
		name := filepath.Base(src)
		t.Run(name, func(t *testing.T) {
			// A copy, so that mc-out/ is not written into the repository.
			dir := t.TempDir()
			copyTree(t, src, dir)
			t.Setenv("XDG_CACHE_HOME", t.TempDir())

			first := runMC(t, dir, "build", "--output=json", "//...")
			if len(first.labels("stage_started")) == 0 {
				t.Errorf("first mc build on an empty cache started no stage")
			}
			again := runMC(t, dir, "build", "--output=json", "//...")
			again.assertNullBuild(t)

			runMC(t, dir, "test", "--output=json", "//...")
			again = runMC(t, dir, "test", "--output=json", "//...")
			again.assertNullBuild(t)

			if check := exampleChecks[name]; check != nil {
				check(t, dir)
			}
		})
	}
	for name := range exampleChecks {
		if _, err := os.Stat(filepath.Join("../../examples", name, "WORKSPACE.mc")); err != nil {
			t.Errorf("exampleChecks has %q, which is not an example: %v", name, err)
		}
	}
}

// jsonEvent is the part of a JSON build event these tests look at.
type jsonEvent struct {
	Type  string `json:"type"`
	Label string `json:"label"`
	Total int    `json:"total"`
}

type events []jsonEvent

func (evs events) labels(typ string) []string {
	var ls []string
	for _, e := range evs {
		if e.Type == typ {
			ls = append(ls, e.Label)
		}
	}
	return ls
}

// assertNullBuild checks that nothing started and every stage of the graph
// was a cache hit.
func (evs events) assertNullBuild(t *testing.T) {
	t.Helper()
	if started := evs.labels("stage_started"); len(started) > 0 {
		t.Errorf("a repeated run started %v, want nothing", started)
	}
	total := -1
	for _, e := range evs {
		if e.Type == "build_started" {
			total = e.Total
		}
	}
	if cached := evs.labels("stage_cached"); len(cached) != total {
		t.Errorf("a repeated run had %d cache hits (%v), want all %d stages", len(cached), cached, total)
	}
}

// runMC runs mc in-process in dir and returns its events; it fails the test
// unless mc exits 0.
func runMC(t *testing.T, dir string, args ...string) events {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"-C", dir}, args...), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("mc %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), code, &stderr, &stdout)
	}
	var evs events
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("mc %s: not a JSON event: %v: %s", strings.Join(args, " "), err, sc.Bytes())
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// copyTree copies the regular files, directories and symlinks of src into
// dst, leaving out mc-out/ (a previous build's outputs).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && rel == "mc-out":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}
