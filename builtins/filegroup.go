package builtins

import (
	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// filegroup(name, srcs) names a set of files and targets.
func filegroupBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "filegroup"
	var (
		name string
		srcs stringList
	)
	if err := unpackKeywords(thread, fn, args, kwargs, "name", &name, "srcs??", &srcs); err != nil {
		return nil, err
	}
	st, err := currentPackage(thread, fn)
	if err != nil {
		return nil, err
	}
	if err := checkRuleName(name); err != nil {
		return nil, lang.ThreadErrorf(thread, "%s: name: %v", fn, err)
	}
	t := &graph.Target{Label: graph.Label{Name: name}, Kind: graph.KindFilegroup}
	if t.Srcs, err = parseLabels(srcs, st.pkg); err != nil {
		return nil, lang.ThreadErrorf(thread, "%s: srcs: %v", fn, err)
	}
	if err := st.declare(thread, t); err != nil {
		return nil, err
	}
	return starlark.None, nil
}
