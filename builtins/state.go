package builtins

import (
	"os"
	"path"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// stateKey is the thread-local key of the *pkgState of the BUILD.mc being
// evaluated. Threads that run .star modules have none, which is how the
// builtins refuse to declare targets at the top level of a .star file.
const stateKey = "mc.builtins.package"

// pkgState collects what one BUILD.mc evaluation declares, and what the
// result depended on besides files (for the package cache).
type pkgState struct {
	tree *lang.SourceTree
	pkg  string // package path, "" for the root

	targets []*graph.Target
	byName  map[string]*graph.Target

	globs  []globRecord
	probes map[string]bool // package-relative paths found not to be regular files
}

func newPkgState(tree *lang.SourceTree, pkg string) *pkgState {
	return &pkgState{tree: tree, pkg: pkg, byName: map[string]*graph.Target{}}
}

// currentPackage returns the state of the BUILD.mc that thread evaluates.
func currentPackage(thread *starlark.Thread, fn string) (*pkgState, error) {
	if st, ok := thread.Local(stateKey).(*pkgState); ok {
		return st, nil
	}
	return nil, lang.ThreadErrorf(thread, "%s() can only be called while a BUILD.mc file is evaluated (directly or from a macro it calls), not at the top level of a .star file", fn)
}

// declare records t, declared by the call on thread's stack.
func (st *pkgState) declare(thread *starlark.Thread, t *graph.Target) error {
	stack := lang.Stack(thread)
	if len(stack) > 0 {
		t.Pos = stack[0]
	}
	t.Stack = stack
	t.Label = graph.Label{Pkg: st.pkg, Name: t.Label.Name}
	if prev := st.byName[t.Label.Name]; prev != nil {
		return lang.ThreadErrorf(thread, "%s: duplicate target name %q (first declared at %s)", t.Kind, t.Label.Name, prev.Pos)
	}
	st.byName[t.Label.Name] = t
	st.targets = append(st.targets, t)
	return nil
}

// isSourceFile reports whether the package-relative path rel is a regular
// file. A negative answer is recorded: the evaluation's outcome depended on
// it, so the package cache must check it again.
func (st *pkgState) isSourceFile(rel string) bool {
	if isRegular(filepath.Join(st.tree.Root(), filepath.FromSlash(path.Join(st.pkg, rel)))) {
		return true
	}
	if st.probes == nil {
		st.probes = map[string]bool{}
	}
	st.probes[rel] = true
	return false
}

// isRegular reports whether p is a regular file, following symlinks.
func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
