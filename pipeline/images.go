package pipeline

import (
	"context"
	"net"
	"sort"
	"strings"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sched"
)

// registrySetting is where images are pushed: --registry, else
// MC_REGISTRY, else WORKSPACE.mc's registry (SPEC §1).
func registrySetting(getenv func(string) (string, bool), flag string, ws *graph.Workspace) string {
	if flag != "" {
		return flag
	}
	if v, ok := getenv("MC_REGISTRY"); ok && v != "" {
		return v
	}
	return ws.Registry
}

// imageOptions is how the build resolves registry images and, when push is
// set, pushes the images of ag that have a repository to registry. A push
// without a registry to push to is a usage error.
func imageOptions(ag *graph.ActionGraph, registry string, push bool) (sched.ImageOptions, error) {
	opts := sched.ImageOptions{
		Resolve: func(ctx context.Context, ref string) (string, error) {
			return oci.Resolve(ctx, ref, registryOptions(ref))
		},
	}
	if !push {
		return opts, nil
	}
	var pushed []*graph.Target
	for _, a := range ag.Actions {
		if s := a.Target.ImageSpec; s != nil && s.Repository != "" {
			pushed = append(pushed, a.Target)
		}
	}
	if len(pushed) == 0 {
		return opts, nil
	}
	sort.Slice(pushed, func(i, j int) bool { return pushed[i].Label.Less(pushed[j].Label) })
	if registry == "" {
		t := pushed[0]
		return opts, errkind.Usagef("%s has repository = %q but there is no registry to push it to: pass --registry=HOST[/PATH], set MC_REGISTRY, or set registry in WORKSPACE.mc's workspace()",
			t.Label, t.ImageSpec.Repository)
	}
	registry = strings.TrimSuffix(registry, "/")
	for _, t := range pushed {
		if err := oci.ParseReference(registry + "/" + t.ImageSpec.Repository); err != nil {
			return opts, errkind.Usagef("registry %q: %v", registry, err)
		}
	}
	ro := registryOptions(registry)
	opts.Push = func(ctx context.Context, a *graph.Action, layoutDir string) ([]string, error) {
		s := a.Target.ImageSpec
		return oci.Push(ctx, layoutDir, registry+"/"+s.Repository, s.Tags, ro)
	}
	return opts, nil
}

// registryOptions are the options for talking to the registry of ref (a
// reference or a registry "host[:port][/path]"): plain http for a registry
// on this machine, which is how test and local registries run.
func registryOptions(ref string) oci.Options {
	host, _, _ := strings.Cut(ref, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return oci.Options{} // no host: Docker Hub
	}
	return oci.Options{Insecure: isLoopback(host)}
}

// isLoopback reports whether a registry host[:port] is this machine.
func isLoopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// pushRequested reports whether a build pushes images: --push, or any
// --deploy run (a deploy stage depending on an image finds it pushed).
func pushRequested(push, deploy bool) bool { return push || deploy }

// ResolveImage resolves a registry image reference to its digest, as a
// build does (plain http for a registry on this machine).
func ResolveImage(ctx context.Context, ref string) (string, error) {
	return oci.Resolve(ctx, ref, registryOptions(ref))
}
