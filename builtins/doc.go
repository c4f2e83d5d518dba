// Package builtins holds mc's Starlark builtins — workspace() and ec2() for
// WORKSPACE.mc; stage(), filegroup(), image() and glob() for BUILD.mc and
// the .star macros it loads — and the Evaluator that runs BUILD.mc files in
// parallel into plain graph.Package values, with a persistent package cache
// that lets an unchanged package skip Starlark entirely.
//
// Builtins unpack and validate their arguments precisely and report
// mistakes as *lang.Error at the call the user wrote in the BUILD.mc file
// (for a macro, the macro's call), with the whole Starlark stack as the
// backtrace. No Starlark value leaves this package.
package builtins
