package oci

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ParseReference validates a registry reference ("host/repo:tag",
// "repo@sha256:…", "repo:tag@sha256:…"; a missing tag means "latest", a
// missing host means Docker Hub). The error, if any, is a *ReferenceError.
func ParseReference(ref string) error {
	_, err := parseReference(ref, Options{})
	return err
}

func parseReference(ref string, o Options) (name.Reference, error) {
	if ref == "" {
		return nil, &ReferenceError{Ref: ref, Reason: "empty"}
	}
	// go-containerregistry reads "x:" as tag "latest" in weak mode; an
	// explicit but empty tag is a typo, not a request for latest.
	if strings.HasSuffix(ref, ":") || strings.HasSuffix(ref, "@") {
		return nil, &ReferenceError{Ref: ref, Reason: "empty tag or digest after the separator"}
	}
	// name.ParseReference's own error names no reason; the parser for the
	// form at hand does.
	var r name.Reference
	var err error
	if strings.Contains(ref, "@") {
		r, err = name.NewDigest(ref, o.nameOptions()...)
	} else {
		r, err = name.NewTag(ref, o.nameOptions()...)
	}
	if err != nil {
		return nil, &ReferenceError{Ref: ref, Reason: err.Error()}
	}
	return r, nil
}

// parseRepository validates a repository name such as "127.0.0.1:5000/service/api".
func parseRepository(repo string, o Options) (name.Repository, error) {
	r, err := name.NewRepository(repo, o.nameOptions()...)
	if err != nil {
		return name.Repository{}, &ReferenceError{Ref: repo, Reason: err.Error()}
	}
	return r, nil
}

// Resolve turns a registry reference into "repo@sha256:…", with repo fully
// qualified (e.g. "index.docker.io/library/alpine"), so that the same image
// named two ways gives the same string. A reference holding a digest is
// answered without network; a tag is resolved by asking the registry. For a
// multi-platform tag the digest is the index's.
func Resolve(ctx context.Context, ref string, opts Options) (string, error) {
	r, err := parseReference(ref, opts)
	if err != nil {
		return "", err
	}
	if d, ok := r.(name.Digest); ok {
		return d.Context().Name() + "@" + d.DigestStr(), nil
	}
	ro := append(opts.remoteOptions(), remote.WithContext(ctx))
	desc, err := remote.Head(r, ro...)
	if err != nil && headUnsupported(err) {
		// Some registries answer HEAD badly; GET returns the same digest.
		var d *remote.Descriptor
		if d, err = remote.Get(r, ro...); err == nil {
			desc = &d.Descriptor
		}
	}
	if err != nil {
		return "", registryError(r.Context().Registry, err)
	}
	return r.Context().Name() + "@" + desc.Digest.String(), nil
}

// headUnsupported reports whether a failed HEAD is worth retrying as GET: the
// registry answered, and not with "no such tag" or "not allowed".
func headUnsupported(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	switch te.StatusCode {
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		return false
	}
	return true
}
