package lang

import (
	"context"
	"fmt"
	"runtime/debug"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/mc-build/mc/graph"
)

// Dialect returns the Starlark options of every mc file (SPEC §3): def,
// lambda and load; set(); no while, no top-level if/for, no reassignment
// of globals, no recursion.
func Dialect() *syntax.FileOptions {
	return &syntax.FileOptions{
		Set:             true,
		While:           false,
		TopLevelControl: false,
		GlobalReassign:  false,
		Recursion:       false,
	}
}

// PrintFunc receives the output of Starlark's print(), with the position of
// the print call. nil discards it.
type PrintFunc func(pos graph.Pos, msg string)

// NewThread returns a Starlark thread named name whose print() goes to
// print. Load is left unset: a thread without a Loader cannot load().
func NewThread(name string, print PrintFunc) *starlark.Thread {
	return &starlark.Thread{
		Name: name,
		Print: func(t *starlark.Thread, msg string) {
			if print == nil {
				return
			}
			var pos graph.Pos
			if s := Stack(t); len(s) > 0 {
				pos = s[len(s)-1]
			}
			print(pos, msg)
		},
	}
}

// Exec runs src as file (a workspace-relative name, used in positions) on
// thread in mc's dialect, with predeclared names. Cancelling ctx stops the
// evaluation. Errors come back as *Error (user mistakes), *InternalError
// (a recovered panic: an mc bug) or a wrapped ctx.Err(). The globals are
// not frozen.
func Exec(ctx context.Context, thread *starlark.Thread, file string, src []byte, predeclared starlark.StringDict) (globals starlark.StringDict, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", file, err)
	}
	defer func() {
		if r := recover(); r != nil {
			globals, err = nil, &InternalError{File: file, Value: r, Stack: debug.Stack()}
		}
	}()
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	globals, err = starlark.ExecFileOptions(Dialect(), thread, file, src, predeclared)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("evaluating %s: %w", file, ctx.Err())
		}
		return nil, FromStarlark(err)
	}
	return globals, nil
}
