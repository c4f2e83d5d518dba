package lang

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/stdlib"
)

// StdlibPrefix starts the name of a module of mc's standard library
// ("@mc//go.star"): embedded in the binary, not read from the workspace.
const StdlibPrefix = "@mc//"

// StdlibDigest identifies the standard library built into this binary.
// The modules are not workspace files, so a cache of evaluated packages
// must be keyed on it instead of on their digests.
func StdlibDigest() string { return stdlib.Digest() }

// Loader runs files whose load() statements name .star files of the
// workspace. Each .star module is executed at most once per Loader, even
// when many goroutines ask for it at the same time, and its globals are
// frozen so that every package can share them. Load cycles are reported
// instead of deadlocking, also when the goroutines involved differ.
type Loader struct {
	root        string
	predeclared starlark.StringDict
	print       PrintFunc

	mu      sync.Mutex
	modules map[string]*module // by workspace-relative path
}

// module is one .star file, loaded or being loaded.
type module struct {
	file  string
	ready chan struct{} // closed once globals/files/err are set
	// owner is the load chain executing the module, nil once ready.
	owner atomic.Pointer[loadChain]

	globals starlark.StringDict
	files   map[string]cas.Digest
	err     error
}

// loadChain is one logical thread of loading: a file being executed and the
// modules it is executing on behalf of it, nested. It is a node of the
// waits-for graph used to detect cycles across goroutines (the technique of
// starlark-go's ExampleThread_Load_parallel): a chain owns the modules on
// its stack and waits for at most one module owned by another chain.
type loadChain struct {
	waitsFor atomic.Pointer[module]

	mu    sync.Mutex
	stack []*module
}

// NewLoader returns a Loader for the workspace at root. predeclared is the
// environment of every file it runs; print receives print() output.
func NewLoader(root string, predeclared starlark.StringDict, print PrintFunc) *Loader {
	return &Loader{root: root, predeclared: predeclared, print: print, modules: map[string]*module{}}
}

// Result is what ExecFile produced.
type Result struct {
	Globals starlark.StringDict
	// Files maps the executed file and every .star file it loaded,
	// transitively, to the digest of the bytes that were evaluated. These
	// are the files the result depends on.
	Files map[string]cas.Digest
}

// LoadedModules returns the .star files among Files, sorted.
func (r *Result) LoadedModules(self string) []string {
	var out []string
	for f := range r.Files {
		if f != self {
			out = append(out, f)
		}
	}
	sortStrings(out)
	return out
}

// ExecFile reads file (workspace-relative) and runs it on a new thread.
// setup, when not nil, prepares the thread before it runs (thread locals).
func (l *Loader) ExecFile(ctx context.Context, file string, setup func(*starlark.Thread)) (*Result, error) {
	src, err := os.ReadFile(filepath.Join(l.root, filepath.FromSlash(file)))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	files := map[string]cas.Digest{file: cas.FromBytes(src)}
	thread := NewThread(file, l.print)
	l.bindLoad(ctx, thread, new(loadChain), file, files)
	if setup != nil {
		setup(thread)
	}
	globals, err := Exec(ctx, thread, file, src, l.predeclared)
	if err != nil {
		return nil, err
	}
	return &Result{Globals: globals, Files: files}, nil
}

// ResolveLoad returns the workspace-relative path of the .star file that a
// load() in file names: "//tools/go.star" and "//tools:go.star" are
// workspace-absolute; ":defs.star" and "defs.star" are relative to the
// directory of file (the package, for a BUILD.mc). "@mc//go.star" names a
// module of mc's standard library, which loads only its own modules.
func ResolveLoad(spec, from string) (string, error) {
	if name, ok := strings.CutPrefix(spec, StdlibPrefix); ok {
		return stdlibModule(spec, name)
	}
	if strings.HasPrefix(from, StdlibPrefix) {
		if strings.HasPrefix(spec, "//") || strings.HasPrefix(spec, "@") {
			return "", fmt.Errorf("a module of mc's standard library can load only its own modules (@mc//NAME.star)")
		}
		return stdlibModule(spec, strings.TrimPrefix(spec, ":"))
	}
	dir := path.Dir(from)
	if dir == "." {
		dir = ""
	}
	l, err := graph.ParseLabel(spec, dir)
	if err != nil {
		return "", err
	}
	file := path.Join(l.Pkg, l.Name)
	if strings.HasPrefix(spec, "//") && !strings.Contains(spec, ":") {
		file = l.Pkg // "//tools/go.star" names the file itself
	}
	if strings.HasSuffix(file, "/") || !strings.HasSuffix(file, ".star") {
		return "", fmt.Errorf("only .star files can be loaded")
	}
	return file, nil
}

func stdlibModule(spec, name string) (string, error) {
	name = strings.TrimPrefix(name, ":")
	if name == "" || strings.ContainsAny(name, "/:") || !strings.HasSuffix(name, ".star") {
		return "", fmt.Errorf("invalid label %q: mc's standard library is loaded as @mc//NAME.star (one of %s)", spec, strings.Join(stdlib.Names(), ", "))
	}
	return StdlibPrefix + name, nil
}

// bindLoad makes load() on thread (running file, within chain) resolve
// through l, adding every module's files to files.
func (l *Loader) bindLoad(ctx context.Context, thread *starlark.Thread, chain *loadChain, file string, files map[string]cas.Digest) {
	thread.Load = func(t *starlark.Thread, spec string) (starlark.StringDict, error) {
		target, err := ResolveLoad(spec, file)
		if err != nil {
			return nil, loadError(t, spec, err)
		}
		m, err := l.get(ctx, chain, target)
		if err != nil {
			return nil, loadError(t, spec, err)
		}
		for f, d := range m.files {
			files[f] = d
		}
		return m.globals, nil
	}
}

