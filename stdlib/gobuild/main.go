// Command gobuild compiles, vets, tests and links Go packages for mc by
// calling the Go tools ($GOTOOLDIR/compile, link, vet) directly with
// importcfg files, like rules_go's builder. Each stage then needs only its
// package's sources and its direct deps' archives, and no stage except
// "ext" starts the go command beyond one cheap "go env".
//
// It must stay a single file using only the standard library: mc embeds it
// and builds it inside a stage with "go build -o out/gobuild gobuild.go".
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

const usageText = `usage: gobuild <command> [flags]

commands:
  imports -gomod FILE -o OUT|- [-tags a,b]   (the packages outside the module that its Go files import)
  ext     -o DIR -cfg OUT.importcfg [-imports FILE] [PATTERN...]   (PATTERN: a package or "std")
  compile -o OUT.a [-x OUT.x] -cfg OUT.importcfg [-dep DEP.importcfg]... [-dir DIR] [-gomod go.mod] [-p IMPORTPATH] [-tags a,b]
  vet     [-dep DEP.importcfg]... [-dir DIR] [-gomod go.mod] [-p IMPORTPATH] [-tags a,b] [-vet default|all]
  test    [-dep DEP.importcfg]... [-dir DIR] [-gomod go.mod] [-p IMPORTPATH] [-tags a,b] [-vet default|all|off] [-timeout 10m] [-ldflags "..."] [-- testbinary flags...]
  link    -o OUT [-dep DEP.importcfg]... [-dir DIR] [-gomod go.mod] [-tags a,b] [-ldflags "..."]

Every command also accepts -root DIR (default: $MC_WORKSPACE, else the current directory).
compile -x writes the export data apart: OUT.a then holds only the object code the linker reads, and the
compiles and vets of dependents read OUT.x alone.
`

// defaultVetFlags mirrors go test's defaultVetFlags
// (cmd/go/internal/test/test.go): the high-confidence analyzers.
var defaultVetFlags = []string{
	"-atomic",
	"-bool",
	"-buildtags",
	"-directive",
	"-errorsas",
	"-ifaceassert",
	"-nilfunc",
	"-printf",
	"-slog",
	"-stringintconv",
	"-tests",
}

// testmainImports are the packages every generated testmain imports; ext
// always builds them so a test stage never needs the go command.
var testmainImports = []string{"os", "reflect", "testing", "testing/internal/testdeps"}

func main() {
	if cc := os.Getenv(extldEnv); cc != "" {
		// Started by the Go linker as its C compiler (see link).
		os.Exit(extld(cc, os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a command-line mistake: reported with the usage text, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// reportedError means the failure was already described on stdout/stderr
// (tool output, a FAIL line); only the exit status remains.
type reportedError struct{}

func (reportedError) Error() string { return "failed" }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	r := &runner{ctx: ctx, stdout: stdout, stderr: stderr}
	var err error
	switch args[0] {
	case "imports":
		err = r.cmdImports(args[1:])
	case "ext":
		err = r.cmdExt(args[1:])
	case "compile":
		err = r.cmdCompile(args[1:])
	case "vet":
		err = r.cmdVet(args[1:])
	case "test":
		err = r.cmdTest(args[1:])
	case "link":
		err = r.cmdLink(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		err = usagef("unknown command %q", args[0])
	}
	if err == nil {
		return 0
	}
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "gobuild %s: %s\n%s", args[0], ue.msg, usageText)
		return 2
	case errors.As(err, new(reportedError)):
		return 1
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "gobuild: interrupted: %v\n", err)
		return 1
	default:
		fmt.Fprintf(stderr, "gobuild: %v\n", err)
		return 1
	}
}

// runner carries what every command needs; it replaces global state.
type runner struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	root   string // absolute workspace root
	env    *goEnv
}

// ---------------------------------------------------------------------------
// Flags

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// pkgFlags are the flags shared by compile, vet, test and link.
type pkgFlags struct {
	root       string
	deps       stringList
	dir        string
	gomod      string
	importPath string
	tags       string
}

func (p *pkgFlags) register(fs *flag.FlagSet, withP bool) {
	fs.StringVar(&p.root, "root", "", "workspace root (default $MC_WORKSPACE, else the current directory)")
	fs.Var(&p.deps, "dep", "dependency .importcfg (repeatable)")
	fs.StringVar(&p.dir, "dir", ".", "package directory")
	fs.StringVar(&p.gomod, "gomod", "", "go.mod of the main module (default: nearest go.mod above -dir)")
	if withP {
		fs.StringVar(&p.importPath, "p", "", "import path (default: derived from go.mod)")
	}
	fs.StringVar(&p.tags, "tags", "", "comma-separated build tags")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run, with the usage text
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	return nil
}

func splitTags(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func (r *runner) setRoot(flagRoot string) error {
	root := flagRoot
	if root == "" {
		root = os.Getenv("MC_WORKSPACE")
	}
	if root == "" {
		root = "."
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("workspace root %s: %w", root, err)
	}
	// Resolve symlinks so that paths under the root can be made relative.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	r.root = abs
	return nil
}

// absPath makes a command-line path absolute (relative to the current
// directory), resolving symlinks of the longest existing prefix so it
// compares correctly with the root.
func absPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	dir, base := abs, ""
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, base), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		base = filepath.Join(filepath.Base(dir), base)
		dir = parent
	}
}

// rootRel converts an absolute path to a slash path relative to the root,
// the form stored in .importcfg files so they survive a move of the root.
func (r *runner) rootRel(abs string) (string, error) {
	rel, err := filepath.Rel(r.root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is not under the workspace root %s", abs, r.root)
	}
	return filepath.ToSlash(rel), nil
}

func (r *runner) fromRoot(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(r.root, filepath.FromSlash(rel))
}

// ---------------------------------------------------------------------------
// go env

type goEnv struct {
	GOROOT      string
	GOTOOLDIR   string
	GOVERSION   string
	CC          string
	CGO_ENABLED string
	GOOS        string
	GOARCH      string
}

func (r *runner) loadGoEnv() error {
	cmd := exec.CommandContext(r.ctx, "go", "env", "-json", "GOROOT", "GOTOOLDIR", "GOVERSION", "CC", "CGO_ENABLED", "GOOS", "GOARCH")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go env: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var env goEnv
	if err := json.Unmarshal(out, &env); err != nil {
		return fmt.Errorf("go env: decoding output: %w", err)
	}
	if env.GOTOOLDIR == "" || env.GOVERSION == "" {
		return fmt.Errorf("go env: GOTOOLDIR or GOVERSION is empty")
	}
	// GOVERSION may carry experiment suffixes ("go1.26.8 X:foo"); the
	// first word is the version the toolchain stamps.
	env.GOVERSION = strings.Fields(env.GOVERSION)[0]
	r.env = &env
	return nil
}

func (e *goEnv) tool(name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(e.GOTOOLDIR, name)
}

// buildContext is go/build's context for the target described by go env.
func (e *goEnv) buildContext(tags []string) build.Context {
	ctx := build.Default
	ctx.GOROOT = e.GOROOT
	ctx.GOOS = e.GOOS
	ctx.GOARCH = e.GOARCH
	ctx.CgoEnabled = e.CGO_ENABLED == "1"
	ctx.BuildTags = tags
	return ctx
}

// ---------------------------------------------------------------------------
// go.mod

type goMod struct {
	dir       string      // absolute directory holding go.mod
	path      string      // module path
	goVersion string      // go directive, "" if absent
	godebug   [][2]string // godebug key=value lines, in order
}

func readGoMod(file string) (*goMod, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading go.mod: %w", err)
	}
	abs, err := absPath(file)
	if err != nil {
		return nil, err
	}
	m := &goMod{dir: filepath.Dir(abs)}
	inGodebug := false // inside a "godebug ( ... )" block
	for n, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case inGodebug && len(f) == 1 && f[0] == ")":
			inGodebug = false
			continue
		case inGodebug && len(f) == 1:
			f = []string{"godebug", f[0]}
		case len(f) == 2 && f[0] == "godebug" && f[1] == "(":
			inGodebug = true
			continue
		}
		if len(f) != 2 {
			continue
		}
		v := f[1]
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		switch f[0] {
		case "module":
			m.path = v
		case "go":
			m.goVersion = v
		case "godebug":
			k, val, ok := strings.Cut(v, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: godebug line without key=value", file, n+1)
			}
			m.godebug = append(m.godebug, [2]string{k, val})
		}
	}
	if m.path == "" {
		return nil, fmt.Errorf("%s: no module line", file)
	}
	return m, nil
}

func (m *goMod) contains(importPath string) bool {
	return importPath == m.path || strings.HasPrefix(importPath, m.path+"/")
}

// langVersion turns a go directive ("1.22.3", "1.21rc1") into -lang form.
func langVersion(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return "go" + v
	}
	minor := parts[1]
	for i, c := range minor {
		if c < '0' || c > '9' {
			minor = minor[:i]
			break
		}
	}
	return "go" + parts[0] + "." + minor
}

// ---------------------------------------------------------------------------
// .importcfg files

type cfgPkg struct {
	Path string
	File string // relative to the workspace root, slash-separated
	// Export is the package's export data alone (compile -o beside
	// -linkobj), what compiles and vet read; empty when File holds both.
	// Dependents' compiles key on it only, so a change that leaves it
	// as it was (a function body that is not inlined) stops there.
	Export  string
	Imports []string
	Std     bool
	origin  string // config file it came from, for error messages
	inBase  bool   // it came from a base config, which configs include by reference
}

