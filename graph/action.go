package graph

// Action is one stage to run: a Target with its inputs resolved to files.
// Filegroups are flattened away; images become actions in a later issue.
type Action struct {
	Target *Target
	// Sources are workspace-relative paths of source files the stage reads,
	// sorted and unique (srcs, and files reached through filegroups).
	Sources []string
	// Inputs are outputs of other actions the stage reads, at their own
	// package paths.
	Inputs []DepInput
	// Deps are the distinct actions named by Inputs; Rdeps the reverse.
	Deps  []*Action
	Rdeps []*Action
}

// DepInput brings outputs of another action into a stage's sandbox.
type DepInput struct {
	Action *Action
	// Output is "" for every output of Action, or one declared out
	// (package-relative, as written in outs) when the label named an output file.
	Output string
}

// Label is the action's target label.
func (a *Action) Label() Label { return a.Target.Label }

// ActionGraph is the set of actions needed for some requested targets,
// in a topological order (dependencies before dependents).
type ActionGraph struct {
	Actions []*Action
	ByLabel map[Label]*Action
}
