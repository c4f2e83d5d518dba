package builtins

import (
	"path"
	"strings"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// Image targets are built like stages: their outputs, named after the
// target, are what dependents find in their sandbox (SPEC §3).
const (
	// DigestSuffix names the output holding the image's manifest digest,
	// "sha256:<hex>" without a trailing newline, so that $(cat …) and
	// plain file reads give the reference part as is.
	DigestSuffix = ".digest"
	// LayoutSuffix names the directory output holding the image as an OCI
	// image layout.
	LayoutSuffix = ".oci"
)

// ImageOuts are the declared outputs of image target name.
func ImageOuts(name string) []string {
	return []string{name + DigestSuffix, name + LayoutSuffix + "/"}
}

// image(name, base, files, entrypoint, cmd, env, workdir, labels,
// repository, tags) declares an OCI image.
func imageBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "image"
	var (
		name, base, repository string
		workdir                = "/"
		files, env, labels     stringDict
		entrypoint, cmd, tags  stringList
	)
	if err := unpackKeywords(thread, fn, args, kwargs,
		"name", &name, "base??", &base, "files??", &files, "entrypoint??", &entrypoint,
		"cmd??", &cmd, "env??", &env, "workdir??", &workdir, "labels??", &labels,
		"repository??", &repository, "tags??", &tags,
	); err != nil {
		return nil, err
	}
	st, err := currentPackage(thread, fn)
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return lang.ThreadErrorf(thread, fn+": "+format, args...)
	}
	if err := checkRuleName(name); err != nil {
		return nil, fail("name: %v", err)
	}
	spec := &graph.ImageSpec{
		Entrypoint: entrypoint,
		Cmd:        cmd,
		Env:        env.m,
		Workdir:    workdir,
		Labels:     labels.m,
		Repository: repository,
		Tags:       tags,
	}
	if spec.Base, err = imageOrLabel(base, st.pkg); err != nil {
		return nil, fail("base: %v", err)
	}
	for _, dest := range files.keys {
		if !absClean(dest) || dest == "/" {
			return nil, fail("files: destination %q must be an absolute, clean file path in the image, like \"/usr/local/bin/app\"", dest)
		}
		l, err := graph.ParseLabel(files.m[dest], st.pkg)
		if err != nil {
			return nil, fail("files: %q: %v", dest, err)
		}
		if spec.Files == nil {
			spec.Files = map[string]graph.Label{}
		}
		spec.Files[dest] = l
	}
	for _, k := range env.keys {
		if err := checkEnvName(k); err != nil {
			return nil, fail("env: %v", err)
		}
	}
	if !absClean(workdir) {
		return nil, fail("workdir: %q must be an absolute, clean path", workdir)
	}
	for _, k := range labels.keys {
		if k == "" {
			return nil, fail("labels: empty key")
		}
	}
	if repository != "" {
		if err := checkRepository(repository); err != nil {
			return nil, fail("repository: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, tag := range tags {
		if err := checkTag(tag); err != nil {
			return nil, fail("tags: %v", err)
		}
		if seen[tag] {
			return nil, fail("tags: %q is listed twice", tag)
		}
		seen[tag] = true
	}
	// Images are cacheable build steps like stages; the defaults match.
	t := &graph.Target{Label: graph.Label{Name: name}, Kind: graph.KindImage, ImageSpec: spec, Cache: true, Network: true,
		Outs: ImageOuts(name)}
	if err := st.declare(thread, t); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// absClean reports whether p is an absolute slash path in clean form.
func absClean(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p
}
