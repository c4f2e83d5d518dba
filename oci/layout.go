package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// RunConfig is what a container runtime needs from an image's config.
type RunConfig struct {
	Env        []string // "KEY=value", in the image's order
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	Platform   string // "os/arch" or "os/arch/variant"
}

// ReadDigest returns the manifest digest ("sha256:…") of the single image in
// the OCI image layout at layoutDir.
func ReadDigest(layoutDir string) (string, error) {
	desc, _, err := layoutDescriptor(layoutDir)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// ImageConfig returns the run configuration of the image in layoutDir.
func ImageConfig(layoutDir string) (*RunConfig, error) {
	img, err := readImage(layoutDir, "")
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image in %s: config: %w", layoutDir, err)
	}
	rc := &RunConfig{
		Env:        cf.Config.Env,
		Entrypoint: cf.Config.Entrypoint,
		Cmd:        cf.Config.Cmd,
		WorkingDir: cf.Config.WorkingDir,
		User:       cf.Config.User,
	}
	if p := cf.Platform(); p != nil {
		rc.Platform = formatPlatform(*p)
	}
	return rc, nil
}

// layoutDescriptor returns the one descriptor of the layout's index.json.
func layoutDescriptor(dir string) (v1.Descriptor, v1.ImageIndex, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return v1.Descriptor{}, nil, fmt.Errorf("OCI layout %s holds %d manifests, want exactly 1", dir, len(im.Manifests))
	}
	return im.Manifests[0], idx, nil
}

// readImage returns the single image of a layout. When that is an index,
// the image for platform ("" for DefaultPlatform) is chosen from it.
func readImage(dir, platform string) (v1.Image, error) {
	desc, idx, err := layoutDescriptor(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case desc.MediaType.IsImage():
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		return img, nil
	case desc.MediaType.IsIndex():
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		return imageForPlatform(child, platform, dir)
	default:
		return nil, fmt.Errorf("OCI layout %s: manifest %s has media type %q, not an image", dir, desc.Digest, desc.MediaType)
	}
}

func imageForPlatform(idx v1.ImageIndex, platform, where string) (v1.Image, error) {
	want, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() && d.Platform != nil && d.Platform.Satisfies(want) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%s: no image for platform %s in the index", where, formatPlatform(want))
}

// checkOutDir accepts a directory that does not exist or is empty.
func checkOutDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("output directory: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("output directory %s is not empty: %w", dir, fs.ErrExist)
	}
	return nil
}

// writeLayout writes img as a one-image OCI layout at dir. It writes into a
// temporary sibling and renames it into place, so dir is either absent or
// complete, never half written.
func writeLayout(img v1.Image, dir string) error {
	if err := checkOutDir(dir); err != nil {
		return err
	}
	tmp, err := tempSibling(dir)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := p.AppendImage(img); err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	// rename(2) replaces an empty directory, and fails on a non-empty one,
	// which is what a concurrent writer would have left.
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	ok = true
	return nil
}

// tempSibling creates a fresh directory next to dir (mode 0755), creating
// dir's parents as needed.
func tempSibling(dir string) (string, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}
