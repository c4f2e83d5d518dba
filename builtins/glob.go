package builtins

import (
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/lang"
)

// globRecord is one glob() call of a package evaluation and its result. The
// package cache re-runs it: a cached package is only valid while every
// glob still yields the same files.
type globRecord struct {
	Include []string
	Exclude []string
	Result  []string
	Stamps  []lang.DirStamp // nil: re-run the glob to validate
}

// glob(include, exclude = [], allow_empty = False) returns the package's
// files matching include and not exclude, sorted (see lang.SourceTree.Glob).
func globBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "glob"
	var (
		include, exclude stringList
		allowEmpty       bool
	)
	if err := checkKeywords(fn, kwargs, []string{"include", "exclude", "allow_empty"}); err != "" {
		return nil, lang.ThreadErrorf(thread, "%s", err)
	}
	if err := starlark.UnpackArgs(fn, args, kwargs, "include", &include, "exclude??", &exclude, "allow_empty??", &allowEmpty); err != nil {
		return nil, lang.ThreadErrorf(thread, "%s", err)
	}
	st, err := currentPackage(thread, fn)
	if err != nil {
		return nil, err
	}
	files, stamps, err := st.tree.GlobStamped(st.pkg, include, exclude)
	if err != nil {
		return nil, lang.ThreadErrorf(thread, "%s: %v", fn, err)
	}
	if len(files) == 0 && !allowEmpty {
		what := quoteList(include)
		if len(exclude) > 0 {
			what += " minus " + quoteList(exclude)
		}
		return nil, lang.ThreadErrorf(thread, "%s: %s matched no files (pass allow_empty = True if that is expected)", fn, what)
	}
	st.globs = append(st.globs, globRecord{Include: slices.Clone(include), Exclude: slices.Clone(exclude), Result: files, Stamps: stamps})
	vals := make([]starlark.Value, len(files))
	for i, f := range files {
		vals[i] = starlark.String(f)
	}
	return starlark.NewList(vals), nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = starlark.String(s).String()
	}
	return "[" + strings.Join(q, ", ") + "]"
}
