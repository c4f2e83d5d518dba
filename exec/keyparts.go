package exec

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
)

// KeyParts gathers the key preimage of a and the job inputs: source
// digests from files (the stat cache), read under root, and the outputs of
// a's dependencies as depOutputs reports them (the scheduler: from the
// finished dependencies; `mc explain`: from the action cache). It runs
// nothing, so it can say what an action's key would be right now.
func KeyParts(a *graph.Action, root, platform string, files Digester, depOutputs func(*graph.Action) []cas.Output) (*graph.KeyParts, []Input, error) {
	t := a.Target
	parts := &graph.KeyParts{
		Package: t.Label.Pkg, Cmds: t.Cmds, Env: t.Env, Secrets: t.Secrets,
		Image: "", Platform: platform, Outs: t.Outs, Network: t.Network,
	}
	var inputs []Input
	for _, src := range a.Sources {
		abs := filepath.Join(root, filepath.FromSlash(src))
		fi, err := files.Digest(abs)
		if err != nil {
			return nil, nil, fmt.Errorf("reading source %s: %w", src, err)
		}
		parts.Inputs = append(parts.Inputs, graph.KeyInput{Path: src, Digest: fi.Digest, Exec: fi.Exec})
		inputs = append(inputs, Input{Path: src, Digest: fi.Digest, Size: fi.Size, Exec: fi.Exec, Source: abs})
	}
	for _, in := range a.Inputs {
		want := ""
		if in.Output != "" {
			want = path.Join(in.Action.Target.Label.Pkg, strings.TrimSuffix(in.Output, "/"))
		}
		for _, out := range depOutputs(in.Action) {
			if want != "" && out.Path != want {
				continue
			}
			parts.Inputs = append(parts.Inputs, graph.KeyInput{Path: out.Path, Digest: out.Digest, Exec: out.Exec, Tree: out.IsDir})
			inputs = append(inputs, Input{Path: out.Path, Digest: out.Digest, Size: out.Size, Exec: out.Exec, IsTree: out.IsDir})
		}
	}
	// Two inputs at one path would make the sandbox ambiguous.
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Path < inputs[j].Path })
	for i := 1; i < len(inputs); i++ {
		if inputs[i].Path == inputs[i-1].Path && inputs[i].Digest != inputs[i-1].Digest {
			return nil, nil, fmt.Errorf("two inputs at %s", inputs[i].Path)
		}
	}
	return parts, dedupKeyInputs(inputs), nil
}

// dedupKeyInputs drops repeated paths from sorted inputs (the same file
// reached through two filegroups).
func dedupKeyInputs(in []Input) []Input {
	out := in[:0]
	for i, x := range in {
		if i > 0 && x.Path == in[i-1].Path {
			continue
		}
		out = append(out, x)
	}
	return out
}