// A pkgConfig is an .importcfg of gobuild's: packagefile lines, each with
// a "# gobuild pkg" line of its imports. The toolchain's config (ext's, of
// the standard library and the modules: hundreds of packages) is a base
// config ("# gobuild base"): the configs made from it name it in one
// "# gobuild include FILE" line instead of copying it, so each compile
// reads it once and writes a config of its workspace closure only.
type pkgConfig struct {
	goVersion string
	pkgs      map[string]*cfgPkg
	base      bool     // "# gobuild base"
	includes  []string // root-relative base configs it includes, sorted
}

func newPkgConfig(goVersion string) *pkgConfig {
	return &pkgConfig{goVersion: goVersion, pkgs: map[string]*cfgPkg{}}
}

func readConfig(file string) (*pkgConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading dep config: %w", err)
	}
	c := newPkgConfig("")
	get := func(p string) *cfgPkg {
		if c.pkgs[p] == nil {
			c.pkgs[p] = &cfgPkg{Path: p, origin: file}
		}
		return c.pkgs[p]
	}
	hasPkgLine := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		bad := func() error { return fmt.Errorf("%s:%d: malformed line %q", file, n+1, line) }
		switch {
		case line == "":
		case strings.HasPrefix(line, "# gobuild goversion "):
			c.goVersion = strings.TrimSpace(strings.TrimPrefix(line, "# gobuild goversion "))
		case line == "# gobuild base":
			c.base = true
		case strings.HasPrefix(line, "# gobuild include "):
			inc := strings.TrimSpace(strings.TrimPrefix(line, "# gobuild include "))
			if inc == "" || path.IsAbs(inc) || strings.Contains(inc, "..") {
				return nil, bad()
			}
			c.includes = append(c.includes, inc)
		case strings.HasPrefix(line, "# gobuild pkg "):
			f := strings.Fields(strings.TrimPrefix(line, "# gobuild pkg "))
			if len(f) < 3 || len(f) > 4 || !strings.HasPrefix(f[1], "imports=") || !strings.HasPrefix(f[2], "std=") {
				return nil, bad()
			}
			p := get(f[0])
			if len(f) == 4 {
				x, ok := strings.CutPrefix(f[3], "export=")
				if !ok || x == "" {
					return nil, bad()
				}
				p.Export = x
			}
			if imps := strings.TrimPrefix(f[1], "imports="); imps != "" {
				p.Imports = strings.Split(imps, ",")
			}
			p.Std = f[2] == "std=1"
			hasPkgLine[f[0]] = true
		case strings.HasPrefix(line, "#"):
			// Other comments are allowed, as for the Go tools.
		case strings.HasPrefix(line, "packagefile "):
			ip, f, ok := strings.Cut(strings.TrimPrefix(line, "packagefile "), "=")
			if !ok || ip == "" || f == "" {
				return nil, bad()
			}
			get(ip).File = f
		default:
			return nil, fmt.Errorf("%s:%d: unsupported line %q (gobuild configs hold only packagefile and # gobuild lines)", file, n+1, line)
		}
	}
	for p, e := range c.pkgs {
		if e.File == "" {
			return nil, fmt.Errorf("%s: package %s has no packagefile line", file, p)
		}
		// The import lists drive closure and fail-closed checks, so a
		// config without them cannot be trusted.
		if !hasPkgLine[p] {
			return nil, fmt.Errorf("%s: package %s has no '# gobuild pkg' line", file, p)
		}
	}
	return c, nil
}

// merge adds other's packages, refusing two different archives for one path.
func (c *pkgConfig) merge(other *pkgConfig) error {
	for p, e := range other.pkgs {
		if old, ok := c.pkgs[p]; ok {
			if old.File != e.File || old.Export != e.Export {
				return fmt.Errorf("conflicting archives for package %s: %s (from %s) and %s (from %s)", p, old.File, old.origin, e.File, e.origin)
			}
			continue
		}
		c.pkgs[p] = e
	}
	return nil
}

// encode writes the config: its base configs by reference, first's lines
// (if any), then the rest sorted by import path, so equal inputs give
// equal bytes. Packages of base configs are not copied.
func (c *pkgConfig) encode(first string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# gobuild goversion %s\n", c.goVersion)
	if c.base {
		b.WriteString("# gobuild base\n")
	}
	for _, inc := range c.includes {
		fmt.Fprintf(&b, "# gobuild include %s\n", inc)
	}
	write := func(e *cfgPkg) {
		std := 0
		if e.Std {
			std = 1
		}
		fmt.Fprintf(&b, "packagefile %s=%s\n", e.Path, e.File)
		export := ""
		if e.Export != "" {
			export = " export=" + e.Export
		}
		fmt.Fprintf(&b, "# gobuild pkg %s imports=%s std=%d%s\n", e.Path, strings.Join(e.Imports, ","), std, export)
	}
	if e, ok := c.pkgs[first]; ok {
		write(e)
	}
	for _, p := range sortedKeys(c.pkgs) {
		if e := c.pkgs[p]; p != first && !e.inBase {
			write(e)
		}
	}
	return b.Bytes()
}

