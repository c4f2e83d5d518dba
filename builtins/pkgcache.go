package builtins

import (
	"bytes"
	"context"
	"encoding/gob"
	"maps"
	"path/filepath"
	"slices"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// evalVersion names the evaluator's semantics. Bump it whenever a change
// to mc would evaluate an unchanged BUILD.mc differently (builtins,
// validation, the encoding below): snapshots of other versions are ignored.
const evalVersion = "mc-eval-1"

// kvNamespace is the package cache's namespace in the KV store. The key is
// the workspace root: one snapshot holds every package of a workspace, so
// that a null build reads one value instead of one per package.
const kvNamespace = "pkg"

// snapshot is what the KV store holds for a workspace.
type snapshot struct {
	Version string
	Records map[string]*pkgRecord // by package path
}

// pkgRecord is a cached package and everything its evaluation depended on.
// It is valid while WORKSPACE.mc and the ignore list, the BUILD.mc and
// every .star it loaded, every glob result and every probed path are as
// recorded. Records are never modified once built, only replaced.
type pkgRecord struct {
	Workspace cas.Digest
	Ignore    []string
	Files     map[string]cas.Digest // workspace-relative
	Globs     []globRecord
	NotFiles  []string // package-relative paths that were not regular files
	Package   *graph.Package
}

// loadSnapshot reads the workspace's snapshot once per Evaluator. Any
// failure leaves it empty: the cache only ever saves work.
func (e *Evaluator) loadSnapshot(ctx context.Context) {
	e.snapOnce.Do(func() {
		e.records = map[string]*pkgRecord{}
		b, err := e.kv.GetKV(ctx, kvNamespace, e.ws.Root)
		if err != nil || b == nil {
			return
		}
		var s snapshot
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil || s.Version != e.version() {
			return
		}
		for p, r := range s.Records {
			if r != nil && r.Package != nil && r.Package.Name == p {
				e.records[p] = r
			}
		}
	})
}

// cached returns package pkg from the snapshot if its record is still
// valid, or nil.
func (e *Evaluator) cached(ctx context.Context, pkg string) *graph.Package {
	if e.kv == nil {
		return nil
	}
	e.loadSnapshot(ctx)
	e.snapMu.Lock()
	r := e.records[pkg]
	e.snapMu.Unlock()
	if r == nil {
		return nil
	}
	wsd, err := e.workspaceDigest()
	if err != nil || r.Workspace != wsd || !slices.Equal(r.Ignore, e.ws.Ignore) {
		return nil
	}
	for f, want := range r.Files {
		if d, err := e.digest(f); err != nil || d != want {
			return nil
		}
	}
	for _, rel := range r.NotFiles {
		if isRegular(filepath.Join(e.ws.Root, filepath.FromSlash(pkg), filepath.FromSlash(rel))) {
			return nil
		}
	}
	var refreshed []globRecord
	for i, g := range r.Globs {
		if len(g.Stamps) > 0 && e.tree.StampsUnchanged(pkg, g.Stamps) {
			continue
		}
		// Stamps missing (too recent when taken) or changed: the glob itself
		// decides, and its new stamps spare the next run the work.
		got, stamps, err := e.tree.GlobStamped(pkg, g.Include, g.Exclude)
		if err != nil || !slices.Equal(got, g.Result) {
			return nil
		}
		if refreshed == nil {
			refreshed = slices.Clone(r.Globs)
		}
		refreshed[i].Stamps = stamps
	}
	if refreshed != nil {
		nr := *r
		nr.Globs = refreshed
		e.putRecord(pkg, &nr)
	}
	return r.Package
}

// store records a freshly evaluated package.
func (e *Evaluator) store(pkg *graph.Package, files map[string]cas.Digest, st *pkgState) {
	if e.kv == nil {
		return
	}
	wsd, err := e.workspaceDigest()
	if err != nil {
		return
	}
	e.putRecord(pkg.Name, &pkgRecord{
		Workspace: wsd,
		Ignore:    e.ws.Ignore,
		Files:     files,
		Globs:     st.globs,
		NotFiles:  sortedKeys(st.probes),
		Package:   pkg,
	})
}

func (e *Evaluator) putRecord(pkg string, r *pkgRecord) {
	e.snapMu.Lock()
	e.records[pkg] = r
	e.dirty = true
	e.snapMu.Unlock()
}

// dropRecord forgets a package that no longer exists.
func (e *Evaluator) dropRecord(pkg string) {
	if e.kv == nil {
		return
	}
	e.snapMu.Lock()
	if _, ok := e.records[pkg]; ok {
		delete(e.records, pkg)
		e.dirty = true
	}
	e.snapMu.Unlock()
}

// saveSnapshot writes the snapshot back if it changed. Failing to save is
// not an error: the next run evaluates the packages again.
func (e *Evaluator) saveSnapshot(ctx context.Context) {
	if e.kv == nil {
		return
	}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	if !e.dirty {
		return
	}
	if e.known != nil {
		for p := range e.records {
			if !e.known[p] {
				delete(e.records, p)
			}
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&snapshot{Version: e.version(), Records: e.records}); err != nil {
		return
	}
	if err := e.kv.PutKV(ctx, kvNamespace, e.ws.Root, buf.Bytes()); err != nil {
		return
	}
	e.dirty = false
}

// version is what a snapshot must have been written with: this
// evaluator's semantics and the standard library (@mc//) it loads, which
// is not among a record's files.
func (e *Evaluator) version() string {
	return evalVersion + "+" + e.stdlib
}

// workspaceDigest is the digest of WORKSPACE.mc, computed once.
func (e *Evaluator) workspaceDigest() (cas.Digest, error) {
	return e.digest(lang.WorkspaceFile)
}

type digestResult struct {
	d   cas.Digest
	err error
}

// digest returns the digest of a workspace file, asking the Digester once
// per Evaluator: many packages load the same .star files. Files are taken
// not to change during one invocation, as for the loaded modules.
func (e *Evaluator) digest(rel string) (cas.Digest, error) {
	if v, ok := e.digests.Load(rel); ok {
		r := v.(digestResult)
		return r.d, r.err
	}
	fi, err := e.dig.Digest(filepath.Join(e.ws.Root, filepath.FromSlash(rel)))
	e.digests.Store(rel, digestResult{fi.Digest, err})
	return fi.Digest, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.Sort(keys)
	return keys
}
