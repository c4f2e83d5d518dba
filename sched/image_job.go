package sched

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/oci"
)

// imageRecipe is the first command of an image action's key: the rest is
// the JSON of its ImageBuild, so that changing any attribute of the image
// (or the encoding, with the version) changes the key.
const imageRecipe = "mc:image/1"

// ImageBuild is how an image action's image is assembled: base, plus one
// layer of files taken from the job's inputs, with Config applied.
type ImageBuild struct {
	// Base is the workspace-relative path of the base image's OCI layout
	// among the inputs (a base that is an image target); "" otherwise.
	Base string `json:"base,omitempty"`
	// BaseRef is a registry base, resolved: "repo@sha256:…"; pulled once
	// per digest. "" with Base for scratch.
	BaseRef string `json:"base_ref,omitempty"`
	// Files are sorted by Dest.
	Files  []ImageFile `json:"files"`
	Config oci.Config  `json:"config"`
	// Digest and Layout are the workspace-relative paths of the two
	// outputs: the manifest digest file and the OCI layout directory.
	Digest string `json:"digest"`
	Layout string `json:"layout"`
}

// ImageFile places the input at Src (workspace-relative; a file or a
// directory output) at Dest in the image.
type ImageFile struct {
	Dest string `json:"dest"`
	Src  string `json:"src"`
}

// isRegistryRef reports whether an image attribute is a registry
// reference rather than a label (builtins stores labels as "//pkg:name").
func isRegistryRef(s string) bool {
	return s != "" && !strings.HasPrefix(s, "//")
}

// imageLayoutOf is the workspace-relative path of the OCI layout output of
// the image target labelled s ("//pkg:name").
func imageLayoutOf(s string) (string, error) {
	l, err := graph.ParseLabel(s, "")
	if err != nil {
		return "", fmt.Errorf("image %q: %w", s, err)
	}
	return path.Join(l.Pkg, l.Name+".oci"), nil
}

// imageBuildOf describes how image action a is built. baseRef is its
// registry base, already resolved ("" when the base is not one).
func imageBuildOf(a *graph.Action, platform, baseRef string) (*ImageBuild, error) {
	t := a.Target
	s := t.ImageSpec
	if s == nil {
		return nil, fmt.Errorf("internal error: image %s has no spec", t.Label)
	}
	b := &ImageBuild{
		BaseRef: baseRef,
		Config: oci.Config{
			Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env, Workdir: s.Workdir,
			Labels: s.Labels, Platform: platform,
		},
		Digest: path.Join(t.Label.Pkg, t.Label.Name+".digest"),
		Layout: path.Join(t.Label.Pkg, t.Label.Name+".oci"),
	}
	if s.Base != "" && !isRegistryRef(s.Base) {
		p, err := imageLayoutOf(s.Base)
		if err != nil {
			return nil, err
		}
		b.Base = p
	}
	for dest, l := range s.Files {
		src, err := imageFileSrc(a, l)
		if err != nil {
			return nil, err
		}
		b.Files = append(b.Files, ImageFile{Dest: dest, Src: src})
	}
	sort.Slice(b.Files, func(i, j int) bool { return b.Files[i].Dest < b.Files[j].Dest })
	return b, nil
}

// imageFileSrc is where the file or directory that label l names lies in
// the workspace: the one output of a stage, a declared output, or a source
// file. graph.Actions has checked that l is one of them.
func imageFileSrc(a *graph.Action, l graph.Label) (string, error) {
	for _, in := range a.Inputs {
		d := in.Action.Target
		if d.Label == l {
			if len(d.Outs) != 1 {
				return "", fmt.Errorf("files: %s has %d outputs, want one", l, len(d.Outs))
			}
			return path.Join(d.Label.Pkg, strings.TrimSuffix(d.Outs[0], "/")), nil
		}
		if d.Label.Pkg != l.Pkg {
			continue
		}
		for _, o := range d.Outs {
			if strings.TrimSuffix(o, "/") == strings.TrimSuffix(l.Name, "/") {
				return path.Join(l.Pkg, strings.TrimSuffix(o, "/")), nil
			}
		}
	}
	return path.Join(l.Pkg, l.Name), nil
}

// recipe is the canonical text of b for the key. encoding/json writes
// struct fields in declaration order and map keys sorted.
func (b *ImageBuild) recipe() ([]string, error) {
	j, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding the image recipe: %w", err)
	}
	return []string{imageRecipe, string(j)}, nil
}
