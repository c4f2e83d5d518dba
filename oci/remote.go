package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DigestTag returns the tag under which Push files an image of manifest
// digest "sha256:<hex>": "sha256-<hex>", as cosign and others spell it (a tag
// cannot hold ':').
func DigestTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1)
}

// Pull writes the image named by ref into an OCI image layout at outDir
// (which must not exist or be empty). When ref names an index, the image for
// opts.Platform (DefaultPlatform if "") is written, so ReadDigest(outDir)
// is then that image's digest, not the index's. Pass a digest reference
// (from Resolve) for a reproducible result.
func Pull(ctx context.Context, ref, outDir string, opts Options) error {
	r, err := parseReference(ref, opts)
	if err != nil {
		return err
	}
	if err := checkOutDir(outDir); err != nil {
		return err
	}
	platform, err := parsePlatform(opts.Platform)
	if err != nil {
		return err
	}
	ro := append(opts.remoteOptions(), remote.WithContext(ctx), remote.WithPlatform(platform))
	img, err := remote.Image(r, ro...)
	if err != nil {
		return registryError(r.Context().Registry, err)
	}
	// Layers are fetched (and their digests verified) while writing.
	if err := writeLayout(img, outDir); err != nil {
		if fromNetwork(err) {
			return registryError(r.Context().Registry, err)
		}
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	return nil
}

// Push pushes the image in layoutDir to repo (e.g. "127.0.0.1:5000/service/api")
// tagged DigestTag(digest) and each of tags. Blobs and manifests the registry
// already has are not uploaded again. It returns the pushed references:
// "repo@sha256:…", then "repo:tag" for the digest tag and each of tags, with
// repo fully qualified.
func Push(ctx context.Context, layoutDir, repo string, tags []string, opts Options) ([]string, error) {
	r, err := parseRepository(repo, opts)
	if err != nil {
		return nil, err
	}
	img, err := readImage(layoutDir, "")
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image in %s: %w", layoutDir, err)
	}
	all := []string{DigestTag(d.String())}
	for _, t := range tags {
		if !slices.Contains(all, t) {
			all = append(all, t)
		}
	}
	// Every tag is checked before anything is pushed.
	refs := make([]name.Tag, len(all))
	for i, t := range all {
		if refs[i], err = name.NewTag(r.Name()+":"+t, opts.nameOptions()...); err != nil {
			return nil, &ReferenceError{Ref: repo + ":" + t, Reason: err.Error()}
		}
	}
	pusher, err := remote.NewPusher(append(opts.remoteOptions(), remote.WithContext(ctx))...)
	if err != nil {
		return nil, err
	}
	pushed := []string{r.Name() + "@" + d.String()}
	for _, ref := range refs {
		// One pusher: blobs checked or uploaded for the first tag are not
		// checked again for the next ones.
		if err := pusher.Push(ctx, ref, img); err != nil {
			if fromNetwork(err) {
				return nil, registryError(r.Registry, err)
			}
			return nil, fmt.Errorf("pushing %s: %w", ref, err)
		}
		pushed = append(pushed, ref.Name())
	}
	return pushed, nil
}

// fromNetwork reports whether err came from talking to a registry rather
// than from the local disk.
func fromNetwork(err error) bool {
	var te *transport.Error
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &te) || errors.As(err, &ue) || errors.As(err, &ne)
}
