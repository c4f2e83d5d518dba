// Package watch is the logic of `mc watch`: it turns file system events
// into debounced batches of changed files (Watcher, Debouncer), decides
// what a batch means for an evaluated workspace — which packages to
// evaluate again, which stages read the changed files (Index, Plan) — and
// which stages of a new action graph can keep the result of the last build
// because nothing they depend on changed (Unaffected). Run is the loop
// over these and package pipeline: evaluate, build, and rebuild what each
// batch affects; cmd/mc parses the flags and maps Run's errors to exit
// codes.
package watch
