// Package oci builds, reads, pushes, pulls and unpacks OCI images for mc's
// image() targets, without a Docker daemon.
//
// Images live on disk as OCI image layout directories holding exactly one
// image. Build is reproducible: the same files and config give the same
// manifest digest on any machine, so an image's digest can be a cache key.
// Registry access goes through go-containerregistry; every failure talking to
// a registry is a *RegistryError naming it, and a malformed reference is a
// *ReferenceError.
//
// The package is a leaf: it imports no other mc package.
package oci
