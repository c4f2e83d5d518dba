package builtins

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Registry references follow the grammar of the OCI distribution spec
// (github.com/distribution/reference):
//
//	reference := name [ ":" tag ] [ "@" digest ]
//	name      := [domain "/"] path-component ["/" path-component]*
//	domain    := host [":" port]
const (
	alnum         = `[a-z0-9]+`
	separator     = `(?:[._]|__|[-]+)`
	pathComponent = alnum + `(?:` + separator + alnum + `)*`
	repoPath      = pathComponent + `(?:/` + pathComponent + `)*`
	domainComp    = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainName    = domainComp + `(?:\.` + domainComp + `)*`
	ipv6          = `\[(?:[a-fA-F0-9:]+)\]`
	host          = `(?:` + domainName + `|` + ipv6 + `)`
	domainPort    = host + `(?::[0-9]+)?`
	tagPattern    = `[\w][\w.-]{0,127}`
	digestPattern = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
)

var (
	referenceRE  = regexp.MustCompile(`^(?:(` + domainPort + `)/)?(` + repoPath + `)(?::(` + tagPattern + `))?(?:@(` + digestPattern + `))?$`)
	repositoryRE = regexp.MustCompile(`^` + repoPath + `$`)
	registryRE   = regexp.MustCompile(`^(` + domainPort + `)(?:/(` + repoPath + `))?$`)
	tagRE        = regexp.MustCompile(`^` + tagPattern + `$`)
)

// maxNameLen is the distribution spec's limit on a repository name.
const maxNameLen = 255

// checkReference validates a registry reference such as "golang:1.22",
// "docker.io/library/alpine@sha256:…" or "localhost:5000/app:v1".
func checkReference(s string) error {
	m := referenceRE.FindStringSubmatch(s)
	if m == nil {
		if strings.ToLower(s) != s && referenceRE.MatchString(strings.ToLower(s)) {
			return fmt.Errorf("invalid image reference %q: repository names must be lowercase", s)
		}
		return fmt.Errorf("invalid image reference %q: want [registry/]repository[:tag][@digest], or a label starting with // or :", s)
	}
	name := m[2]
	if m[1] != "" {
		name = m[1] + "/" + name
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("invalid image reference %q: name longer than %d characters", s, maxNameLen)
	}
	return nil
}

// checkRepository validates an image() repository: a path below the
// workspace registry, without a registry host, tag or digest.
func checkRepository(s string) error {
	if !repositoryRE.MatchString(s) {
		return fmt.Errorf("invalid repository %q: want lowercase path components like \"service/api\" (letters, digits, and . _ __ - between them)", s)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("invalid repository %q: longer than %d characters", s, maxNameLen)
	}
	return nil
}

// checkTag validates an image tag.
func checkTag(s string) error {
	if !tagRE.MatchString(s) {
		return fmt.Errorf("invalid tag %q: want up to 128 letters, digits, _ . -, not starting with . or -", s)
	}
	return nil
}

// checkRegistry validates workspace(registry = ...): a registry host,
// optionally with a port and a path ("registry.example.com/acme",
// "localhost:5000").
func checkRegistry(s string) error {
	m := registryRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("invalid registry %q: want host[:port][/path], like \"registry.example.com/acme\"", s)
	}
	h := m[1]
	if !strings.ContainsAny(h, ".:[") && h != "localhost" {
		return errors.New("invalid registry " + fmt.Sprintf("%q", s) + ": the first component must be a registry host (with a '.' or a port, or localhost)")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("invalid registry %q: longer than %d characters", s, maxNameLen)
	}
	return nil
}