// loadError positions a failed load at the load statement: an error inside
// the module keeps its own position and gains the load site in its
// backtrace; anything else becomes "cannot load ...".
func loadError(t *starlark.Thread, spec string, err error) error {
	var ie *InternalError
	if errors.As(err, &ie) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	site := Stack(t)
	var le *Error
	if errors.As(err, &le) {
		inner := le.Backtrace
		if len(inner) == 0 {
			inner = []graph.Pos{le.Pos}
		}
		return &Error{Pos: le.Pos, Msg: le.Msg, Backtrace: append(append([]graph.Pos{}, site...), inner...)}
	}
	e := &Error{Backtrace: site}
	if len(site) > 0 {
		e.Pos = site[len(site)-1]
	}
	var ce *cycleError
	switch {
	case errors.As(err, &ce):
		e.Msg = ce.Error()
	case errors.Is(err, fs.ErrNotExist):
		e.Msg = fmt.Sprintf("cannot load %q: file does not exist", spec)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			e.Msg = fmt.Sprintf("cannot load %q: %s does not exist", spec, pe.Path)
		}
	default:
		e.Msg = fmt.Sprintf("cannot load %q: %v", spec, err)
	}
	return e
}

// cycleError is a load() that would close a cycle.
type cycleError struct{ files []string }

func (e *cycleError) Error() string {
	return "load cycle: //" + strings.Join(e.files, " -> //")
}

// Forget drops every loaded module that read one of files
// (workspace-relative), itself or through its loads, and every module
// that failed, so that the next load runs them again. A long-running
// command (mc watch) calls it when files changed; it must not run while
// files are being loaded.
func (l *Loader) Forget(files []string) {
	if len(files) == 0 {
		return
	}
	changed := make(map[string]bool, len(files))
	for _, f := range files {
		changed[f] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, m := range l.modules {
		select {
		case <-m.ready:
		default:
			continue // being loaded: not ours to drop
		}
		drop := m.err != nil || changed[name]
		for f := range m.files {
			drop = drop || changed[f]
		}
		if drop {
			delete(l.modules, name)
		}
	}
}

// get returns module file, executing it if no chain has started it yet and
// waiting for it otherwise.
func (l *Loader) get(ctx context.Context, chain *loadChain, file string) (*module, error) {
	l.mu.Lock()
	m := l.modules[file]
	if m != nil {
		l.mu.Unlock()
		if cycle := findCycle(m, chain); cycle != nil {
			return nil, &cycleError{cycle}
		}
		chain.waitsFor.Store(m)
		defer chain.waitsFor.Store(nil)
		select {
		case <-m.ready:
			return m, m.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m = &module{file: file, ready: make(chan struct{})}
	l.modules[file] = m
	l.mu.Unlock()

	m.owner.Store(chain)
	chain.push(m)
	defer func() {
		chain.pop()
		m.owner.Store(nil)
		close(m.ready)
	}()
	m.globals, m.files, m.err = l.execModule(ctx, chain, file)
	return m, m.err
}

func (l *Loader) execModule(ctx context.Context, chain *loadChain, file string) (_ starlark.StringDict, _ map[string]cas.Digest, err error) {
	defer func() {
		// Exec recovers panics of the evaluation itself; this catches the rest
		// so that waiters are never left hanging on an unclosed module.
		if r := recover(); r != nil {
			err = &InternalError{File: file, Value: r}
		}
	}()
	files := map[string]cas.Digest{}
	var src []byte
	if name, ok := strings.CutPrefix(file, StdlibPrefix); ok {
		// Not a workspace file: it changes only with mc itself, which
		// StdlibDigest accounts for, so it stays out of files.
		if src, err = stdlib.Read(name); err != nil {
			return nil, nil, err
		}
	} else {
		abs := filepath.Join(l.root, filepath.FromSlash(file))
		src, err = os.ReadFile(abs)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				pe.Path = file // users see workspace-relative paths
			}
			return nil, nil, err
		}
		files[file] = cas.FromBytes(src)
	}
	thread := NewThread(file, l.print)
	l.bindLoad(ctx, thread, chain, file, files)
	globals, err := Exec(ctx, thread, file, src, l.predeclared)
	if err != nil {
		return nil, nil, err
	}
	globals.Freeze()
	return globals, files, nil
}

func (c *loadChain) push(m *module) {
	c.mu.Lock()
	c.stack = append(c.stack, m)
	c.mu.Unlock()
}

func (c *loadChain) pop() {
	c.mu.Lock()
	c.stack = c.stack[:len(c.stack)-1]
	c.mu.Unlock()
}

// from returns the files of the modules c is executing, from m to the
// innermost.
func (c *loadChain) from(m *module) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.stack {
		if x == m {
			out := make([]string, 0, len(c.stack)-i)
			for _, y := range c.stack[i:] {
				out = append(out, y.file)
			}
			return out
		}
	}
	return nil
}

// findCycle reports whether me waiting for m would deadlock: whether the
// waits-for graph leads from m back to me. It returns the cycle as the list
// of files, starting and ending with m's, or nil.
func findCycle(m *module, me *loadChain) []string {
	var files []string
	// The bound only guards against a graph mutating under our feet; a
	// real chain of waits is never longer than the number of modules.
	for e, n := m, 0; e != nil && n < 1<<16; n++ {
		owner := e.owner.Load()
		if owner == nil {
			return nil
		}
		files = append(files, owner.from(e)...)
		if owner == me {
			return append(files, m.file)
		}
		e = owner.waitsFor.Load()
	}
	return nil
}
