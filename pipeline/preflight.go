package pipeline

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
)

// nothingToDeploy ends a preflight that found no deploy stage and no image
// to push (server.nothingToDeploy says the same).
const nothingToDeploy = "nothing to deploy or push"

// Preflight is `mc build --check`: what the build needs from the machine
// before anything runs. With --deploy (or --push), a registry for every
// image it pushes, and every secret its deploy stages name (they always
// run). Every problem is listed (exit 2); none: a line saying what was
// checked (exit 0). mc serve runs it before a push run builds, so that a
// run that could not deploy says so at its top, not after the build.
func Preflight(env Env, ag *graph.ActionGraph, registry string, push, deploy bool) error {
	var problems []string
	var pushed, deploys []*graph.Target
	for _, a := range ag.Actions {
		t := a.Target
		if push && t.ImageSpec != nil && t.ImageSpec.Repository != "" {
			pushed = append(pushed, t)
		}
		if deploy && t.Deploy {
			deploys = append(deploys, t)
		}
	}
	less := func(ts []*graph.Target) func(i, j int) bool {
		return func(i, j int) bool { return ts[i].Label.Less(ts[j].Label) }
	}
	sort.Slice(pushed, less(pushed))
	sort.Slice(deploys, less(deploys))
	if len(pushed) > 0 && registry == "" {
		for _, t := range pushed {
			problems = append(problems, fmt.Sprintf("%s (%s) has repository = %q but there is no registry to push it to: pass --registry=HOST[/PATH], set MC_REGISTRY, or set registry in WORKSPACE.mc's workspace()",
				t.Label, t.Pos, t.ImageSpec.Repository))
		}
	}
	for _, t := range deploys {
		for _, name := range t.Secrets {
			if v, ok := env.Getenv(name); !ok || v == "" {
				problems = append(problems, fmt.Sprintf("%s (%s) names secret %s, which is not set in mc's environment", t.Label, t.Pos, name))
			}
		}
	}
	if len(problems) > 0 {
		return errkind.Usagef("preflight: this build cannot run as asked:\n  %s", strings.Join(problems, "\n  "))
	}
	var checked []string
	if len(deploys) > 0 {
		checked = append(checked, fmt.Sprintf("%d deploy stage(s) with their secrets", len(deploys)))
	}
	if len(pushed) > 0 {
		checked = append(checked, fmt.Sprintf("%d image(s) to push to %s", len(pushed), registry))
	}
	if len(checked) == 0 {
		// mc serve reads this one: it then skips its deploy step.
		checked = append(checked, nothingToDeploy)
	}
	fmt.Fprintf(env.Stderr, "mc: preflight: ready (%s)\n", strings.Join(checked, ", "))
	return nil
}