// exportFile is the file a compile or vet reads for the package's types.
func (e *cfgPkg) exportFile() string {
	if e.Export != "" {
		return e.Export
	}
	return e.File
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// loadDeps reads and merges the -dep configs and the base configs they
// include (each once), checking they were built by this toolchain
// (archives from another version cannot be imported).
func (r *runner) loadDeps(files []string) (*pkgConfig, error) {
	all := newPkgConfig(r.env.GOVERSION)
	bases := map[string]bool{} // root-relative
	var load func(f, includedBy string) error
	load = func(f, includedBy string) error {
		c, err := readConfig(f)
		if err != nil {
			if includedBy != "" {
				return fmt.Errorf("%s includes it: %w", includedBy, err)
			}
			return err
		}
		if c.goVersion != "" && c.goVersion != r.env.GOVERSION {
			// The Go version is in no key: after an upgrade, the cached
			// toolchain stages still hold the old archives.
			return fmt.Errorf("dep config %s was made by %s, but the toolchain is %s: purge the go_toolchain's results (mc cache purge //PKG:NAME.builder //PKG:NAME.ext) and build again", f, c.goVersion, r.env.GOVERSION)
		}
		if includedBy != "" && !c.base {
			return fmt.Errorf("%s includes %s, which is not a base config", includedBy, f)
		}
		if c.base {
			abs, err := absPath(f)
			if err != nil {
				return err
			}
			rel, err := r.rootRel(abs)
			if err != nil {
				return fmt.Errorf("base config %s: %w", f, err)
			}
			if bases[rel] {
				return nil
			}
			bases[rel] = true
			for _, e := range c.pkgs {
				e.inBase = true
			}
		}
		if err := all.merge(c); err != nil {
			return err
		}
		for _, inc := range c.includes {
			if !bases[inc] {
				if err := load(r.fromRoot(inc), f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, f := range files {
		if err := load(f, ""); err != nil {
			return nil, err
		}
	}
	all.includes = sortedKeys(bases)
	return all, nil
}

// writeFileAtomic writes via a temporary file in the same directory and a
// rename, so readers never see a partial file.
func writeFileAtomic(file string, data []byte, perm os.FileMode) error {
	// A rename replaces whatever is there: never a device, a symlink
	// (/dev/stdout) or a directory.
	if fi, err := os.Lstat(file); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("writing %s: it exists and is not a regular file", file)
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("creating directory for %s: %w", file, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), perm)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// imports

func (r *runner) cmdImports(args []string) error {
	fs := newFlagSet("imports")
	root := fs.String("root", "", "workspace root")
	gomod := fs.String("gomod", "", "go.mod of the main module")
	out := fs.String("o", "", "output file")
	tags := fs.String("tags", "", "comma-separated build tags")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *gomod == "" || *out == "" {
		return usagef("-gomod and -o are required")
	}
	if err := r.setRoot(*root); err != nil {
		return err
	}
	mod, err := readGoMod(*gomod)
	if err != nil {
		return err
	}
	// go/build's Default context already honors GOOS, GOARCH and
	// CGO_ENABLED from the environment; no go command start is needed.
	bctx := build.Default
	bctx.BuildTags = splitTags(*tags)
	imports, err := scanImports(&bctx, r.root, mod)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, p := range imports {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	if *out == "-" {
		_, err := r.stdout.Write(b.Bytes())
		return err
	}
	return writeFileAtomic(*out, b.Bytes(), 0o666)
}

func scanImports(bctx *build.Context, root string, mod *goMod) ([]string, error) {
	fset := token.NewFileSet()
	set := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			// A nested module is not part of the main module.
			if p != mod.dir {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || !d.Type().IsRegular() {
			return nil
		}
		dir := filepath.Dir(p)
		ok, err := bctx.MatchFile(dir, name)
		if err != nil {
			return fmt.Errorf("matching %s: %w", p, err)
		}
		if !ok {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing imports: %w", err)
		}
		for _, is := range f.Imports {
			ip, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: bad import %s", fset.Position(is.Pos()), is.Path.Value)
			}
			if ip == "C" || mod.contains(ip) {
				continue
			}
			set[ip] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", root, err)
	}
	return sortedKeys(set), nil
}

// ---------------------------------------------------------------------------
// ext

type listPackage struct {
	ImportPath string
	Export     string
	Standard   bool
	Imports    []string
	Deps       []string
	GoFiles    []string
	CgoFiles   []string
	Incomplete bool
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

func (r *runner) cmdExt(args []string) error {
	fs := newFlagSet("ext")
	root := fs.String("root", "", "workspace root")
	importsFile := fs.String("imports", "", "file listing import paths, one a line")
	outDir := fs.String("o", "", "output directory for archives")
	cfgOut := fs.String("cfg", "", "output .importcfg")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *outDir == "" || *cfgOut == "" {
		return usagef("-o and -cfg are required")
	}
	if err := r.setRoot(*root); err != nil {
		return err
	}
	if err := r.loadGoEnv(); err != nil {
		return err
	}
	// The packages: go list patterns ("std" for the whole standard
	// library) from the command line and the -imports file.
	pkgs := append(slices.Clone(testmainImports), fs.Args()...)
	if *importsFile != "" {
		data, err := os.ReadFile(*importsFile)
		if err != nil {
			return fmt.Errorf("reading imports list: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				pkgs = append(pkgs, line)
			}
		}
	}
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)

	listArgs := append([]string{"list", "-e", "-deps", "-export", "-json=ImportPath,Export,Standard,Imports,Deps,GoFiles,CgoFiles,Incomplete,Error,DepsErrors", "--"}, pkgs...)
	cmd := exec.CommandContext(r.ctx, "go", listArgs...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	var listed []*listPackage
	var errs []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var lp listPackage
		if err := dec.Decode(&lp); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("go list: decoding output: %w", err)
		}
		if lp.Error != nil {
			errs = append(errs, fmt.Sprintf("%s: %s", lp.ImportPath, strings.TrimSpace(lp.Error.Err)))
		}
		for _, de := range lp.DepsErrors {
			errs = append(errs, fmt.Sprintf("%s: %s", lp.ImportPath, strings.TrimSpace(de.Err)))
		}
		listed = append(listed, &lp)
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("go list reported errors:\n\t%s", strings.Join(slices.Compact(errs), "\n\t"))
	}

	absOut, err := absPath(*outDir)
	if err != nil {
		return err
	}
	cfg := newPkgConfig(r.env.GOVERSION)
	cfg.base = true
	for _, lp := range listed {
		if lp.ImportPath == "unsafe" {
			continue // no archive: the compiler knows unsafe itself
		}
		if lp.Export == "" && len(lp.GoFiles)+len(lp.CgoFiles) == 0 {
			continue // only test files ("std" has such packages): nothing to import
		}
		if lp.Export == "" {
			return fmt.Errorf("go list gave no export file for %s", lp.ImportPath)
		}
		dst := filepath.Join(absOut, filepath.FromSlash(lp.ImportPath)+".a")
		if err := copyFile(dst, lp.Export); err != nil {
			return err
		}
		rel, err := r.rootRel(dst)
		if err != nil {
			return fmt.Errorf("ext output: %w", err)
		}
		imports := lp.Imports
		// Cgo translation adds imports of runtime/cgo and syscall that go
		// list leaves out of Imports; Deps shows which ones apply.
		if len(lp.CgoFiles) > 0 {
			for _, p := range []string{"runtime/cgo", "syscall"} {
				if p != lp.ImportPath && slices.Contains(lp.Deps, p) {
					imports = append(imports, p)
				}
			}
		}
		cfg.pkgs[lp.ImportPath] = &cfgPkg{Path: lp.ImportPath, File: rel, Imports: cleanImports(imports), Std: lp.Standard}
	}
	return writeFileAtomic(*cfgOut, cfg.encode(""), 0o666)
}

// cleanImports drops pseudo-packages without archives and sorts.
func cleanImports(imports []string) []string {
	var out []string
	for _, p := range imports {
		if p != "C" && p != "unsafe" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func copyFile(dst, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copying archive: %w", err)
	}
	return writeFileAtomic(dst, data, 0o666)
}

// ---------------------------------------------------------------------------
// Package loading

type pkgInfo struct {
	dirArg     string // -dir as given, for messages
	dir        string // absolute
	importPath string
	mod        *goMod // nil without go.mod
	bp         *build.Package
}

func (r *runner) loadPackage(pf *pkgFlags, needImportPath bool) (*pkgInfo, error) {
	dir, err := absPath(pf.dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", pf.dir)
	}
	pi := &pkgInfo{dirArg: pf.dir, dir: dir}
	gomod := pf.gomod
	if gomod == "" {
		// Look upward from the package, not beyond the workspace root.
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				gomod = filepath.Join(d, "go.mod")
				break
			}
			if d == r.root || filepath.Dir(d) == d {
				break
			}
		}
	}
	if gomod != "" {
		if pi.mod, err = readGoMod(gomod); err != nil {
			return nil, err
		}
	}
	pi.importPath = pf.importPath
	if pi.importPath == "" && needImportPath {
		if pi.mod == nil {
			return nil, usagef("%s: cannot determine the import path: no go.mod found; pass -p or -gomod", pf.dir)
		}
		rel, err := filepath.Rel(pi.mod.dir, dir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s: directory is outside module %s (%s)", pf.dir, pi.mod.path, pi.mod.dir)
		}
		pi.importPath = pi.mod.path
		if rel != "." {
			pi.importPath += "/" + filepath.ToSlash(rel)
		}
	}
	bctx := r.env.buildContext(splitTags(pf.tags))
	bp, err := bctx.ImportDir(dir, build.ImportComment)
	if err != nil {
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil, fmt.Errorf("%s: no Go files match the build context (GOOS=%s GOARCH=%s tags=%q)", pf.dir, r.env.GOOS, r.env.GOARCH, pf.tags)
		}
		return nil, fmt.Errorf("%s: %w", pf.dir, err)
	}
	pi.bp = bp
	if err := pi.checkSupported(); err != nil {
		return nil, err
	}
	return pi, nil
}

// checkSupported refuses what needs the go command's cgo/assembler steps.
func (pi *pkgInfo) checkSupported() error {
	bp := pi.bp
	if len(bp.CgoFiles) > 0 {
		return fmt.Errorf("%s: cgo files (%s) are not supported by gobuild; use the go command (builder = \"go\")", pi.dirArg, strings.Join(bp.CgoFiles, ", "))
	}
	var other []string
	for _, l := range [][]string{bp.CFiles, bp.CXXFiles, bp.MFiles, bp.HFiles, bp.FFiles, bp.SFiles, bp.SwigFiles, bp.SwigCXXFiles, bp.SysoFiles} {
		other = append(other, l...)
	}
	if len(other) > 0 {
		slices.Sort(other)
		return fmt.Errorf("%s: non-Go source files (%s) are not supported by gobuild; use the go command (builder = \"go\")", pi.dirArg, strings.Join(other, ", "))
	}
	return nil
}

func (pi *pkgInfo) abs(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.Join(pi.dir, f)
	}
	return out
}

// goVersionForVet is vetConfig.GoVersion: the module's go directive.
func (pi *pkgInfo) goVersionForVet(env *goEnv) string {
	if pi.mod == nil {
		return env.GOVERSION
	}
	if pi.mod.goVersion == "" {
		return "go1.16" // the go command's default for a go.mod without a go line
	}
	return "go" + pi.mod.goVersion
}

func (pi *pkgInfo) langFlag() []string {
	if pi.mod == nil {
		return nil
	}
	v := pi.mod.goVersion
	if v == "" {
		v = "1.16"
	}
	return []string{"-lang=" + langVersion(v)}
}

// missingDep explains a missing import and how to provide it.
func (pi *pkgInfo) missingDep(importer, imp string) error {
	var hint string
	switch {
	case pi.mod != nil && pi.mod.contains(imp):
		hint = fmt.Sprintf("add the go_library that builds %s to deps; it is in the main module %s", imp, pi.mod.path)
	default:
		// The toolchain's ext stage compiles the standard library and
		// the module packages it is told to, no more.
		hint = fmt.Sprintf("%s is outside the main module and not among the packages the toolchain compiled: add it to go_toolchain's packages", imp)
	}
	return fmt.Errorf("%s: package %s imports %s, which no dep provides (%s)", pi.dirArg, importer, imp, hint)
}

// ---------------------------------------------------------------------------
// Embedding

// resolveEmbed follows the go command's //go:embed rules (cmd/go/internal/load
// resolveEmbed): patterns are globs relative to dir; directories are walked
// recursively, skipping names starting with . or _ unless the pattern starts
// with "all:"; a pattern matching nothing is an error.
func resolveEmbed(dir string, patterns []string) (map[string][]string, map[string]string, error) {
	pmap := map[string][]string{}
	files := map[string]string{}
	for _, pattern := range patterns {
		glob, all := strings.CutPrefix(pattern, "all:")
		fail := func(format string, args ...any) error {
			return fmt.Errorf("pattern %s: %s", pattern, fmt.Sprintf(format, args...))
		}
		if _, err := path.Match(glob, ""); err != nil || glob == "." || !fs.ValidPath(glob) {
			return nil, nil, fail("invalid pattern syntax")
		}
		matches, err := filepath.Glob(quoteGlob(dir) + string(filepath.Separator) + filepath.FromSlash(glob))
		if err != nil {
			return nil, nil, fail("%v", err)
		}
		have := map[string]bool{}
		var list []string
		add := func(rel, abs string) {
			if !have[rel] {
				have[rel] = true
				list = append(list, rel)
				files[rel] = abs
			}
		}
		for _, m := range matches {
			rel := filepath.ToSlash(strings.TrimPrefix(m, dir+string(filepath.Separator)))
			info, err := os.Lstat(m)
			if err != nil {
				return nil, nil, fail("%v", err)
			}
			what := "file"
			if info.IsDir() {
				what = "directory"
			}
			// Check every path element below dir, as the go command does.
			for _, elem := range strings.Split(rel, "/") {
				if isBadEmbedName(elem) {
					return nil, nil, fail("cannot embed %s %s: invalid name %s", what, rel, elem)
				}
			}
			for d := filepath.Dir(m); len(d) > len(dir); d = filepath.Dir(d) {
				if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
					return nil, nil, fail("cannot embed %s %s: in different module", what, rel)
				}
			}
			switch {
			case info.Mode().IsRegular():
				add(rel, m)
			case info.IsDir():
				if _, err := os.Stat(filepath.Join(m, "go.mod")); err == nil {
					return nil, nil, fail("cannot embed directory %s: in different module", rel)
				}
				count := 0
				err := filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					prel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
					name := d.Name()
					if p != m && (isBadEmbedName(name) || ((name[0] == '.' || name[0] == '_') && !all)) {
						if d.IsDir() {
							return fs.SkipDir
						}
						if name[0] == '.' || name[0] == '_' {
							return nil
						}
						return fmt.Errorf("cannot embed file %s: invalid name %s", prel, name)
					}
					if d.IsDir() {
						if p != m {
							if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
								return fs.SkipDir
							}
						}
						return nil
					}
					if !d.Type().IsRegular() {
						return nil
					}
					count++
					add(prel, p)
					return nil
				})
				if err != nil {
					return nil, nil, fail("%v", err)
				}
				if count == 0 {
					return nil, nil, fail("cannot embed directory %s: contains no embeddable files", rel)
				}
			default:
				return nil, nil, fail("cannot embed irregular file %s", rel)
			}
		}
		if len(list) == 0 {
			return nil, nil, fail("no matching files found")
		}
		sort.Strings(list)
		pmap[pattern] = list
	}
	return pmap, files, nil
}

func quoteGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) && runtime.GOOS != "windows" {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// isBadEmbedName approximates module.CheckFilePath plus the VCS directories
// the go command refuses: names that cannot be in a module zip.
func isBadEmbedName(name string) bool {
	switch name {
	case "", ".", "..", ".bzr", ".hg", ".git", ".svn":
		return true
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.ContainsRune("\"'*<>?`|:\\", c) || !unicode.IsPrint(c) {
			return true
		}
	}
	short, _, _ := strings.Cut(name, ".")
	switch strings.ToUpper(short) {
	case "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		return true
	}
	return false
}

// ---------------------------------------------------------------------------
// Running tools

// runTool runs a Go tool in dir, with env added to gobuild's environment,
// copying its output to stderr with absolute workspace paths shortened to
// root-relative ones (stable across sandboxes).
func (r *runner) runTool(dir string, env []string, tool string, args ...string) error {
	out, err := r.runToolOutput(dir, env, tool, args...)
	if len(out) > 0 {
		r.stderr.Write(out)
	}
	return err
}

// runToolOutput is runTool returning the output instead.
func (r *runner) runToolOutput(dir string, env []string, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(r.ctx, tool, args...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	b := bytes.ReplaceAll(out.Bytes(), []byte(r.root+string(filepath.Separator)), nil)
	if err != nil {
		return b, fmt.Errorf("%s: %w", filepath.Base(tool), err)
	}
	return b, nil
}

// compileUnit is one invocation of the compiler.
type compileUnit struct {
	importPath string            // -p
	srcDir     string            // absolute source directory (for -trimpath)
	trimTo     string            // what srcDir reads as in the object
	files      []string          // absolute .go files
	importcfg  map[string]string // import path -> absolute archive, direct imports
	embed      []string          // //go:embed patterns
	lang       []string          // -lang flag, if any
	out        string            // archive to write
	// linkObj, when set, receives the object code and out only the
	// export data (compile -linkobj).
	linkObj string
	tmp     string // scratch directory
}

func (r *runner) compile(u *compileUnit) error {
	var cfg bytes.Buffer
	for _, p := range sortedKeys(u.importcfg) {
		fmt.Fprintf(&cfg, "packagefile %s=%s\n", p, u.importcfg[p])
	}
	base := strings.NewReplacer("/", "_", ".", "_").Replace(u.importPath)
	cfgFile := filepath.Join(u.tmp, base+".importcfg")
	if err := os.WriteFile(cfgFile, cfg.Bytes(), 0o666); err != nil {
		return fmt.Errorf("writing importcfg: %w", err)
	}
	trim := u.srcDir
	if u.trimTo != "" {
		trim += "=>" + u.trimTo
	}
	args := []string{"-o", u.out, "-p", u.importPath, "-pack", "-importcfg", cfgFile}
	if u.linkObj != "" {
		args = append(args, "-linkobj", u.linkObj)
	}
	args = append(args, u.lang...)
	args = append(args, "-complete", "-trimpath", trim, "-nolocalimports")
	if runtime.NumCPU() > 1 {
		args = append(args, "-c=4")
	}
	if len(u.embed) > 0 {
		pmap, files, err := resolveEmbed(u.srcDir, u.embed)
		if err != nil {
			return fmt.Errorf("%s: %w", u.importPath, err)
		}
		js, err := json.MarshalIndent(struct {
			Patterns map[string][]string
			Files    map[string]string
		}{pmap, files}, "", "\t")
		if err != nil {
			return fmt.Errorf("encoding embedcfg: %w", err)
		}
		embedFile := filepath.Join(u.tmp, base+".embedcfg")
		if err := os.WriteFile(embedFile, js, 0o666); err != nil {
			return fmt.Errorf("writing embedcfg: %w", err)
		}
		args = append(args, "-embedcfg", embedFile)
	}
	args = append(args, u.files...)
	if err := r.runTool(u.srcDir, nil, r.env.tool("compile"), args...); err != nil {
		return fmt.Errorf("compiling %s: %w", u.importPath, err)
	}
	return nil
}

// directImports maps each import (minus unsafe/C) to its absolute archive.
func (r *runner) directImports(pi *pkgInfo, importer string, imports []string, deps *pkgConfig, override map[string]string) (map[string]string, error) {
	m := map[string]string{}
	for _, imp := range cleanImports(imports) {
		if f, ok := override[imp]; ok {
			m[imp] = f
			continue
		}
		e, ok := deps.pkgs[imp]
		if !ok {
			return nil, pi.missingDep(importer, imp)
		}
		m[imp] = r.fromRoot(e.exportFile())
	}
	return m, nil
}

// ---------------------------------------------------------------------------
// compile

func (r *runner) cmdCompile(args []string) error {
	fs := newFlagSet("compile")
	var pf pkgFlags
	pf.register(fs, true)
	out := fs.String("o", "", "output archive")
	exportOut := fs.String("x", "", "output export data; -o then holds only the object code the linker reads")
	cfgOut := fs.String("cfg", "", "output .importcfg")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || *cfgOut == "" {
		return usagef("-o and -cfg are required")
	}
	pi, err := r.openPackage(&pf)
	if err != nil {
		return err
	}
	if len(pi.bp.GoFiles) == 0 {
		return fmt.Errorf("%s: package %s has no non-test Go files for GOOS=%s GOARCH=%s", pi.dirArg, pi.importPath, r.env.GOOS, r.env.GOARCH)
	}
	deps, err := r.loadDeps(pf.deps)
	if err != nil {
		return err
	}
	absOut, err := absPath(*out)
	if err != nil {
		return err
	}
	relOut, err := r.rootRel(absOut)
	if err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	var absX, relX string
	if *exportOut != "" {
		if absX, err = absPath(*exportOut); err != nil {
			return err
		}
		if relX, err = r.rootRel(absX); err != nil {
			return fmt.Errorf("-x: %w", err)
		}
		if absX == absOut {
			return usagef("-x and -o name the same file")
		}
	}
	importcfg, err := r.directImports(pi, pi.importPath, pi.bp.Imports, deps, nil)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gobuild-compile-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Compile next to the output and rename, so a failed or interrupted
	// compile never leaves a truncated archive behind.
	if err := os.MkdirAll(filepath.Dir(absOut), 0o777); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	tmpOut := absOut + ".tmp"
	defer os.Remove(tmpOut)
	// With -x, the compiler's -o is the export data and -linkobj the
	// object code: dependents' compiles read (and key on) the first only.
	compileOut, linkObj := tmpOut, ""
	if absX != "" {
		if err := os.MkdirAll(filepath.Dir(absX), 0o777); err != nil {
			return fmt.Errorf("creating output directory: %w", err)
		}
		compileOut, linkObj = absX+".tmp", tmpOut
		defer os.Remove(compileOut)
	}
	err = r.compile(&compileUnit{
		importPath: pi.importPath,
		srcDir:     pi.dir,
		trimTo:     pi.importPath,
		files:      pi.abs(pi.bp.GoFiles),
		importcfg:  importcfg,
		embed:      pi.bp.EmbedPatterns,
		lang:       pi.langFlag(),
		out:        compileOut,
		linkObj:    linkObj,
		tmp:        tmp,
	})
	if err != nil {
		return err
	}
	if err := os.Rename(tmpOut, absOut); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	if absX != "" {
		if err := os.Rename(compileOut, absX); err != nil {
			return fmt.Errorf("writing %s: %w", *exportOut, err)
		}
	}
	deps.pkgs[pi.importPath] = &cfgPkg{Path: pi.importPath, File: relOut, Export: relX, Imports: cleanImports(pi.bp.Imports)}
	return writeFileAtomic(*cfgOut, deps.encode(pi.importPath), 0o666)
}

// ---------------------------------------------------------------------------
// vet

type vetConfig struct {
	ID           string
	Compiler     string
	Dir          string
	ImportPath   string
	GoFiles      []string
	NonGoFiles   []string
	IgnoredFiles []string

	ModulePath    string
	ModuleVersion string
	ImportMap     map[string]string
	PackageFile   map[string]string
	Standard      map[string]bool
	PackageVetx   map[string]string
	VetxOnly      bool
	VetxOutput    string
	Stdout        string
	GoVersion     string
	FixArchive    string

	SucceedOnTypecheckFailure bool
}

type vetUnit struct {
	id         string
	importPath string
	files      []string          // absolute
	imports    []string          // direct imports as written
	archives   map[string]string // every package path -> absolute archive
	std        map[string]bool
}

// vet runs the vet tool; findings (or errors) come back as output.
func (r *runner) vet(pi *pkgInfo, u *vetUnit, mode, tmp string) ([]byte, error) {
	vcfg := &vetConfig{
		ID:          u.id,
		Compiler:    "gc",
		Dir:         pi.dir,
		ImportPath:  u.importPath,
		GoFiles:     u.files,
		NonGoFiles:  []string{},
		ImportMap:   map[string]string{},
		PackageFile: u.archives,
		Standard:    u.std,
		// No facts from deps: gobuild vets each package alone, so
		// cross-package facts (e.g. printf wrappers in other packages)
		// are not seen; this only loses findings, never adds false ones.
		PackageVetx:               map[string]string{},
		VetxOutput:                filepath.Join(tmp, strings.NewReplacer("/", "_", " ", "_", "[", "", "]", "").Replace(u.id)+".vetx"),
		GoVersion:                 pi.goVersionForVet(r.env),
		SucceedOnTypecheckFailure: false,
	}
	if pi.mod != nil {
		vcfg.ModulePath = pi.mod.path
	}
	for p := range u.archives {
		vcfg.ImportMap[p] = p
	}
	for _, imp := range u.imports {
		vcfg.ImportMap[imp] = imp
	}
	js, err := json.MarshalIndent(vcfg, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("encoding vet config: %w", err)
	}
	cfgFile := strings.TrimSuffix(vcfg.VetxOutput, ".vetx") + ".vet.cfg"
	if err := os.WriteFile(cfgFile, js, 0o666); err != nil {
		return nil, fmt.Errorf("writing vet config: %w", err)
	}
	var flags []string
	if mode == "default" {
		flags = slices.Clone(defaultVetFlags)
	}
	return r.runToolOutput(pi.dir, nil, r.env.tool("vet"), append(flags, cfgFile)...)
}

func checkVetMode(mode string, allowOff bool) error {
	switch mode {
	case "default", "all":
		return nil
	case "off":
		if allowOff {
			return nil
		}
	}
	return usagef("invalid -vet=%s", mode)
}

// archivesOf lists every package of a config as absolute archives: the
// export data vet reads (export) or the object code the linker reads.
func (r *runner) archivesOf(deps *pkgConfig, export bool) (map[string]string, map[string]bool) {
	files := map[string]string{}
	std := map[string]bool{}
	for p, e := range deps.pkgs {
		files[p] = r.fromRoot(e.File)
		if export {
			files[p] = r.fromRoot(e.exportFile())
		}
		if e.Std {
			std[p] = true
		}
	}
	return files, std
}

// openPackage sets the workspace root, asks the go command for the tools
// and loads the package the flags name: what every command on one package
// does first.
func (r *runner) openPackage(pf *pkgFlags) (*pkgInfo, error) {
	if err := r.setRoot(pf.root); err != nil {
		return nil, err
	}
	if err := r.loadGoEnv(); err != nil {
		return nil, err
	}
	return r.loadPackage(pf, true)
}

func (r *runner) cmdVet(args []string) error {
	fs := newFlagSet("vet")
	var pf pkgFlags
	pf.register(fs, true)
	mode := fs.String("vet", "default", "analyzers: default (go test's set) or all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkVetMode(*mode, false); err != nil {
		return err
	}
	pi, err := r.openPackage(&pf)
	if err != nil {
		return err
	}
	if len(pi.bp.GoFiles) == 0 {
		return fmt.Errorf("%s: package %s has no non-test Go files", pi.dirArg, pi.importPath)
	}
	deps, err := r.loadDeps(pf.deps)
	if err != nil {
		return err
	}
	if _, err := r.directImports(pi, pi.importPath, pi.bp.Imports, deps, nil); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gobuild-vet-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	archives, std := r.archivesOf(deps, true)
	delete(archives, pi.importPath) // vet type-checks the package from source
	out, err := r.vet(pi, &vetUnit{
		id: pi.importPath, importPath: pi.importPath, files: pi.abs(pi.bp.GoFiles),
		imports: pi.bp.Imports, archives: archives, std: std,
	}, *mode, tmp)
	if err != nil {
		fmt.Fprintf(r.stderr, "# %s\n%s", pi.importPath, out)
		return fmt.Errorf("vet %s: %w", pi.importPath, err)
	}
	r.stderr.Write(out)
	return nil
}

// ---------------------------------------------------------------------------
// Link closure

// linkClosure walks imports from roots through the deps, returning every
// package reached; a package no dep provides is an error naming its importer.
func linkClosure(deps *pkgConfig, roots map[string]string, skip map[string]bool) ([]string, error) {
	seen := map[string]bool{}
	type item struct{ path, importer string }
	var queue []item
	for _, r := range sortedKeys(roots) {
		queue = append(queue, item{r, roots[r]})
	}
	var order []string
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if seen[it.path] || skip[it.path] || it.path == "unsafe" || it.path == "C" {
			continue
		}
		seen[it.path] = true
		e, ok := deps.pkgs[it.path]
		if !ok {
			return nil, fmt.Errorf("package %s (imported by %s) is not provided by any dep config", it.path, it.importer)
		}
		order = append(order, it.path)
		for _, imp := range e.Imports {
			queue = append(queue, item{imp, it.path})
		}
	}
	sort.Strings(order)
	return order, nil
}

type linkSpec struct {
	out        string
	mainArch   string
	archives   map[string]string // package path -> absolute archive
	modinfo    string
	godebug    string // runtime.godebugDefault
	ldflags    []string
	omitDebug  bool
	tmp        string
	workingDir string
}

func (r *runner) link(s *linkSpec) error {
	var cfg bytes.Buffer
	for _, p := range sortedKeys(s.archives) {
		fmt.Fprintf(&cfg, "packagefile %s=%s\n", p, s.archives[p])
	}
	if s.modinfo != "" {
		// Framed like cmd/go/internal/modload.ModInfoData so that
		// runtime/debug.ReadBuildInfo finds it.
		const infoStart = "\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
		const infoEnd = "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2"
		fmt.Fprintf(&cfg, "modinfo %q\n", infoStart+s.modinfo+infoEnd)
	}
	cfgFile := filepath.Join(s.tmp, "importcfg.link")
	if err := os.WriteFile(cfgFile, cfg.Bytes(), 0o666); err != nil {
		return fmt.Errorf("writing link importcfg: %w", err)
	}
	args := []string{"-o", s.out, "-importcfg", cfgFile, "-buildmode=exe"}
	if s.omitDebug {
		args = append(args, "-s", "-w")
	}
	if s.omitDebug || slices.Contains(s.ldflags, "-w") {
		// No DWARF to compress, but an external link would still run the
		// C compiler once more to probe the flag (0.1-0.2 s).
		args = append(args, "-compressdwarf=false")
	}
	var env []string
	if cc := strings.Fields(r.env.CC); len(cc) > 0 {
		ccArgs, ccEnv, err := probeMemo(cc[0], s.tmp)
		if err != nil {
			return err
		}
		args = append(args, ccArgs...)
		env = ccEnv
		if len(cc) > 1 && !slices.ContainsFunc(s.ldflags, func(f string) bool { return strings.HasPrefix(strings.TrimLeft(f, "-"), "extldflags") }) {
			args = append(args, "-extldflags="+strings.Join(cc[1:], " "))
		}
	}
	if s.godebug != "" {
		args = append(args, "-X=runtime.godebugDefault="+s.godebug)
	}
	args = append(args, s.ldflags...)
	args = append(args, s.mainArch)
	if err := r.runTool(s.workingDir, env, r.env.tool("link"), args...); err != nil {
		return fmt.Errorf("linking %s: %w", filepath.Base(s.out), err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The external linker's probes

// An external link (cgo) makes the Go linker run the C compiler four or five
// times before the link itself, each time compiling and linking an empty
// program to learn whether a flag is supported (-no-pie, --build-id,
// --export-dynamic-symbol, response files): 0.3-0.5 s per link that go
// build pays too. The answers depend on nothing but the C toolchain, so
// gobuild keeps them in a cache mount, like ccache keeps objects: the
// linker is given gobuild itself as its C compiler (extld); a probe is
// answered from the memo, anything else runs the real compiler.

// probesEnv names the memo's directory (the cache mount of go.star's
// gobuild stages); without it the linker runs the C compiler itself.
const probesEnv = "GOBUILD_PROBES"

// extldEnv, extldTmpEnv and extldMemoEnv are how link tells the extld it
// starts which compiler to run, where the linker's probes are made and where
// their answers are kept.
const (
	extldEnv     = "GOBUILD_EXTLD"
	extldTmpEnv  = "GOBUILD_EXTLD_TMP"
	extldMemoEnv = "GOBUILD_EXTLD_MEMO"
)

// probeMemo returns the linker flags and environment that route the C
// compiler cc through gobuild's probe memo, or just -extld=cc when there is
// no usable memo directory or no such compiler (a link that needs none,
// without cgo, then works as before): the memo only saves time. tmp is the
// link's scratch directory.
func probeMemo(cc, tmp string) (args, env []string, err error) {
	memo := os.Getenv(probesEnv)
	self, selfErr := os.Executable()
	real, lookErr := exec.LookPath(cc)
	if lookErr == nil {
		real, lookErr = filepath.Abs(real)
	}
	if memo == "" || selfErr != nil || lookErr != nil || os.MkdirAll(memo, 0o777) != nil {
		return []string{"-extld=" + cc}, nil, nil
	}
	// The linker's own scratch directory, named so that extld can tell its
	// probes (TMP/trivial.c) from the link.
	ltmp := filepath.Join(tmp, "link")
	if err := os.Mkdir(ltmp, 0o777); err != nil {
		return nil, nil, err
	}
	return []string{"-extld=" + self, "-tmpdir=" + ltmp},
		[]string{extldEnv + "=" + real, extldTmpEnv + "=" + ltmp, extldMemoEnv + "=" + memo}, nil
}

// extld is gobuild run by the Go linker as its C compiler cc: it answers a
// probe from the memo (or asks cc and remembers a definite answer) and runs
// cc for anything else.
func extld(cc string, args []string, stdout, stderr io.Writer) int {
	tmp, memo := os.Getenv(extldTmpEnv), os.Getenv(extldMemoEnv)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == extldEnv || k == extldTmpEnv || k == extldMemoEnv
	})
	if tmp == "" || memo == "" || !isProbe(args, tmp) {
		err := syscall.Exec(cc, append([]string{cc}, args...), env)
		fmt.Fprintf(stderr, "gobuild: running the C compiler %s: %v\n", cc, err)
		return 1
	}
	key, err := probeKey(cc, args, tmp, env)
	if err != nil {
		fmt.Fprintf(stderr, "gobuild: %v\n", err)
		return 1
	}
	file := filepath.Join(memo, key+".probe")
	if code, out, ok := readProbe(file); ok {
		stdout.Write(out)
		return code
	}
	cmd := exec.Command(cc, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(stderr, "gobuild: running the C compiler %s: %v\n", cc, err)
			return 1
		}
		code = ee.ExitCode()
	}
	// Only a definite answer is kept: supported, or refused with the words
	// the linker looks for. A crash, a signal or a full disk is asked again
	// next time, never remembered as "unsupported".
	if code == 0 || code == 1 && (bytes.Contains(out, []byte("unrecognized")) || bytes.Contains(out, []byte("unknown"))) {
		writeProbe(file, code, out)
	}
	stdout.Write(out)
	return code
}

// isProbe reports whether args are the linker's probe of a flag: "... -o
// TMP/a.out FLAG TMP/trivial.c" (cmd/link's linkerFlagSupported).
func isProbe(args []string, tmp string) bool {
	n := len(args)
	return n >= 4 && args[n-1] == filepath.Join(tmp, "trivial.c") &&
		args[n-4] == "-o" && args[n-3] == filepath.Join(tmp, "a.out")
}

// probeKey names a probe's answer: the probe's arguments and program, the
// environment the C compiler reads, and the identity (path, size, mtime,
// inode) of the compiler and of each linker it may run, so that installing,
// upgrading or removing one asks again.
func probeKey(cc string, args []string, tmp string, env []string) (string, error) {
	src, err := os.ReadFile(filepath.Join(tmp, "trivial.c"))
	if err != nil {
		return "", fmt.Errorf("reading the linker's probe: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "gobuild extld probe 1\nsrc %q\n", src)
	for _, a := range args {
		fmt.Fprintf(&b, "arg %q\n", strings.ReplaceAll(a, tmp, "$TMP"))
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "LIBRARY_PATH", "LD_LIBRARY_PATH", "LD_RUN_PATH", "CPATH", "C_INCLUDE_PATH", "SOURCE_DATE_EPOCH", "TMPDIR":
			fmt.Fprintf(&b, "env %q\n", kv)
		}
	}
	fmt.Fprintf(&b, "cc %s\n", fileIdentity(cc))
	for _, ld := range []string{"ld", "ld.bfd", "ld.gold", "ld.mold", "ld.lld", "mold", "lld"} {
		p, err := exec.LookPath(ld)
		if err != nil {
			fmt.Fprintf(&b, "%s absent\n", ld)
			continue
		}
		fmt.Fprintf(&b, "%s %s\n", ld, fileIdentity(p))
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(b.String()))), nil
}

// fileIdentity is what says a program changed: its resolved path, size,
// modification time and inode.
func fileIdentity(p string) string {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Sprintf("%q unreadable", p)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Sprintf("%q unreadable", real)
	}
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%q size=%d mtime=%d ino=%d", real, fi.Size(), fi.ModTime().UnixNano(), ino)
}

