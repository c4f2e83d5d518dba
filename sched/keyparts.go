package sched

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/oci"
)

// KeyParts gathers the key preimage of a and the job inputs: source
// digests from files (the stat cache), read under root, and the outputs of
// a's dependencies as depOutputs reports them (the scheduler: from the
// finished dependencies; `mc explain`: from the action cache). It runs
// nothing, so it can say what an action's key would be right now.
//
// A registry image (a stage's image, an image's base) is taken as written
// unless it holds a digest, which is put in canonical form; KeyPartsResolved
// resolves tags too, as a build does.
func KeyParts(a *graph.Action, root, platform string, files Digester, depOutputs func(*graph.Action) []cas.Output) (*graph.KeyParts, []Input, error) {
	return KeyPartsResolved(a, root, platform, files, depOutputs, nil)
}

// KeyPartsResolved is KeyParts with registry references resolved by
// resolve to "repo@sha256:…" (the digest is what counts, SPEC §3). A nil
// resolve resolves only references that hold a digest (no network).
//
// An image action's key has the canonical recipe of its ImageBuild as its
// commands; its base and files come in as inputs, or as the key's Image
// for a registry base. A stage's Image is the image target's label (its
// layout is among the inputs) or the resolved registry reference.
func KeyPartsResolved(a *graph.Action, root, platform string, files Digester, depOutputs func(*graph.Action) []cas.Output,
	resolve func(ref string) (string, error)) (*graph.KeyParts, []Input, error) {
	t := a.Target
	if resolve == nil {
		resolve = resolveOffline
	}
	parts := &graph.KeyParts{
		Package: t.Label.Pkg, Cmds: t.Cmds, Env: t.Env, Secrets: t.Secrets,
		Image: t.Image, Platform: platform, Outs: t.Outs, Network: t.Network,
	}
	if isRegistryRef(t.Image) {
		ref, err := resolve(t.Image)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", t.Image, err)
		}
		parts.Image = ref
	}
	if t.Kind == graph.KindImage {
		base := ""
		if s := t.ImageSpec; s != nil && isRegistryRef(s.Base) {
			ref, err := resolve(s.Base)
			if err != nil {
				return nil, nil, fmt.Errorf("base image %s: %w", s.Base, err)
			}
			base = ref
		}
		b, err := imageBuildOf(a, platform, base)
		if err != nil {
			return nil, nil, err
		}
		if parts.Cmds, err = b.recipe(); err != nil {
			return nil, nil, err
		}
		parts.Image = base
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

// resolveOffline canonicalizes a reference holding a digest, which needs
// no registry; a tag is kept as written.
func resolveOffline(ref string) (string, error) {
	if !strings.Contains(ref, "@") {
		return ref, nil
	}
	return oci.Resolve(context.Background(), ref, oci.Options{})
}
