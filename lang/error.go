package lang

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/mc-build/mc/graph"
)

// Error is a mistake in a WORKSPACE.mc, BUILD.mc or .star file, reported at
// a workspace-relative position. main maps it to exit status 2.
type Error struct {
	Pos graph.Pos
	Msg string
	// Backtrace is the Starlark call stack that led to the error, outermost
	// first (a load chain counts as calls); empty when there was no call
	// (syntax errors in the file itself).
	Backtrace []graph.Pos
}

func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Traceback renders the error with its backtrace, one frame per line, for
// a verbose report. It is Error() alone when there is nothing to add.
func (e *Error) Traceback() string {
	if len(e.Backtrace) < 2 {
		return e.Error()
	}
	var b strings.Builder
	b.WriteString(e.Error())
	b.WriteString("\nTraceback (outermost first):")
	for _, p := range e.Backtrace {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Errorf returns an *Error at pos.
func Errorf(pos graph.Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// ThreadErrorf returns an *Error for a mistake found by a builtin: it is
// reported where the user sees the call, the outermost frame (for a macro,
// the macro's call in BUILD.mc), with the whole stack as its backtrace.
func ThreadErrorf(thread *starlark.Thread, format string, args ...any) *Error {
	stack := Stack(thread)
	e := &Error{Msg: fmt.Sprintf(format, args...), Backtrace: stack}
	if len(stack) > 0 {
		e.Pos = stack[0]
	}
	return e
}

// InternalError is a Go panic recovered while evaluating a file: a bug in
// mc, not in the user's files.
type InternalError struct {
	File  string
	Value any
	Stack []byte // the goroutine's stack at the panic
}

func (e *InternalError) Error() string {
	return fmt.Sprintf("internal error (mc bug) while evaluating %s: %v", e.File, e.Value)
}

// Stack returns the positions of the Starlark frames of thread's call stack,
// outermost first; the innermost is the current point of execution (inside
// a builtin, the position of the builtin's call). Frames of Go builtins are
// left out.
func Stack(thread *starlark.Thread) []graph.Pos {
	return framePositions(thread.CallStack())
}

func framePositions(cs starlark.CallStack) []graph.Pos {
	out := make([]graph.Pos, 0, len(cs))
	for _, fr := range cs {
		if !fr.Pos.IsValid() || fr.Pos.Filename() == "<builtin>" {
			continue
		}
		out = append(out, position(fr.Pos))
	}
	return out
}

// position converts a Starlark position. mc names files by their
// workspace-relative path when it hands them to Starlark, so the file name
// is already what the user should see.
func position(p syntax.Position) graph.Pos {
	return graph.Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// FromStarlark converts an error returned by go.starlark.net into an *Error
// with a position: a syntax or resolver error at its own position, an
// evaluation error at its innermost Starlark frame, and an *Error raised by
// a builtin or a load as it is. Other errors are returned unchanged.
func FromStarlark(err error) error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return le
	}
	var ie *InternalError
	if errors.As(err, &ie) {
		return ie
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return &Error{Pos: position(se.Pos), Msg: se.Msg}
	}
	var sep *syntax.Error
	if errors.As(err, &sep) {
		return &Error{Pos: position(sep.Pos), Msg: sep.Msg}
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) && len(rl) > 0 {
		return &Error{Pos: position(rl[0].Pos), Msg: rl[0].Msg}
	}
	var re resolve.Error
	if errors.As(err, &re) {
		return &Error{Pos: position(re.Pos), Msg: re.Msg}
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		stack := framePositions(callerOfBadCall(ee))
		e := &Error{Msg: ee.Msg, Backtrace: stack}
		if len(stack) > 0 {
			e.Pos = stack[len(stack)-1]
		}
		// A mistake inside mc's standard library is most often in the
		// arguments the user passed: name the user's line too.
		if strings.HasPrefix(e.Pos.File, StdlibPrefix) {
			for i := len(stack) - 1; i >= 0; i-- {
				if !strings.HasPrefix(stack[i].File, StdlibPrefix) {
					e.Msg += " (in a macro called at " + stack[i].String() + ")"
					break
				}
			}
		}
		return e
	}
	return err
}

// callerOfBadCall drops the innermost frame of an error about the arguments
// of a call to a Starlark function: go.starlark.net reports it inside the
// callee, before its first statement, but the mistake is in the call.
func callerOfBadCall(ee *starlark.EvalError) starlark.CallStack {
	cs := ee.CallStack
	n := len(cs)
	if n < 2 || !strings.HasPrefix(ee.Msg, "function "+cs[n-1].Name+" ") {
		return cs
	}
	if strings.Contains(ee.Msg, " argument") || strings.Contains(ee.Msg, " parameter ") {
		return cs[:n-1]
	}
	return cs
}
