package oci

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is the runtime configuration of a built image, applied over the
// base image's.
type Config struct {
	// Entrypoint replaces the base's when non-nil. Setting it also clears
	// the base's Cmd unless Cmd is set too, as a Dockerfile ENTRYPOINT does.
	Entrypoint []string
	// Cmd replaces the base's when non-nil.
	Cmd []string
	// Env is merged over the base's: the base's order is kept, a key set
	// here replaces its value in place, new keys are appended sorted.
	Env map[string]string
	// Workdir replaces the base's when not "".
	Workdir string
	// Labels are merged over the base's.
	Labels map[string]string
	// Platform is "os/arch[/variant]"; "" means the base's, or
	// DefaultPlatform for scratch. A base of another platform is an error.
	Platform string
}

// historyCreatedBy marks the layer mc adds in the image history.
const historyCreatedBy = "mc image"

// Build assembles an image from base plus one new layer holding files, with
// cfg applied, and writes it as an OCI image layout at outDir, which must not
// exist or be empty. base is an OCI image layout directory holding one image
// (or an index, from which cfg.Platform is chosen), or "" for scratch. It
// returns the manifest digest "sha256:…".
//
// The result is reproducible: entries sorted, parent directories explicit
// (0755), timestamps at the Unix epoch (tar entries, config and history
// "created"), uid/gid 0 without names, gzip level GzipLevel without name or
// time, and config JSON in a fixed field order.
func Build(ctx context.Context, base string, files []File, cfg Config, outDir string) (string, error) {
	if err := checkOutDir(outDir); err != nil {
		return "", err
	}
	baseImg, err := baseImage(base, cfg.Platform)
	if err != nil {
		return "", err
	}
	entries, err := layerEntries(files)
	if err != nil {
		return "", err
	}

	// The layer goes through a file: go-containerregistry reads it several
	// times (digest, diff ID, layout write).
	parent := filepath.Dir(filepath.Clean(outDir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("building image: %w", err)
	}
	tmp, err := os.CreateTemp(parent, ".mc-layer-*.tar.gz")
	if err != nil {
		return "", fmt.Errorf("building image: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = writeLayer(ctx, tmp, entries)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("building image layer: %w", err)
	}

	img, err := assemble(baseImg, tmp.Name(), cfg)
	if err != nil {
		return "", err
	}
	if err := writeLayout(img, outDir); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// baseImage reads the base, or makes an empty OCI image for scratch.
func baseImage(base, platform string) (v1.Image, error) {
	if base == "" {
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
	}
	img, err := readImage(base, platform)
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	return img, nil
}

// assemble applies cfg to base and appends the layer in layerPath.
func assemble(base v1.Image, layerPath string, cfg Config) (v1.Image, error) {
	mt, err := base.MediaType()
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	// Keep the manifest's family: Docker layers in a Docker manifest, OCI
	// layers in an OCI one.
	layerType := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(layerPath) },
		tarball.WithMediaType(layerType))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}

	baseCfg, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base image config: %w", err)
	}
	cf := baseCfg.DeepCopy()
	if err := applyConfig(cf, cfg); err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		// go-containerregistry cannot omit a history time; the epoch is as
		// fixed as no time at all.
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: historyCreatedBy},
	})
}

// applyConfig sets cfg over the base's config file cf.
func applyConfig(cf *v1.ConfigFile, cfg Config) error {
	if cfg.Platform != "" || cf.OS == "" {
		want, err := parsePlatform(cfg.Platform)
		if err != nil {
			return err
		}
		if cf.OS != "" && (cf.OS != want.OS || cf.Architecture != want.Architecture || cf.Variant != want.Variant) {
			have := formatPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
			return fmt.Errorf("base image is for %s, the image is for %s", have, formatPlatform(want))
		}
		cf.OS, cf.Architecture, cf.Variant = want.OS, want.Architecture, want.Variant
	}
	for k := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("image env: invalid variable name %q", k)
		}
	}
	cf.Created = v1.Time{Time: epoch}
	c := &cf.Config
	if cfg.Entrypoint != nil {
		c.Entrypoint = slices.Clone(cfg.Entrypoint)
		c.Cmd = nil
	}
	if cfg.Cmd != nil {
		c.Cmd = slices.Clone(cfg.Cmd)
	}
	if cfg.Workdir != "" {
		c.WorkingDir = cfg.Workdir
	}
	c.Env = mergeEnv(c.Env, cfg.Env)
	if len(cfg.Labels) > 0 {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		maps.Copy(c.Labels, cfg.Labels)
	}
	return nil
}

// mergeEnv sets env over base ("KEY=value" entries): base order kept, a
// key present in both replaced in place, new keys appended sorted.
func mergeEnv(base []string, env map[string]string) []string {
	if len(env) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(env))
	seen := map[string]bool{}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := env[k]; ok {
			kv = k + "=" + v
			seen[k] = true
		}
		out = append(out, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if !seen[k] {
			out = append(out, k+"="+env[k])
		}
	}
	return out
}