// readProbe reads a remembered answer: "exit N\n" and the output. Anything
// else (a torn or foreign file) is no answer.
func readProbe(file string) (code int, out []byte, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, nil, false
	}
	line, rest, found := bytes.Cut(b, []byte("\n"))
	if !found {
		return 0, nil, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(line), "exit "))
	if err != nil || !bytes.HasPrefix(line, []byte("exit ")) || (n != 0 && n != 1) {
		return 0, nil, false
	}
	return n, rest, true
}

// writeProbe remembers an answer, atomically (a concurrent link reads the
// whole answer or none); a failure only means asking again next time.
func writeProbe(file string, code int, out []byte) {
	f, err := os.CreateTemp(filepath.Dir(file), ".probe-")
	if err != nil {
		return
	}
	_, werr := fmt.Fprintf(f, "exit %d\n%s", code, out)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), file) != nil {
		os.Remove(f.Name())
	}
}

// buildInfo is what go build -trimpath stamps (no VCS, no dep modules;
// -ldflags is omitted under -trimpath, as the go command does).
func (r *runner) buildInfo(pi *pkgInfo, mainPath, tags, godebug string) string {
	bi := &debug.BuildInfo{GoVersion: r.env.GOVERSION, Path: mainPath}
	if pi.mod != nil {
		bi.Main = debug.Module{Path: pi.mod.path, Version: "(devel)"}
	}
	add := func(k, v string) { bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v}) }
	add("-buildmode", "exe")
	add("-compiler", "gc")
	if t := splitTags(tags); len(t) > 0 {
		add("-tags", strings.Join(t, ","))
	}
	add("-trimpath", "true")
	if godebug != "" {
		add("DefaultGODEBUG", godebug)
	}
	add("CGO_ENABLED", r.env.CGO_ENABLED)
	add("GOARCH", r.env.GOARCH)
	add("GOOS", r.env.GOOS)
	return bi.String()
}

