package builtins

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// KV is a small persistent key-value store; the package cache lives in it.
// *cas.DB satisfies it. GetKV returns nil, nil for a missing key.
type KV interface {
	GetKV(ctx context.Context, ns, key string) ([]byte, error)
	PutKV(ctx context.Context, ns, key string, val []byte) error
}

// Digester returns the content digest of a file. *cas.StatCache satisfies
// it, answering from its stat cache when the file did not change.
type Digester interface {
	Digest(absPath string) (cas.FileInfo, error)
}

// Evaluator evaluates the BUILD.mc files of one workspace. It loads each
// .star module at most once and, with a KV, skips Starlark for packages
// whose inputs did not change since they were last evaluated. It is safe
// for concurrent use.
type Evaluator struct {
	ws     *graph.Workspace
	kv     KV
	dig    Digester
	tree   *lang.SourceTree
	loader *lang.Loader

	outMu sync.Mutex
	out   io.Writer // print() output

	// The package cache: the workspace's snapshot, read once and written
	// back after Packages when it changed (see pkgcache.go).
	snapOnce sync.Once
	stdlib   string // lang.StdlibDigest(), when there is a package cache
	snapMu   sync.Mutex
	records  map[string]*pkgRecord
	dirty    bool
	known    map[string]bool // every package, once FindPackages("") ran
	digests  sync.Map        // workspace-relative path -> digestResult

	// onEval, when set (by tests), is called each time a BUILD.mc is run.
	onEval func(pkg string)
}

// NewEvaluator returns an Evaluator for ws. kv may be nil (no package
// cache); dig may be nil (files are read and hashed).
func NewEvaluator(ws *graph.Workspace, kv KV, dig Digester) *Evaluator {
	if dig == nil {
		dig = readDigester{}
	}
	e := &Evaluator{ws: ws, kv: kv, dig: dig, tree: lang.NewSourceTree(ws.Root, ws.Ignore), out: os.Stderr}
	if st, ok := dig.(interface {
		Stat(path string) (fs.FileInfo, error)
	}); ok {
		e.tree.StatSourcesWith(st.Stat) // cas.StatCache: one stat(2) per source for link and digest
	}
	predeclared := starlark.StringDict{
		"stage":     starlark.NewBuiltin("stage", stageBuiltin),
		"filegroup": starlark.NewBuiltin("filegroup", filegroupBuiltin),
		"image":     starlark.NewBuiltin("image", imageBuiltin),
		"glob":      starlark.NewBuiltin("glob", globBuiltin),
		"struct":    starlark.NewBuiltin("struct", starlarkstruct.Make),
	}
	e.loader = lang.NewLoader(ws.Root, predeclared, e.print)
	if kv != nil {
		e.stdlib = lang.StdlibDigest()
	}
	return e
}

// SetPrintOutput sends the output of Starlark's print() to w (default
// os.Stderr). Call it before evaluating anything.
func (e *Evaluator) SetPrintOutput(w io.Writer) {
	e.outMu.Lock()
	e.out = w
	e.outMu.Unlock()
}

func (e *Evaluator) print(pos graph.Pos, msg string) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	fmt.Fprintf(e.out, "DEBUG: %s: %s\n", pos, msg)
}

// FindPackages returns every package at or below under ("" for the whole
// workspace), sorted. It never enters ignored paths, mc-out or hidden
// directories.
func (e *Evaluator) FindPackages(ctx context.Context, under string) ([]string, error) {
	pkgs, err := e.tree.FindPackages(ctx, under)
	if err == nil && under == "" && e.kv != nil {
		// The whole set is known: the snapshot can forget removed packages.
		known := make(map[string]bool, len(pkgs))
		for _, p := range pkgs {
			known[p] = true
		}
		e.snapMu.Lock()
		e.known = known
		e.snapMu.Unlock()
	}
	return pkgs, err
}

// IsPackage reports whether pkg is a directory holding a BUILD.mc that is
// not ignored or hidden.
func (e *Evaluator) IsPackage(pkg string) bool { return e.tree.IsPackage(pkg) }

// IsSourceFile reports whether pkg/name is a regular file of the workspace
// that is not ignored.
func (e *Evaluator) IsSourceFile(pkg, name string) bool { return e.tree.IsSourceFile(pkg, name) }

// Packages evaluates pkgs in parallel (at most GOMAXPROCS at a time) and
// returns them in the same order. On failure it returns the error of the
// first failing package in pkgs order: a *lang.Error for mistakes in the
// files. The packages are shared with the package cache: callers must not
// modify them.
func (e *Evaluator) Packages(ctx context.Context, pkgs []string) ([]*graph.Package, error) {
	out := make([]*graph.Package, len(pkgs))
	errs := make([]error, len(pkgs))
	first := map[string]int{}
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, p := range pkgs {
		if _, dup := first[p]; dup {
			continue
		}
		first[p] = i
		g.Go(func() error {
			out[i], errs[i] = e.pkg(ctx, p)
			return nil
		})
	}
	_ = g.Wait() // the goroutines report through errs
	e.saveSnapshot(ctx)
	for i, p := range pkgs {
		if j := first[p]; j != i {
			out[i], errs[i] = out[j], errs[j]
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	return out, nil
}

// Forget makes the Evaluator read files (workspace-relative) again: their
// memoized digests and the .star modules that read them are dropped, so
// that the next Packages call finds the packages that depend on them
// changed and evaluates just those again. mc watch calls it with the files
// it saw change, between evaluations (never during one).
func (e *Evaluator) Forget(files []string) {
	for _, f := range files {
		e.digests.Delete(f)
	}
	e.loader.Forget(files)
}

// pkg returns package p from the cache or by evaluating its BUILD.mc.
func (e *Evaluator) pkg(ctx context.Context, p string) (_ *graph.Package, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &lang.InternalError{File: path.Join(p, lang.BuildFile), Value: r, Stack: debug.Stack()}
		}
	}()
	file := path.Join(p, lang.BuildFile)
	if !e.tree.IsPackage(p) {
		e.dropRecord(p)
		return nil, &lang.Error{Msg: fmt.Sprintf("no package //%s: %s does not exist (or is ignored)", p, file)}
	}
	if pkg := e.cached(ctx, p); pkg != nil {
		return pkg, nil
	}
	if e.onEval != nil {
		e.onEval(p)
	}
	st := newPkgState(e.tree, p)
	res, err := e.loader.ExecFile(ctx, file, func(t *starlark.Thread) { t.SetLocal(stateKey, st) })
	if err != nil {
		return nil, err
	}
	pkg := &graph.Package{Name: p, File: file, Targets: st.targets, Loads: res.LoadedModules(file)}
	e.store(pkg, res.Files, st)
	return pkg, nil
}

// readDigester hashes files by reading them; used without a stat cache.
type readDigester struct{}

func (readDigester) Digest(absPath string) (cas.FileInfo, error) {
	f, err := os.Open(absPath)
	if err != nil {
		return cas.FileInfo{}, err
	}
	defer f.Close()
	d, n, err := cas.FromReader(f)
	if err != nil {
		return cas.FileInfo{}, fmt.Errorf("digest %s: %w", absPath, err)
	}
	return cas.FileInfo{Digest: d, Size: n}, nil
}
