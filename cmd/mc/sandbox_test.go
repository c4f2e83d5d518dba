package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildSandboxMissing: on a machine without bubblewrap (PATH without
// it), --sandbox=required refuses with exit 3 naming the fix, and the
// default (auto) builds, says so at the start and in the summary, and
// keys its results apart: a later build finds nothing of them to reuse
// under the sandboxed platform.
func TestBuildSandboxMissing(t *testing.T) {
	ws := t.TempDir()
	for name, content := range map[string]string{
		"WORKSPACE.mc": `workspace(name = "nosandbox")` + "\n",
		"p/BUILD.mc":   `stage(name = "x", cmd = "echo hi > x.txt", outs = ["x.txt"])` + "\n",
		"nobin/.keep":  "",
		"cache/.keep":  "",
		"home/.keep":   "",
	} {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	origPath := os.Getenv("PATH")
	t.Setenv("PATH", filepath.Join(ws, "nobin")) // no bwrap; the stage uses builtins only
	t.Setenv("XDG_CACHE_HOME", filepath.Join(ws, "cache"))
	t.Setenv("HOME", filepath.Join(ws, "home"))
	t.Setenv("MC_CACHE", "")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"-C", ws}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}

	code, out := run("build", "--sandbox=required", "//p:x")
	if code != exitInfra || !strings.Contains(out, "no working sandbox") || !strings.Contains(out, "apt-get install bubblewrap") {
		t.Errorf("--sandbox=required: exit %d, %q; want exit 3 naming apt-get install bubblewrap", code, out)
	}
	if _, err := os.Stat(filepath.Join(ws, "mc-out", "p", "x.txt")); err == nil {
		t.Error("--sandbox=required ran the stage")
	}

	code, out = run("build", "//p:x")
	if code != 0 {
		t.Fatalf("--sandbox=auto: exit %d: %s", code, out)
	}
	if n := strings.Count(out, "WITHOUT"); n != 2 {
		t.Errorf("want the missing sandbox said at the start and in the summary (2 lines with WITHOUT), got %d: %s", n, out)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "mc-out", "p", "x.txt")); err != nil || string(b) != "hi\n" {
		t.Errorf("output %q, %v", b, err)
	}

	// With a sandbox, the unsandboxed result is not reused: the stage runs.
	t.Setenv("PATH", origPath)
	code, out = run("build", "--output=json", "--sandbox=required", "//p:x")
	if code != 0 || !strings.Contains(out, `"built":1,"cached":0`) {
		t.Errorf("sandboxed build after an unsandboxed one: exit %d, want the stage built: %s", code, out)
	}
	// Control: a sandboxed result is reused by the next sandboxed build.
	code, out = run("build", "--output=json", "--sandbox=required", "//p:x")
	if code != 0 || !strings.Contains(out, `"built":0,"cached":1`) {
		t.Errorf("second sandboxed build: exit %d, want the stage cached: %s", code, out)
	}

	code, out = run("build", "--sandbox=bogus", "//p:x")
	if code != exitUsage {
		t.Errorf("--sandbox=bogus: exit %d, want %d: %s", code, exitUsage, out)
	}
}