// ---------------------------------------------------------------------------
// Default GODEBUG

// defaultGODEBUG mirrors the go command (cmd/go/internal/load/godebug.go):
// a main package's GODEBUG defaults follow the main module's go version,
// go.mod godebug lines and //go:debug directives, so that binaries built
// here behave like go-built ones.
func (r *runner) defaultGODEBUG(pi *pkgInfo, directives ...[]build.Directive) (string, error) {
	goVersion := strings.TrimPrefix(r.env.GOVERSION, "go")
	if pi.mod != nil {
		goVersion = pi.mod.goVersion
		if goVersion == "" {
			goVersion = "1.16"
		}
	}
	m := map[string]string{}
	if pi.mod != nil {
		for _, kv := range pi.mod.godebug {
			m[kv[0]] = kv[1]
		}
	}
	for _, list := range directives {
		for _, d := range list {
			rest, ok := strings.CutPrefix(d.Text, "//go:debug")
			if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimSpace(rest), "=")
			if !ok {
				return "", fmt.Errorf("%s: //go:debug directive without key=value", d.Pos)
			}
			m[k] = v
		}
	}
	if v, ok := m["default"]; ok {
		delete(m, "default")
		goVersion = strings.TrimPrefix(v, "go")
	}
	minor, ok := goMinor(goVersion)
	if ok {
		table, err := readGodebugTable(r.env.GOROOT)
		if err != nil {
			return "", err
		}
		defaults := map[string]string{}
		for _, info := range table {
			if minor < info.changed {
				defaults[info.name] = info.old
			}
		}
		maps.Copy(defaults, m)
		m = defaults
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ","), nil
}

// goMinor returns N of a "1.N[.x]" version.
func goMinor(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, "1.")
	if !ok {
		return 0, false
	}
	if i := strings.IndexFunc(rest, func(c rune) bool { return c < '0' || c > '9' }); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

type godebugInfo struct {
	name    string
	changed int
	old     string
}

// readGodebugTable reads internal/godebugs.All from GOROOT's sources: the
// package is internal, so parsing its table is the only way to share it.
func readGodebugTable(goroot string) ([]godebugInfo, error) {
	file := filepath.Join(goroot, "src", "internal", "godebugs", "table.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("reading the GODEBUG table: %w", err)
	}
	var table []godebugInfo
	ast.Inspect(f, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		var info godebugInfo
		for _, e := range cl.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, ok1 := kv.Key.(*ast.Ident)
			lit, ok2 := kv.Value.(*ast.BasicLit)
			if !ok1 || !ok2 {
				continue
			}
			switch key.Name {
			case "Name":
				info.name, _ = strconv.Unquote(lit.Value)
			case "Old":
				info.old, _ = strconv.Unquote(lit.Value)
			case "Changed":
				info.changed, _ = strconv.Atoi(lit.Value)
			}
		}
		if info.name != "" {
			table = append(table, info)
		}
		return true
	})
	if len(table) == 0 {
		return nil, fmt.Errorf("reading the GODEBUG table: no entries found in %s", file)
	}
	return table, nil
}

