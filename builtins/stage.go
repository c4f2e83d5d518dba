package builtins

import (
	"fmt"
	"regexp"
	"strings"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// reservedEnv are set by mc in every stage (SPEC §4).
var reservedEnv = map[string]bool{"MC_WORKSPACE": true, "MC_PACKAGE": true, "MC_TARGET": true}

var cacheMountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// stage(name, srcs, deps, cmd, outs, image, env, secrets, tags, test,
// deploy, cache, timeout, network, cache_mounts, machine) declares a stage.
func stageBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "stage"
	var (
		name             string
		cmd              commandList
		srcs, deps, outs stringList
		secrets, tags    stringList
		image, timeout   string
		env, cacheMounts stringDict
		machine          machineDict
		test, deploy     bool
		cache, network   = true, true
	)
	if err := unpackKeywords(thread, fn, args, kwargs,
		"name", &name, "cmd", &cmd,
		"srcs??", &srcs, "deps??", &deps, "outs??", &outs, "image??", &image,
		"env??", &env, "secrets??", &secrets, "tags??", &tags, "test??", &test,
		"deploy??", &deploy, "cache??", &cache, "timeout??", &timeout, "network??", &network,
		"cache_mounts??", &cacheMounts, "machine??", &machine,
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
	t := &graph.Target{
		Label:   graph.Label{Name: name},
		Kind:    graph.KindStage,
		Outs:    outs,
		Secrets: secrets,
		Tags:    tags,
		Test:    test,
		Deploy:  deploy,
		Cache:   cache,
		Network: network,
		Env:     env.m,
		Machine: machine.m,
	}
	if t.Srcs, err = parseLabels(srcs, st.pkg); err != nil {
		return nil, fail("srcs: %v", err)
	}
	if t.Deps, err = parseLabels(deps, st.pkg); err != nil {
		return nil, fail("deps: %v", err)
	}
	if len(cmd) == 0 {
		return nil, fail("cmd: must not be empty")
	}
	for i, c := range cmd {
		if strings.TrimSpace(c) == "" {
			return nil, fail("cmd: command %d is empty", i+1)
		}
	}
	t.Cmds = cmd
	if msg := checkOuts(st, outs); msg != "" {
		return nil, fail("outs: %s", msg)
	}
	if t.Image, err = imageOrLabel(image, st.pkg); err != nil {
		return nil, fail("image: %v", err)
	}
	if timeout != "" {
		if t.Timeout, err = parseDuration(timeout); err != nil {
			return nil, fail("timeout: %v", err)
		}
	}
	if msg := checkStageEnv(env, secrets, cacheMounts); msg != "" {
		return nil, fail("%s", msg)
	}
	t.CacheMounts = cacheMounts.m
	for _, k := range machine.keys {
		if k == "" {
			return nil, fail("machine: empty key")
		}
	}
	if test && deploy {
		return nil, fail("a stage cannot be both test = True and deploy = True")
	}
	if err := st.declare(thread, t); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// checkStageEnv validates env, secrets and cache_mounts together: valid
// names, none set twice.
func checkStageEnv(env stringDict, secrets stringList, mounts stringDict) string {
	owner := map[string]string{}
	for _, k := range env.keys {
		if err := checkEnvName(k); err != nil {
			return "env: " + err.Error()
		}
		if reservedEnv[k] {
			return fmt.Sprintf("env: %s is set by mc", k)
		}
		owner[k] = "env"
	}
	for _, s := range secrets {
		if err := checkEnvName(s); err != nil {
			return "secrets: " + err.Error()
		}
		if reservedEnv[s] {
			return fmt.Sprintf("secrets: %s is set by mc", s)
		}
		if o, dup := owner[s]; dup {
			return fmt.Sprintf("secrets: %s is also set in %s", s, o)
		}
		owner[s] = "secrets"
	}
	for _, k := range mounts.keys {
		if err := checkEnvName(k); err != nil {
			return "cache_mounts: " + err.Error()
		}
		if reservedEnv[k] {
			return fmt.Sprintf("cache_mounts: %s is set by mc", k)
		}
		if o, dup := owner[k]; dup {
			return fmt.Sprintf("cache_mounts: %s is also set in %s", k, o)
		}
		if v := mounts.m[k]; !cacheMountName.MatchString(v) {
			return fmt.Sprintf("cache_mounts: %s: invalid cache name %q (letters, digits, . _ -, not starting with . _ or -)", k, v)
		}
	}
	return ""
}

// checkOuts validates declared outputs: package-relative clean paths (a
// trailing "/" marks a directory), unique, none inside another, and none
// below a path that is a source file of the package (the output could never
// be created there).
func checkOuts(st *pkgState, outs []string) string {
	seen := map[string]bool{}
	for _, o := range outs {
		trimmed := strings.TrimSuffix(o, "/")
		switch {
		case o == "" || trimmed == "":
			return "empty path"
		case strings.HasPrefix(o, "/"):
			return fmt.Sprintf("%q must be relative to the package", o)
		}
		for _, c := range strings.Split(trimmed, "/") {
			switch c {
			case "":
				return fmt.Sprintf("%q has an empty path component", o)
			case ".", "..":
				return fmt.Sprintf("%q must not contain '.' or '..' components", o)
			}
		}
		if err := graph.ValidDeclaredName(o); err != nil {
			return err.Error()
		}
		if seen[trimmed] {
			return fmt.Sprintf("%q is declared twice", o)
		}
		seen[trimmed] = true
	}
	for _, o := range outs {
		trimmed := strings.TrimSuffix(o, "/")
		for i := strings.LastIndexByte(trimmed, '/'); i > 0; i = strings.LastIndexByte(trimmed[:i], '/') {
			parent := trimmed[:i]
			if seen[parent] {
				return fmt.Sprintf("%q is inside %q, which is declared too; declare only one of them", o, parent)
			}
			if st.isSourceFile(parent) {
				return fmt.Sprintf("%q cannot be created: its parent %q is a source file in the package", o, parent)
			}
		}
	}
	return ""
}
