package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The program under test and one shared ext output (std archives for the
// sample modules), built once per test binary.
var (
	buildOnce sync.Once
	gobuild   string
	buildErr  error

	extOnce sync.Once
	extRoot string // workspace holding out/goext and out/ext.importcfg
	extErr  error
)

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "gobuild-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(tmp)
		gobuild = filepath.Join(tmp, "gobuild")
		return m.Run()
	}()
	os.Exit(code)
}

// binary builds the program like mc does: as a single file, no module.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", gobuild, "main.go")
		cmd.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building gobuild: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return gobuild
}

type result struct {
	stdout, stderr string
	code           int
}

// workspace is a temporary sandbox root holding a tiny module.
type workspace struct {
	t    *testing.T
	root string
	env  []string
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &workspace{t: t, root: root, env: []string{"CGO_ENABLED=0"}}
	w.write("go.mod", "module example.com/m\n\ngo 1.22\n")
	return w
}

func (w *workspace) write(rel, content string) {
	w.t.Helper()
	p := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workspace) read(rel string) string {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

// run runs gobuild in root/dir with MC_WORKSPACE set.
func (w *workspace) run(dir string, args ...string) result {
	w.t.Helper()
	cmd := exec.Command(binary(w.t), args...)
	cmd.Dir = filepath.Join(w.root, filepath.FromSlash(dir))
	cmd.Env = append(os.Environ(), "MC_WORKSPACE="+w.root, "GOFLAGS=-trimpath")
	cmd.Env = append(cmd.Env, w.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			w.t.Fatalf("running gobuild %v: %v", args, err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

func (w *workspace) mustRun(dir string, args ...string) result {
	w.t.Helper()
	res := w.run(dir, args...)
	if res.code != 0 {
		w.t.Fatalf("gobuild %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, res.code, res.stdout, res.stderr)
	}
	return res
}

func (w *workspace) mustFail(dir string, args ...string) result {
	w.t.Helper()
	res := w.run(dir, args...)
	if res.code != 1 {
		w.t.Fatalf("gobuild %v: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", args, res.code, res.stdout, res.stderr)
	}
	return res
}

// withExt makes the shared std archives visible at out/goext and
// out/ext.importcfg of this workspace (the config paths are root-relative).
func (w *workspace) withExt() {
	w.t.Helper()
	extOnce.Do(func() {
		// Under TestMain's temporary directory, so it is removed at exit.
		extRoot = filepath.Join(filepath.Dir(gobuild), "extws")
		sw := &workspace{t: w.t, root: extRoot, env: []string{"CGO_ENABLED=0"}}
		if err := os.MkdirAll(extRoot, 0o777); err != nil {
			extErr = err
			return
		}
		sw.write("go.mod", "module example.com/m\n\ngo 1.22\n")
		sw.write("imports.txt", "embed\nfmt\nio/fs\nruntime/debug\nstrings\n")
		res := sw.run(".", "ext", "-imports", "imports.txt", "-o", "out/goext", "-cfg", "out/ext.importcfg")
		if res.code != 0 {
			extErr = fmt.Errorf("ext failed: %s", res.stderr)
		}
	})
	if extErr != nil {
		w.t.Fatal(extErr)
	}
	if err := os.MkdirAll(filepath.Join(w.root, "out"), 0o777); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(extRoot, "out", "goext"), filepath.Join(w.root, "out", "goext")); err != nil {
		w.t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(extRoot, "out", "ext.importcfg"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.write("out/ext.importcfg", string(cfg))
}

// compileLib compiles the package in lib/ against the ext config.
func (w *workspace) compileLib() result {
	w.t.Helper()
	return w.mustRun("lib", "compile", "-o", "out/lib.a", "-cfg", "out/lib.importcfg", "-dep", "../out/ext.importcfg")
}

// newLibWorkspace is a workspace with the ext config and lib/ compiled.
func newLibWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := newWorkspace(t)
	w.withExt()
	w.write("lib/lib.go", libSrc)
	w.compileLib()
	return w
}

// wantOutput runs the program at root/rel and checks what it prints.
func (w *workspace) wantOutput(rel, want string) {
	w.t.Helper()
	out, err := exec.Command(filepath.Join(w.root, filepath.FromSlash(rel))).CombinedOutput()
	if err != nil {
		w.t.Fatalf("running %s: %v\n%s", rel, err, out)
	}
	if got := string(out); got != want {
		w.t.Errorf("%s printed %q, want %q", rel, got, want)
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s does not contain %q:\n%s", what, want, got)
		}
	}
}

const libSrc = `package lib

import "strings"

// Up upper-cases s.
func Up(s string) string { return strings.ToUpper(s) }
`

func TestImports(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.write("a.go", `package m

import (
	"fmt"
	"example.com/m/lib"
	"example.com/mother/x"
	"github.com/fake/dep"
)

var _, _, _ = fmt.Sprint, lib.Up, dep.X
var _ = x.Y
`)
	w.write("ignored.go", "//go:build ignore\n\npackage m\n\nimport \"net/http\"\n")
	w.write("tagged.go", "//go:build mytag\n\npackage m\n\nimport \"encoding/json\"\n")
	w.write("win_windows.go", "package m\n\nimport \"syscall\"\n")
	w.write("a_test.go", "package m\n\nimport \"testing\"\n")
	w.write("lib/lib.go", "package lib\n\nimport \"example.com/m/lib/sub\"\n\nvar _ = sub.X\n")
	w.write("testdata/x.go", "package x\n\nimport \"os/exec\"\n")
	w.write(".hidden/y.go", "package y\n\nimport \"bufio\"\n")
	w.write("_skip/z.go", "package z\n\nimport \"bufio\"\n")
	w.write("vendor/v/v.go", "package v\n\nimport \"bufio\"\n")
	w.env = append(w.env, "GOOS=linux")

	w.mustRun(".", "imports", "-gomod", "go.mod", "-o", "out/imports.txt")
	want := "example.com/mother/x\nfmt\ngithub.com/fake/dep\ntesting\n"
	if got := w.read("out/imports.txt"); got != want {
		t.Errorf("imports = %q, want %q", got, want)
	}

	// -tags selects the tagged file.
	w.mustRun(".", "imports", "-gomod", "go.mod", "-o", "out/imports2.txt", "-tags", "mytag")
	want = "encoding/json\nexample.com/mother/x\nfmt\ngithub.com/fake/dep\ntesting\n"
	if got := w.read("out/imports2.txt"); got != want {
		t.Errorf("imports with -tags = %q, want %q", got, want)
	}

	// -o - prints the list; an output that is not a regular file (a
	// symlink such as /dev/stdout) is refused, never renamed over.
	if res := w.mustRun(".", "imports", "-gomod", "go.mod", "-o", "-", "-tags", "mytag"); res.stdout != want {
		t.Errorf("imports -o - printed %q, want %q", res.stdout, want)
	}
	if err := os.Symlink("imports.txt", filepath.Join(w.root, "out", "link.txt")); err != nil {
		t.Fatal(err)
	}
	res := w.mustFail(".", "imports", "-gomod", "go.mod", "-o", "out/link.txt")
	wantContains(t, "stderr", res.stderr, "not a regular file")
	if fi, err := os.Lstat(filepath.Join(w.root, "out", "link.txt")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("out/link.txt is no longer the symlink: %v", err)
	}
}

func TestExt(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	cfg := w.read("out/ext.importcfg")
	wantContains(t, "ext config", cfg,
		"# gobuild goversion go1.",
		"packagefile fmt=out/goext/fmt.a\n",
		"# gobuild pkg fmt imports=",
		"packagefile testing/internal/testdeps=out/goext/testing/internal/testdeps.a\n",
		"packagefile runtime=out/goext/runtime.a\n")
	if !strings.Contains(cfg, "# gobuild pkg strings imports=") || !strings.Contains(cfg, " std=1\n") {
		t.Errorf("ext config lacks std pkg lines:\n%s", cfg)
	}
	if fi, err := os.Stat(filepath.Join(w.root, "out/goext/fmt.a")); err != nil || fi.Size() == 0 {
		t.Errorf("fmt.a missing or empty: %v", err)
	}

	// No list at all still yields the testmain's packages; packages given
	// as arguments (how go_toolchain names them) are built with theirs.
	w.mustRun(".", "ext", "-o", "out/goext2", "-cfg", "out/ext2.importcfg", "container/ring")
	ext2 := w.read("out/ext2.importcfg")
	wantContains(t, "ext config", ext2,
		"packagefile testing=out/goext2/testing.a\n", "packagefile os=out/goext2/os.a\n",
		"packagefile container/ring=out/goext2/container/ring.a\n")
	if strings.Contains(cfg, "packagefile container/ring=") {
		t.Errorf("the first ext config holds container/ring, which it was not asked for: the check above proves nothing")
	}

	// A package go list cannot find fails with go list's message.
	w.env = append(w.env, "GOPROXY=off")
	w.write("bad.txt", "example.com/m/nonexistent\n")
	res := w.mustFail(".", "ext", "-imports", "bad.txt", "-o", "out/goext3", "-cfg", "out/ext3.importcfg")
	wantContains(t, "stderr", res.stderr, "example.com/m/nonexistent")
}

func TestCompileDependentFromConfigOnly(t *testing.T) {
	t.Parallel()
	w := newLibWorkspace(t)
	cfg := w.read("lib/out/lib.importcfg")
	// The toolchain's base config is named, not copied.
	if want := "# gobuild goversion " + goVersion(t) + "\n# gobuild include out/ext.importcfg\n" +
		"packagefile example.com/m/lib=lib/out/lib.a\n# gobuild pkg example.com/m/lib imports=strings std=0\n"; cfg != want {
		t.Errorf("lib config:\n%s\nwant:\n%s", cfg, want)
	}

	// A second workspace with the dependency's outputs but not its sources.
	w2 := newWorkspace(t)
	w2.withExt()
	w2.write("lib/out/lib.a", w.read("lib/out/lib.a"))
	w2.write("lib/out/lib.importcfg", cfg)
	w2.write("app/app.go", "package app\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/lib\"\n)\n\nfunc Hello() string { return fmt.Sprint(lib.Up(\"hi\")) }\n")
	w2.mustRun("app", "compile", "-o", "out/app.a", "-cfg", "out/app.importcfg", "-dep", "../lib/out/lib.importcfg")
	appCfg := w2.read("app/out/app.importcfg")
	wantContains(t, "app config", appCfg,
		"# gobuild include out/ext.importcfg\n",
		"packagefile example.com/m/app=app/out/app.a\n# gobuild pkg example.com/m/app imports=example.com/m/lib,fmt std=0\n",
		"packagefile example.com/m/lib=lib/out/lib.a\n")
	if strings.Contains(appCfg, "packagefile fmt=") {
		t.Errorf("app config copies the base config's packages:\n%s", appCfg)
	}
	if strings.Index(appCfg, "example.com/m/app=") > strings.Index(appCfg, "example.com/m/lib=") {
		t.Errorf("own package is not first in config:\n%s", appCfg)
	}

	// The included base config is read: without it, fmt is nowhere, and
	// the error says which config included the missing file.
	if err := os.Remove(filepath.Join(w2.root, "out/ext.importcfg")); err != nil {
		t.Fatal(err)
	}
	res := w2.mustFail("app", "compile", "-o", "out/app.a", "-cfg", "out/app.importcfg", "-dep", "../lib/out/lib.importcfg")
	wantContains(t, "stderr", res.stderr, "../lib/out/lib.importcfg includes it: reading dep config")
	// Only a base config can be included (a package config is copied).
	w2.write("out/ext.importcfg", cfg)
	res = w2.mustFail("app", "compile", "-o", "out/app.a", "-cfg", "out/app.importcfg", "-dep", "../lib/out/lib.importcfg")
	wantContains(t, "stderr", res.stderr, "which is not a base config")
}

// goVersion is the Go version the configs record (go env GOVERSION).
func goVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// TestExportDataSplit: with -x, a compile writes its export data apart
// from the object code, and a dependent needs (and keys on) the export
// data only. A change to a function body that is not inlined leaves the
// export data byte for byte the same, so dependents need not compile
// again, and the link of the new object with the dependents compiled
// before is consistent. Controls: the object code did change, and a change
// to an inlinable body changes the export data.
func TestExportDataSplit(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	greet := func(word string) string {
		return libSrc + "\n// Greet is not inlined: its body is not part of the export data.\n//\n//go:noinline\nfunc Greet() string { return \"" + word + "\" }\n"
	}
	compile := func() (x, obj string) {
		w.mustRun("lib", "compile", "-o", "out/lib.a", "-x", "out/lib.x", "-cfg", "out/lib.importcfg", "-dep", "../out/ext.importcfg")
		return w.read("lib/out/lib.x"), w.read("lib/out/lib.a")
	}
	w.write("lib/lib.go", greet("hello"))
	x1, obj1 := compile()
	wantContains(t, "lib config", w.read("lib/out/lib.importcfg"),
		"packagefile example.com/m/lib=lib/out/lib.a\n# gobuild pkg example.com/m/lib imports=strings std=0 export=lib/out/lib.x\n")

	// The dependent compiles from the export data alone: the object code
	// is not there.
	w2 := newWorkspace(t)
	w2.withExt()
	w2.write("lib/out/lib.x", x1)
	w2.write("lib/out/lib.importcfg", w.read("lib/out/lib.importcfg"))
	app := "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/lib\"\n)\n\nfunc main() { fmt.Println(lib.Up(\"hi\"), lib.Greet()) }\n"
	w2.write("app/app.go", app)
	w2.mustRun("app", "compile", "-o", "out/app.a", "-x", "out/app.x", "-cfg", "out/app.importcfg", "-dep", "../lib/out/lib.importcfg")

	w.write("lib/lib.go", greet("HELLO"))
	x2, obj2 := compile()
	if x2 != x1 {
		t.Error("export data changed with the body of a function that is not inlined")
	}
	if obj2 == obj1 {
		t.Error("control: the object code did not change with the function's body")
	}

	// The main package compiled against the first export data links with
	// the new object code and runs it.
	w.write("app/app.go", app)
	w.mustRun("app", "link", "-o", "out/app", "-dep", "../lib/out/lib.importcfg")
	w.wantOutput("app/out/app", "HI HELLO\n")

	// A test of a package whose dependency was split: compiles read the
	// export data, the link the object code.
	w.write("app/app_test.go", "package main\n\nimport (\n\t\"testing\"\n\t\"example.com/m/lib\"\n)\n\nfunc TestGreet(t *testing.T) {\n\tif lib.Greet() != \"HELLO\" {\n\t\tt.Fatal(lib.Greet())\n\t}\n}\n")
	res := w.mustRun("app", "test", "-dep", "../lib/out/lib.importcfg", "--", "-test.v")
	wantContains(t, "test stdout", res.stdout, "--- PASS: TestGreet")
	// An external test reuses the library's own split archive.
	w.write("lib/x_test.go", "package lib_test\n\nimport (\n\t\"testing\"\n\t\"example.com/m/lib\"\n)\n\nfunc TestUp(t *testing.T) {\n\tif lib.Up(\"a\") != \"A\" {\n\t\tt.Fatal(lib.Up(\"a\"))\n\t}\n}\n")
	res = w.mustRun("lib", "test", "-dep", "out/lib.importcfg", "--", "-test.v")
	wantContains(t, "xtest stdout", res.stdout, "--- PASS: TestUp")

	// Control: Up is inlined into its callers, so its body is export data.
	w.write("lib/lib.go", strings.Replace(greet("HELLO"), "strings.ToUpper(s)", "strings.ToUpper(s + \"!\")", 1))
	if x3, _ := compile(); x3 == x2 {
		t.Error("control: export data did not change with the body of an inlined function")
	}
}

func TestCompileReproducible(t *testing.T) {
	t.Parallel()
	var archives, cfgs []string
	for range 2 {
		w := newWorkspace(t)
		w.withExt()
		w.write("lib/lib.go", libSrc+"\nfunc Where() string { _, f, _, _ := runtimeCaller(); return f }\n")
		w.write("lib/caller.go", "package lib\n\nimport \"runtime\"\n\nvar runtimeCaller = func() (uintptr, string, int, bool) { return runtime.Caller(0) }\n")
		w.compileLib()
		a := w.read("lib/out/lib.a")
		if strings.Contains(a, w.root) {
			t.Errorf("archive mentions the workspace root %s", w.root)
		}
		archives = append(archives, a)
		cfgs = append(cfgs, w.read("lib/out/lib.importcfg"))
	}
	if archives[0] != archives[1] {
		t.Error("archives differ between two workspace roots")
	}
	if cfgs[0] != cfgs[1] {
		t.Errorf("configs differ:\n%s\n---\n%s", cfgs[0], cfgs[1])
	}
}

// TestOtherGoVersion: archives made by another Go version (a cached
// toolchain stage after an upgrade) are refused with what to do, and the
// same config with this version's line is accepted (the control).
func TestOtherGoVersion(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.write("lib/lib.go", "package lib\n\nimport \"strings\"\n\nvar X = strings.ToUpper\n")
	cfg := w.read("out/ext.importcfg")
	first, _, _ := strings.Cut(cfg, "\n")
	if !strings.HasPrefix(first, "# gobuild goversion go") {
		t.Fatalf("ext config starts with %q, want its Go version", first)
	}
	w.write("out/old.importcfg", strings.Replace(cfg, first, "# gobuild goversion go1.1", 1))
	res := w.mustFail("lib", "compile", "-o", "out/lib.a", "-cfg", "out/lib.importcfg", "-dep", "../out/old.importcfg")
	wantContains(t, "stderr", res.stderr, "was made by go1.1, but the toolchain is go", "mc cache purge")
	w.compileLib()
}

func TestMissingDep(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.write("app/app.go", "package app\n\nimport \"example.com/m/lib\"\n\nvar X = lib.Up\n")
	res := w.mustFail("app", "compile", "-o", "out/app.a", "-cfg", "out/app.importcfg", "-dep", "../out/ext.importcfg")
	wantContains(t, "stderr", res.stderr,
		"gobuild: .: package example.com/m/app imports example.com/m/lib, which no dep provides (add the go_library that builds example.com/m/lib to deps",
		"main module")

	w.write("ext/ext.go", "package ext\n\nimport \"github.com/fake/dep\"\n\nvar X = dep.X\n")
	res = w.mustFail("ext", "compile", "-o", "out/ext.a", "-cfg", "out/ext.importcfg", "-dep", "../out/ext.importcfg")
	wantContains(t, "stderr", res.stderr, "imports github.com/fake/dep, which no dep provides", "add it to go_toolchain's packages")

	// Usage errors exit 2.
	if res := w.run("app", "compile", "-bogus"); res.code != 2 {
		t.Errorf("bad flag: exit %d, want 2", res.code)
	}
	// Unsupported sources are refused clearly.
	w.write("asm/a.go", "package asm\n\nfunc F()\n")
	w.write("asm/a_amd64.s", "TEXT ·F(SB),0,$0\n\tRET\n")
	w.env = append(w.env, "GOARCH=amd64")
	res = w.mustFail("asm", "compile", "-o", "out/asm.a", "-cfg", "out/asm.importcfg", "-dep", "../out/ext.importcfg")
	wantContains(t, "stderr", res.stderr, "a_amd64.s", `not supported by gobuild; use the go command (builder = "go")`)
}

func TestBuildTagsAndEmbed(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.env = append(w.env, "GOOS=linux")
	w.write("res/res.go", `package res

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed hello.txt
var Hello string

//go:embed static
var static embed.FS

// Files lists the embedded static files.
func Files() string {
	var names []string
	fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	return strings.Join(names, ",")
}
`)
	w.write("res/ignored.go", "//go:build ignore\n\npackage res\n\nthis is not Go\n")
	w.write("res/os_linux.go", "package res\n\n// OS names the target.\nconst OS = \"linux\"\n")
	w.write("res/os_windows.go", "package res\n\nconst OS = \"windows\"\n")
	w.write("res/hello.txt", "hello embed")
	w.write("res/static/a.txt", "a")
	w.write("res/static/sub/b.txt", "b")
	w.write("res/static/.hidden", "h")
	w.write("res/static/_under.txt", "u")
	w.mustRun("res", "compile", "-o", "out/res.a", "-cfg", "out/res.importcfg", "-dep", "../out/ext.importcfg")

	w.write("cmd/show/main.go", "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/res\"\n)\n\nfunc main() { fmt.Println(res.OS, res.Hello, res.Files()) }\n")
	w.mustRun("cmd/show", "link", "-o", "out/show", "-dep", "../../res/out/res.importcfg")
	w.wantOutput("cmd/show/out/show", "linux hello embed static/a.txt,static/sub/b.txt\n")

	// A pattern matching nothing fails like the go command.
	w.write("bad/bad.go", "package bad\n\nimport _ \"embed\"\n\n//go:embed missing.txt\nvar S string\n")
	res := w.mustFail("bad", "compile", "-o", "out/bad.a", "-cfg", "out/bad.importcfg", "-dep", "../out/ext.importcfg")
	wantContains(t, "stderr", res.stderr, "pattern missing.txt: no matching files found")
}

func TestLinkBuildInfo(t *testing.T) {
	t.Parallel()
	w := newLibWorkspace(t)
	w.write("app/main.go", `package main

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"example.com/m/lib"
)

func main() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Println("no build info")
		return
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	fmt.Println(lib.Up("hello"), bi.Main.Path, bi.Main.Version, bi.Path, settings["-trimpath"], settings["CGO_ENABLED"])
	// go 1.22 in go.mod selects pre-1.23 asynchronous timer channels
	// (GODEBUG asynctimerchan=1), which have capacity 1.
	fmt.Println(cap(time.NewTimer(time.Hour).C), strings.Contains(settings["DefaultGODEBUG"], "asynctimerchan=1"))
}
`)
	w.mustRun("app", "link", "-o", "out/app", "-dep", "../lib/out/lib.importcfg")
	bin := filepath.Join(w.root, "app/out/app")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("binary mode %v, want 0755", fi.Mode().Perm())
	}
	w.wantOutput("app/out/app", "HELLO example.com/m (devel) example.com/m/app true 0\n1 true\n")

	// A //go:debug directive overrides the go.mod version's default.
	w.write("app/debug.go", "//go:debug asynctimerchan=0\n\npackage main\n")
	w.mustRun("app", "link", "-o", "out/app2", "-dep", "../lib/out/lib.importcfg")
	w.wantOutput("app/out/app2", "HELLO example.com/m (devel) example.com/m/app true 0\n0 false\n")
}

func TestTest(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.write("lib/lib.go", libSrc)
	w.write("lib/lib_test.go", `package lib

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	fmt.Println("TESTMAIN RAN")
	os.Exit(m.Run())
}

func TestUp(t *testing.T) {
	if Up("a") != "A" {
		t.Fatal("Up broken")
	}
	if _, err := os.Stat("lib.go"); err != nil {
		t.Fatalf("not run in the package directory: %v", err)
	}
}
`)
	w.write("lib/x_test.go", `package lib_test

import (
	"fmt"
	"testing"

	"example.com/m/lib"
)

func TestExternal(t *testing.T) {
	if lib.Up("b") != "B" {
		t.Fatal("external broken")
	}
}

func ExampleUp() {
	fmt.Println(lib.Up("x"))
	// Output: X
}
`)
	res := w.mustRun("lib", "test", "-dep", "../out/ext.importcfg", "--", "-test.v")
	wantContains(t, "stdout", res.stdout, "TESTMAIN RAN", "--- PASS: TestUp", "--- PASS: TestExternal", "--- PASS: ExampleUp", "ok  \texample.com/m/lib\t")

	// Control: a failing test.
	w.write("bad/bad.go", "package bad\n")
	w.write("bad/bad_test.go", "package bad\n\nimport \"testing\"\n\nfunc TestBad(t *testing.T) { t.Fatal(\"intended failure\") }\n")
	res = w.mustFail("bad", "test", "-dep", "../out/ext.importcfg")
	wantContains(t, "stdout", res.stdout, "intended failure", "FAIL\texample.com/m/bad\t")

	// Control: an example whose output differs.
	w.write("badex/ex_test.go", "package badex_test\n\nimport \"fmt\"\n\nfunc Example() {\n\tfmt.Println(\"actual\")\n\t// Output: expected\n}\n")
	res = w.mustFail("badex", "test", "-dep", "../out/ext.importcfg")
	wantContains(t, "stdout", res.stdout, "--- FAIL: Example", "got:\nactual", "want:\nexpected", "FAIL\texample.com/m/badex\t")

	// An example without an output comment is compiled but not run.
	w.write("noout/ex_test.go", "package noout_test\n\nfunc Example() {\n\tpanic(\"must not run\")\n}\n")
	w.mustRun("noout", "test", "-dep", "../out/ext.importcfg")
}

func TestTestVet(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.write("v/v.go", "package v\n\nimport \"fmt\"\n\n// Show prints n.\nfunc Show(n string) { fmt.Printf(\"%d\\n\", n) }\n")
	w.write("v/v_test.go", "package v\n\nimport \"testing\"\n\nfunc TestShow(t *testing.T) { Show(\"x\") }\n")
	res := w.mustFail("v", "test", "-dep", "../out/ext.importcfg", "-vet", "default")
	wantContains(t, "stderr", res.stderr, "v/v.go:6:", "fmt.Printf format %d has arg n of wrong type string")
	wantContains(t, "stdout", res.stdout, "FAIL\texample.com/m/v [build failed]")
	if strings.Contains(res.stdout, "PASS") {
		t.Errorf("tests ran despite the vet finding:\n%s", res.stdout)
	}
	// Control: the same package passes with vet off.
	res = w.mustRun("v", "test", "-dep", "../out/ext.importcfg", "-vet", "off")
	wantContains(t, "stdout", res.stdout, "ok  \texample.com/m/v\t")

	// The vet command on its own.
	res = w.mustFail("v", "vet", "-dep", "../out/ext.importcfg")
	wantContains(t, "stderr", res.stderr, "format %d has arg n of wrong type string")
	w.write("ok/ok.go", "package ok\n\nimport \"fmt\"\n\n// Show prints n.\nfunc Show(n string) { fmt.Printf(\"%s\\n\", n) }\n")
	w.mustRun("ok", "vet", "-dep", "../out/ext.importcfg", "-vet", "all")
}

func TestTestFailsClosedOnDependents(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.withExt()
	w.write("a/a.go", "package a\n\n// A is a value.\nconst A = 1\n")
	w.write("a/a_test.go", "package a\n\nimport \"testing\"\n\nfunc TestA(t *testing.T) {}\n")
	w.write("a/x_test.go", "package a_test\n\nimport (\n\t\"testing\"\n\t\"example.com/m/b\"\n)\n\nfunc TestB(t *testing.T) { _ = b.B }\n")
	w.write("b/b.go", "package b\n\nimport \"example.com/m/a\"\n\n// B depends on a.\nconst B = a.A\n")
	w.mustRun("a", "compile", "-o", "out/a.a", "-cfg", "out/a.importcfg", "-dep", "../out/ext.importcfg")
	w.mustRun("b", "compile", "-o", "out/b.a", "-cfg", "out/b.importcfg", "-dep", "../a/out/a.importcfg")
	res := w.mustFail("a", "test", "-dep", "../b/out/b.importcfg")
	wantContains(t, "stderr", res.stderr,
		`gobuild: test of example.com/m/a: package example.com/m/b imports example.com/m/a and would link against example.com/m/a without its test files; gobuild does not recompile dependents for tests (use builder = "go")`)

	// Without internal test files the library archive is reused: fine.
	if err := os.Remove(filepath.Join(w.root, "a/a_test.go")); err != nil {
		t.Fatal(err)
	}
	res = w.mustRun("a", "test", "-dep", "../b/out/b.importcfg", "--", "-test.v")
	wantContains(t, "stdout", res.stdout, "--- PASS: TestB", "ok  \texample.com/m/a\t")
}

// cgoWorkspace is a workspace with the cgo variant of the standard library
// (os/user) and a program, who/, that uses it.
func cgoWorkspace(t *testing.T) *workspace {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is required for the cgo test (CGO_ENABLED=1 links os/user with the C toolchain): %v", err)
	}
	w := newWorkspace(t)
	w.env = []string{"CGO_ENABLED=1"}
	w.write("imports.txt", "fmt\nos/user\n")
	w.mustRun(".", "ext", "-imports", "imports.txt", "-o", "out/goext", "-cfg", "out/ext.importcfg")
	w.write("who/main.go", `package main

import (
	"fmt"
	"os/user"
)

func main() {
	u, err := user.Current()
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("uid", u.Uid != "")
}
`)
	return w
}

func TestCgoStdlibLink(t *testing.T) {
	t.Parallel()
	w := cgoWorkspace(t)
	cfg := w.read("out/ext.importcfg")
	// The cgo variant of os/user imports runtime/cgo.
	if !strings.Contains(cfg, "packagefile runtime/cgo=") || !regexp.MustCompile(`\n# gobuild pkg os/user imports=\S*runtime/cgo`).MatchString(cfg) {
		t.Fatalf("ext config lacks the cgo os/user:\n%s", cfg)
	}
	w.mustRun("who", "link", "-o", "out/who", "-dep", "../out/ext.importcfg")
	w.wantOutput("who/out/who", "uid true\n")

	// Forced external linking goes through $CC.
	w.mustRun("who", "link", "-o", "out/who-ext", "-dep", "../out/ext.importcfg", "-ldflags", "-linkmode=external")
	w.wantOutput("who/out/who-ext", "uid true\n")
}

// TestLinkProbeMemo: with GOBUILD_PROBES, an external link asks the C
// compiler about its flags once; later links get the same answers from the
// memo, and the C compiler links with exactly the flags it would have had.
func TestLinkProbeMemo(t *testing.T) {
	t.Parallel()
	w := cgoWorkspace(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "cc.log")
	cc := filepath.Join(dir, "cc")
	// The C compiler, logging each call: a probe's arguments, or the link's
	// (from its response file). CRASH=1 makes every probe die.
	if err := os.WriteFile(cc, []byte(`#!/bin/sh
for a; do last=$a; done
case "$last" in
*/trivial.c)
	echo "probe $*" >>`+logFile+`
	if [ "$CRASH" = 1 ]; then kill -SEGV $$; fi ;;
*)
	printf link >>`+logFile+`
	for a; do case "$a" in @*) tr '\n' ' ' <"${a#@}" >>`+logFile+` ;; *) printf ' %s' "$a" >>`+logFile+` ;; esac; done
	echo >>`+logFile+` ;;
esac
exec gcc "$@"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tmpPaths := regexp.MustCompile(`\S*/(go-link-\d+|gobuild-link-\d+/link)/`)
	// link links who/ and returns how many probes reached the C compiler
	// and the link's arguments, scratch paths made alike.
	link := func(memo string, extraEnv ...string) (probes int, args string) {
		t.Helper()
		if err := os.WriteFile(logFile, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		w.env = append([]string{"CGO_ENABLED=1", "CC=" + cc, "GOBUILD_PROBES=" + memo}, extraEnv...)
		w.mustRun("who", "link", "-o", "out/who", "-dep", "../out/ext.importcfg", "-ldflags", "-linkmode=external")
		w.wantOutput("who/out/who", "uid true\n")
		for _, line := range strings.Split(strings.TrimSpace(read(logFile)), "\n") {
			switch {
			case strings.HasPrefix(line, "probe "):
				probes++
			case strings.HasPrefix(line, "link"):
				args = tmpPaths.ReplaceAllString(line, "TMP/")
			}
		}
		if args == "" {
			t.Fatalf("the C compiler never linked:\n%s", read(logFile))
		}
		return probes, args
	}
	entries := func(memo string) []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(memo, "*.probe"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}

	// The control: no memo, the linker probes (and again next time).
	probes, want := link("")
	if probes < 3 {
		t.Fatalf("without a memo the linker probed %d times, want 3 or more (the probes this memo is for)", probes)
	}
	for _, flag := range []string{"-no-pie", "--export-dynamic-symbol="} {
		if !strings.Contains(want, flag) {
			t.Errorf("the link lacks %s, which the probes find supported: %s", flag, want)
		}
	}
	if p, _ := link(""); p != probes {
		t.Errorf("without a memo the second link probed %d times, want %d", p, probes)
	}

	memo := filepath.Join(dir, "memo")
	if p, got := link(memo); p != probes || got != want {
		t.Errorf("first link with an empty memo: %d probes (want %d), link arguments\n%s\nwant\n%s", p, probes, got, want)
	}
	answers := entries(memo)
	refused := 0
	for _, f := range answers {
		if strings.HasPrefix(read(f), "exit 1\n") {
			refused++
		}
	}
	if len(answers) != probes || refused == 0 {
		t.Errorf("the memo holds %d answers (%d refusals), want %d, gcc refusing -Qunused-arguments", len(answers), refused, probes)
	}
	if p, got := link(memo); p != 0 || got != want {
		t.Errorf("second link: %d probes reached the C compiler (want 0), link arguments\n%s\nwant\n%s", p, got, want)
	}

	// A changed compiler (its mtime here) is asked again.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(cc, later, later); err != nil {
		t.Fatal(err)
	}
	if p, got := link(memo); p != probes || got != want {
		t.Errorf("after the compiler changed: %d probes (want %d), link arguments\n%s\nwant\n%s", p, probes, got, want)
	}

	// A torn or foreign answer is no answer.
	for _, f := range entries(memo) {
		if err := os.WriteFile(f, []byte("exit 0"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if p, got := link(memo); p != probes || got != want {
		t.Errorf("with torn answers: %d probes (want %d), link arguments\n%s\nwant\n%s", p, probes, got, want)
	}

	// A probe that crashes is not remembered as a refusal.
	crashMemo := filepath.Join(dir, "crash")
	w.env = []string{"CGO_ENABLED=1", "CC=" + cc, "GOBUILD_PROBES=" + crashMemo, "CRASH=1"}
	w.run("who", "link", "-o", "out/who-crash", "-dep", "../out/ext.importcfg", "-ldflags", "-linkmode=external")
	if got := entries(crashMemo); len(got) != 0 {
		t.Errorf("crashed probes were remembered: %v", got)
	}
}

// TestLinkProbeMemoNoCompiler: a link that needs no C compiler (no cgo)
// works with the memo on a machine without one, as it does without; and
// with a memo directory that cannot be made.
func TestLinkProbeMemoNoCompiler(t *testing.T) {
	t.Parallel()
	w := newLibWorkspace(t)
	w.write("app/main.go", "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/lib\"\n)\n\nfunc main() { fmt.Println(lib.Up(\"ok\")) }\n")
	env := w.env
	w.env = append(env, "CC=/nonexistent/cc", "GOBUILD_PROBES="+t.TempDir())
	w.mustRun("app", "link", "-o", "out/app", "-dep", "../lib/out/lib.importcfg")
	w.wantOutput("app/out/app", "OK\n")
	w.env = append(env, "GOBUILD_PROBES=/dev/null/memo")
	w.mustRun("app", "link", "-o", "out/app2", "-dep", "../lib/out/lib.importcfg")
	w.wantOutput("app/out/app2", "OK\n")
}

// TestSourceFitsOneArgument: go_toolchain's NAME.builder stage writes this
// source with a here-document inside its command, which reaches the
// sandbox's shell as one argument of sh -c, and Linux refuses a single
// argument over 128 KiB (MAX_ARG_STRLEN) with E2BIG.
func TestSourceFitsOneArgument(t *testing.T) {
	fi, err := os.Stat("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(120 << 10); fi.Size() > limit {
		t.Fatalf("main.go is %d bytes; the builder stage's command must stay under 128 KiB (keep it under %d, or pass the source another way)", fi.Size(), limit)
	}
}