// ---------------------------------------------------------------------------
// link

func (r *runner) cmdLink(args []string) error {
	fs := newFlagSet("link")
	var pf pkgFlags
	pf.register(fs, false)
	out := fs.String("o", "", "output binary")
	ldflags := fs.String("ldflags", "", "extra linker flags, space-separated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o is required")
	}
	pi, err := r.openPackage(&pf)
	if err != nil {
		return err
	}
	if pi.bp.Name != "main" {
		return fmt.Errorf("%s: package %s is package %s, not a main package", pi.dirArg, pi.importPath, pi.bp.Name)
	}
	if len(pi.bp.GoFiles) == 0 {
		return fmt.Errorf("%s: package %s has no non-test Go files", pi.dirArg, pi.importPath)
	}
	deps, err := r.loadDeps(pf.deps)
	if err != nil {
		return err
	}
	importcfg, err := r.directImports(pi, pi.importPath, pi.bp.Imports, deps, nil)
	if err != nil {
		return err
	}
	roots := map[string]string{"runtime": "the linker"}
	for p := range importcfg {
		roots[p] = pi.importPath
	}
	if _, err := linkClosure(deps, roots, nil); err != nil {
		return fmt.Errorf("%s: %w", pi.dirArg, err)
	}
	absOut, err := absPath(*out)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gobuild-link-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	mainArch := filepath.Join(tmp, "main.a")
	err = r.compile(&compileUnit{
		importPath: "main", srcDir: pi.dir, trimTo: pi.importPath,
		files: pi.abs(pi.bp.GoFiles), importcfg: importcfg, embed: pi.bp.EmbedPatterns,
		lang: pi.langFlag(), out: mainArch, tmp: tmp,
	})
	if err != nil {
		return err
	}
	godebug, err := r.defaultGODEBUG(pi, pi.bp.Directives)
	if err != nil {
		return err
	}
	archives, _ := r.archivesOf(deps, false)
	archives["main"] = mainArch
	if err := os.MkdirAll(filepath.Dir(absOut), 0o777); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	tmpOut := absOut + ".tmp"
	defer os.Remove(tmpOut)
	err = r.link(&linkSpec{
		out: tmpOut, mainArch: mainArch, archives: archives,
		modinfo: r.buildInfo(pi, pi.importPath, pf.tags, godebug), godebug: godebug, ldflags: strings.Fields(*ldflags),
		tmp: tmp, workingDir: pi.dir,
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(tmpOut, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", *out, err)
	}
	if err := os.Rename(tmpOut, absOut); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// test

type testFunc struct {
	Package   string // _test or _xtest
	Name      string
	Output    string
	Unordered bool
}

type testFuncs struct {
	Tests       []testFunc
	Benchmarks  []testFunc
	FuzzTargets []testFunc
	Examples    []testFunc
	TestMain    *testFunc
	ImportPath  string
	ModulePath  string
	ImportTest  bool
	NeedTest    bool
	ImportXtest bool
	NeedXtest   bool
}

// load finds tests, benchmarks, fuzz targets, examples and TestMain in one
// test file, following cmd/go/internal/load's testFuncs.load.
func (t *testFuncs) load(fset *token.FileSet, filename, pkg string, doImport, seen *bool) error {
	f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("parsing test file: %w", err)
	}
	for _, d := range f.Decls {
		n, ok := d.(*ast.FuncDecl)
		if !ok || n.Recv != nil {
			continue
		}
		name := n.Name.String()
		switch {
		case name == "TestMain":
			if isTestFunc(n, "T") {
				t.Tests = append(t.Tests, testFunc{pkg, name, "", false})
				*doImport, *seen = true, true
				continue
			}
			if err := checkTestFunc(fset, n, "M"); err != nil {
				return err
			}
			if t.TestMain != nil {
				return errors.New("multiple definitions of TestMain")
			}
			t.TestMain = &testFunc{pkg, name, "", false}
			*doImport, *seen = true, true
		case isTest(name, "Test"):
			if err := checkTestFunc(fset, n, "T"); err != nil {
				return err
			}
			t.Tests = append(t.Tests, testFunc{pkg, name, "", false})
			*doImport, *seen = true, true
		case isTest(name, "Benchmark"):
			if err := checkTestFunc(fset, n, "B"); err != nil {
				return err
			}
			t.Benchmarks = append(t.Benchmarks, testFunc{pkg, name, "", false})
			*doImport, *seen = true, true
		case isTest(name, "Fuzz"):
			if err := checkTestFunc(fset, n, "F"); err != nil {
				return err
			}
			t.FuzzTargets = append(t.FuzzTargets, testFunc{pkg, name, "", false})
			*doImport, *seen = true, true
		}
	}
	ex := doc.Examples(f)
	sort.Slice(ex, func(i, j int) bool { return ex[i].Order < ex[j].Order })
	for _, e := range ex {
		*doImport = true // import the test file whether or not the example runs
		if e.Output == "" && !e.EmptyOutput {
			continue // examples without output comments are compiled, not run
		}
		t.Examples = append(t.Examples, testFunc{pkg, "Example" + e.Name, e.Output, e.Unordered})
		*seen = true
	}
	return nil
}

func isTestFunc(fn *ast.FuncDecl, arg string) bool {
	if fn.Type.Results != nil && len(fn.Type.Results.List) > 0 ||
		fn.Type.Params.List == nil ||
		len(fn.Type.Params.List) != 1 ||
		len(fn.Type.Params.List[0].Names) > 1 {
		return false
	}
	ptr, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	if name, ok := ptr.X.(*ast.Ident); ok && name.Name == arg {
		return true
	}
	if sel, ok := ptr.X.(*ast.SelectorExpr); ok && sel.Sel.Name == arg {
		return true
	}
	return false
}

func isTest(name, prefix string) bool {
	if !strings.HasPrefix(name, prefix) {
		return false
	}
	if len(name) == len(prefix) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(name[len(prefix):])
	return !unicode.IsLower(r)
}

func checkTestFunc(fset *token.FileSet, fn *ast.FuncDecl, arg string) error {
	var why string
	if !isTestFunc(fn, arg) {
		why = fmt.Sprintf("must be: func %s(%s *testing.%s)", fn.Name.String(), strings.ToLower(arg), arg)
	}
	if fn.Type.TypeParams.NumFields() > 0 {
		why = "test functions cannot have type parameters"
	}
	if why != "" {
		return fmt.Errorf("%s: wrong signature for %s, %s", fset.Position(fn.Pos()), fn.Name.String(), why)
	}
	return nil
}

// testmainTmpl is the go command's testmain template without coverage.
var testmainTmpl = template.Must(template.New("main").Parse(`
// Code generated by gobuild (like 'go test'). DO NOT EDIT.

package main

import (
	"os"
{{if .TestMain}}
	"reflect"
{{end}}
	"testing"
	"testing/internal/testdeps"

{{if .ImportTest}}
	{{if .NeedTest}}_test{{else}}_{{end}} {{.ImportPath | printf "%q"}}
{{end}}
{{if .ImportXtest}}
	{{if .NeedXtest}}_xtest{{else}}_{{end}} {{.ImportPath | printf "%s_test" | printf "%q"}}
{{end}}
)

var tests = []testing.InternalTest{
{{range .Tests}}
	{"{{.Name}}", {{.Package}}.{{.Name}}},
{{end}}
}

var benchmarks = []testing.InternalBenchmark{
{{range .Benchmarks}}
	{"{{.Name}}", {{.Package}}.{{.Name}}},
{{end}}
}

var fuzzTargets = []testing.InternalFuzzTarget{
{{range .FuzzTargets}}
	{"{{.Name}}", {{.Package}}.{{.Name}}},
{{end}}
}

var examples = []testing.InternalExample{
{{range .Examples}}
	{"{{.Name}}", {{.Package}}.{{.Name}}, {{.Output | printf "%q"}}, {{.Unordered}}},
{{end}}
}

func init() {
	testdeps.ModulePath = {{.ModulePath | printf "%q"}}
	testdeps.ImportPath = {{.ImportPath | printf "%q"}}
}

func main() {
	m := testing.MainStart(testdeps.TestDeps{}, tests, benchmarks, fuzzTargets, examples)
{{with .TestMain}}
	{{.Package}}.{{.Name}}(m)
	os.Exit(int(reflect.ValueOf(m).Elem().FieldByName("exitCode").Int()))
{{else}}
	os.Exit(m.Run())
{{end}}
}
`))

func (r *runner) cmdTest(args []string) error {
	fs := newFlagSet("test")
	var pf pkgFlags
	pf.register(fs, true)
	mode := fs.String("vet", "default", "analyzers: default, all or off")
	timeout := fs.Duration("timeout", 10*time.Minute, "test binary -test.timeout (0 disables)")
	ldflags := fs.String("ldflags", "", "extra linker flags, space-separated")
	// Arguments after "--" go to the test binary; flag stops there itself.
	var testArgs []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, testArgs = args[:i], args[i+1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkVetMode(*mode, true); err != nil {
		return err
	}
	pi, err := r.openPackage(&pf)
	if err != nil {
		return err
	}
	bp := pi.bp
	P := pi.importPath
	if len(bp.TestGoFiles)+len(bp.XTestGoFiles) == 0 {
		fmt.Fprintf(r.stdout, "?   \t%s\t[no test files]\n", P)
		return nil
	}
	deps, err := r.loadDeps(pf.deps)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gobuild-test-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	buildFailed := func(err error) error {
		fmt.Fprintf(r.stderr, "gobuild: %v\n", err)
		fmt.Fprintf(r.stdout, "FAIL\t%s [build failed]\n", P)
		return reportedError{}
	}

	// Find tests, as the go command does, before compiling anything.
	fset := token.NewFileSet()
	funcs := &testFuncs{ImportPath: P}
	if pi.mod != nil {
		funcs.ModulePath = pi.mod.path
	}
	for _, f := range bp.TestGoFiles {
		if err := funcs.load(fset, filepath.Join(pi.dir, f), "_test", &funcs.ImportTest, &funcs.NeedTest); err != nil {
			return buildFailed(err)
		}
	}
	for _, f := range bp.XTestGoFiles {
		if err := funcs.load(fset, filepath.Join(pi.dir, f), "_xtest", &funcs.ImportXtest, &funcs.NeedXtest); err != nil {
			return buildFailed(err)
		}
	}

	// The test variant of P: P's files plus its internal test files.
	hasP := len(bp.GoFiles)+len(bp.TestGoFiles) > 0
	ptestImports := cleanImports(append(slices.Clone(bp.Imports), bp.TestImports...))
	override := map[string]string{} // packages replaced by their test variants
	var ptestFiles []string
	if hasP {
		ptestFiles = pi.abs(append(slices.Clone(bp.GoFiles), bp.TestGoFiles...))
	}

	// Fail closed where go test would recompile dependents of P against
	// its test variant: gobuild links the deps' archives as they are.
	testRoots := map[string]string{"runtime": "the linker"}
	for _, p := range testmainImports {
		testRoots[p] = "the testmain"
	}
	for _, p := range ptestImports {
		testRoots[p] = P
	}
	for _, p := range cleanImports(bp.XTestImports) {
		testRoots[p] = P + "_test"
	}
	closure, err := linkClosure(deps, testRoots, map[string]bool{P: true, P + "_test": true})
	if err != nil {
		return buildFailed(fmt.Errorf("%s: test of %s: %w", pi.dirArg, P, err))
	}
	if len(bp.TestGoFiles) > 0 {
		for _, q := range closure {
			if slices.Contains(deps.pkgs[q].Imports, P) {
				return buildFailed(fmt.Errorf("test of %s: package %s imports %s and would link against %s without its test files; gobuild does not recompile dependents for tests (use builder = \"go\")", P, q, P, P))
			}
		}
	}

	if hasP {
		if _, ok := deps.pkgs[P]; ok && len(bp.TestGoFiles) == 0 {
			// Reuse the library's archive: the deps' config already
			// names its export data (for compiles) and object (for the link).
		} else {
			importcfg, err := r.directImports(pi, P, ptestImports, deps, nil)
			if err != nil {
				return buildFailed(err)
			}
			out := filepath.Join(tmp, "ptest.a")
			err = r.compile(&compileUnit{
				importPath: P, srcDir: pi.dir, trimTo: P, files: ptestFiles, importcfg: importcfg,
				embed: append(slices.Clone(bp.EmbedPatterns), bp.TestEmbedPatterns...),
				lang:  pi.langFlag(), out: out, tmp: tmp,
			})
			if err != nil {
				return buildFailed(err)
			}
			override[P] = out
		}
	}

	// Vet runs concurrently with building the rest of the test binary;
	// its verdict is awaited before any test runs.
	vetCtx, cancelVet := context.WithCancel(r.ctx)
	vr := &runner{ctx: vetCtx, stdout: r.stdout, stderr: r.stderr, root: r.root, env: r.env}
	archives, std := r.archivesOf(deps, true)
	type vetResult struct {
		id  string
		out []byte
		err error
	}
	var vetResults []vetResult
	var vetWG sync.WaitGroup
	var vetMu sync.Mutex
	// On every return, stop vet and wait, so no vet still reads the
	// temporary directory when it is removed.
	defer func() {
		cancelVet()
		vetWG.Wait()
	}()
	startVet := func(u *vetUnit) {
		vetWG.Add(1)
		go func() {
			defer vetWG.Done()
			out, err := vr.vet(pi, u, *mode, tmp)
			vetMu.Lock()
			vetResults = append(vetResults, vetResult{u.id, out, err})
			vetMu.Unlock()
		}()
	}
	withOverride := func(m map[string]string, drop string) map[string]string {
		c := maps.Clone(m)
		maps.Copy(c, override)
		delete(c, drop)
		return c
	}
	if *mode != "off" && hasP {
		startVet(&vetUnit{id: P + " [" + P + ".test]", importPath: P, files: ptestFiles,
			imports: ptestImports, archives: withOverride(archives, P), std: std})
	}

	var xtestArch string
	if len(bp.XTestGoFiles) > 0 {
		importcfg, err := r.directImports(pi, P+"_test", bp.XTestImports, deps, override)
		if err != nil {
			return buildFailed(err)
		}
		if *mode != "off" {
			startVet(&vetUnit{id: P + "_test [" + P + ".test]", importPath: P + "_test", files: pi.abs(bp.XTestGoFiles),
				imports: bp.XTestImports, archives: withOverride(archives, ""), std: std})
		}
		xtestArch = filepath.Join(tmp, "xtest.a")
		err = r.compile(&compileUnit{
			importPath: P + "_test", srcDir: pi.dir, trimTo: P, files: pi.abs(bp.XTestGoFiles), importcfg: importcfg,
			embed: bp.XTestEmbedPatterns, lang: pi.langFlag(), out: xtestArch, tmp: tmp,
		})
		if err != nil {
			return buildFailed(err)
		}
	}

	// The generated testmain, compiled as package main.
	var src bytes.Buffer
	if err := testmainTmpl.Execute(&src, funcs); err != nil {
		return fmt.Errorf("generating testmain: %w", err)
	}
	mainDir := filepath.Join(tmp, "testmain")
	if err := os.Mkdir(mainDir, 0o777); err != nil {
		return fmt.Errorf("creating testmain dir: %w", err)
	}
	mainFile := filepath.Join(mainDir, "_testmain.go")
	if err := os.WriteFile(mainFile, src.Bytes(), 0o666); err != nil {
		return fmt.Errorf("writing testmain: %w", err)
	}
	mainImports := slices.Clone(testmainImports)
	if funcs.ImportTest {
		mainImports = append(mainImports, P)
	}
	mainOverride := maps.Clone(override)
	if funcs.ImportXtest {
		mainImports = append(mainImports, P+"_test")
		mainOverride[P+"_test"] = xtestArch
	}
	mainCfg, err := r.directImports(pi, "main (testmain)", mainImports, deps, mainOverride)
	if err != nil {
		return buildFailed(err)
	}
	mainArch := filepath.Join(tmp, "main.a")
	err = r.compile(&compileUnit{
		importPath: "main", srcDir: mainDir, files: []string{mainFile}, importcfg: mainCfg,
		out: mainArch, tmp: tmp,
	})
	if err != nil {
		return buildFailed(err)
	}

	linkObjs, _ := r.archivesOf(deps, false)
	linkArchives := withOverride(linkObjs, "")
	if xtestArch != "" {
		linkArchives[P+"_test"] = xtestArch
	}
	linkArchives["main"] = mainArch
	godebug, err := r.defaultGODEBUG(pi, bp.Directives, bp.TestDirectives, bp.XTestDirectives)
	if err != nil {
		return buildFailed(err)
	}
	bin := filepath.Join(tmp, path.Base(P)+".test")
	err = r.link(&linkSpec{
		out: bin, mainArch: mainArch, archives: linkArchives, ldflags: strings.Fields(*ldflags),
		modinfo: r.buildInfo(pi, P+".test", pf.tags, godebug), godebug: godebug,
		omitDebug: true, // like go test without -c: smaller, faster link
		tmp:       tmp, workingDir: pi.dir,
	})
	if err != nil {
		cancelVet()
		vetWG.Wait()
		return buildFailed(err)
	}

	vetWG.Wait()
	// Report in a fixed order whichever vet finished first.
	slices.SortFunc(vetResults, func(a, b vetResult) int { return strings.Compare(a.id, b.id) })
	vetFailed := false
	for _, v := range vetResults {
		if v.err != nil {
			vetFailed = true
			fmt.Fprintf(r.stderr, "# %s\n%s", P, v.out)
		} else {
			r.stderr.Write(v.out)
		}
	}
	if vetFailed {
		fmt.Fprintf(r.stdout, "FAIL\t%s [build failed]\n", P)
		return reportedError{}
	}

	// Run the binary; go test also kills it a minute after -test.timeout
	// in case the binary's own timeout handling is stuck.
	runCtx := r.ctx
	if *timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(r.ctx, *timeout+time.Minute)
		defer cancel()
	}
	targs := append([]string{"-test.paniconexit0", "-test.timeout=" + timeout.String()}, testArgs...)
	cmd := exec.CommandContext(runCtx, bin, targs...)
	cmd.Dir = pi.dir
	cmd.Stdout = r.stdout
	cmd.Stderr = r.stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start).Seconds()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(r.stderr, "gobuild: running test binary: %v\n", err)
		} else if runCtx.Err() != nil && r.ctx.Err() == nil {
			fmt.Fprintf(r.stderr, "gobuild: test binary killed after %v\n", *timeout+time.Minute)
		}
		fmt.Fprintf(r.stdout, "FAIL\t%s\t%.3fs\n", P, elapsed)
		return reportedError{}
	}
	fmt.Fprintf(r.stdout, "ok  \t%s\t%.3fs\n", P, elapsed)
	return nil
}
