// Package lang finds the workspace and its packages and runs Starlark files
// (WORKSPACE.mc, BUILD.mc, .star) with go.starlark.net in mc's dialect: it
// owns thread setup, the parallel load cache with cycle detection, glob over
// the source tree, and the mapping of Starlark errors and panics to errors
// with workspace-relative positions. It knows nothing of the builtins that
// record targets (package builtins supplies those as predeclared values).
package lang
