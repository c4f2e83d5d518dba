package builtins

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// evalVersion names the evaluator's semantics. Bump it whenever a change
// to mc would evaluate an unchanged BUILD.mc differently (builtins,
// validation, the encoding below): records of other versions are ignored.
const evalVersion = "mc-eval-1"

// kvNamespace is the package cache's namespace in the KV store.
const kvNamespace = "pkg"

// pkgRecord is a cached package and everything its evaluation depended
// on. It is valid while the evaluator version, WORKSPACE.mc, the ignore
// list, the BUILD.mc and every .star loaded, every glob result and every
// probed path are as recorded.
type pkgRecord struct {
	Version   string
	Workspace cas.Digest
	Ignore    []string
	Files     map[string]cas.Digest // workspace-relative
	Globs     []globRecord
	NotFiles  []string // package-relative paths that were not regular files
	Package   *graph.Package
}

func (e *Evaluator) cacheKey(pkg string) string { return e.ws.Root + "//" + pkg }

// workspaceDigest is the digest of WORKSPACE.mc, computed once.
func (e *Evaluator) workspaceDigest() (cas.Digest, error) {
	e.wsOnce.Do(func() {
		fi, err := e.dig.Digest(filepath.Join(e.ws.Root, lang.WorkspaceFile))
		e.wsDigest, e.wsErr = fi.Digest, err
	})
	return e.wsDigest, e.wsErr
}

// cached returns package pkg from the cache if its record is still valid,
// or nil. Any failure to read or check the record is a miss: the cache only
// ever saves work.
func (e *Evaluator) cached(ctx context.Context, pkg string) *graph.Package {
	if e.kv == nil {
		return nil
	}
	wsd, err := e.workspaceDigest()
	if err != nil {
		return nil
	}
	b, err := e.kv.GetKV(ctx, kvNamespace, e.cacheKey(pkg))
	if err != nil || b == nil {
		return nil
	}
	var r pkgRecord
	if err := json.Unmarshal(b, &r); err != nil || r.Package == nil {
		return nil
	}
	if r.Version != evalVersion || r.Workspace != wsd || !slices.Equal(r.Ignore, e.ws.Ignore) || r.Package.Name != pkg {
		return nil
	}
	for _, f := range sortedKeys(r.Files) {
		fi, err := e.dig.Digest(filepath.Join(e.ws.Root, filepath.FromSlash(f)))
		if err != nil || fi.Digest != r.Files[f] {
			return nil
		}
	}
	for _, rel := range r.NotFiles {
		fi, err := os.Stat(filepath.Join(e.ws.Root, filepath.FromSlash(path.Join(pkg, rel))))
		if err == nil && fi.Mode().IsRegular() {
			return nil
		}
	}
	for _, g := range r.Globs {
		got, err := e.tree.Glob(pkg, g.Include, g.Exclude)
		if err != nil || !slices.Equal(got, g.Result) {
			return nil
		}
	}
	return r.Package
}

// store records a freshly evaluated package. Failing to store is not an
// error: the next run evaluates the package again.
func (e *Evaluator) store(ctx context.Context, pkg *graph.Package, files map[string]cas.Digest, st *pkgState) {
	if e.kv == nil {
		return
	}
	wsd, err := e.workspaceDigest()
	if err != nil {
		return
	}
	r := pkgRecord{
		Version:   evalVersion,
		Workspace: wsd,
		Ignore:    e.ws.Ignore,
		Files:     files,
		Globs:     st.globs,
		NotFiles:  sortedKeys(st.probes),
		Package:   pkg,
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return
	}
	_ = e.kv.PutKV(ctx, kvNamespace, e.cacheKey(pkg.Name), b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}
