package graph

import (
	"path"
	"sort"
	"strings"
)

// FileStatus says how a file differs from a revision.
type FileStatus int

const (
	FileModified FileStatus = iota
	FileAdded               // new (or the new name of a rename); untracked files too
	FileDeleted             // gone (or the old name of a rename)
)

// FileChange is one workspace file (workspace-relative slash path) that
// differs between a revision and the working tree.
type FileChange struct {
	Path   string
	Status FileStatus
}

// workspaceFile is the name of the workspace settings file.
const workspaceFile = "WORKSPACE.mc"

// ChangedTargets returns, sorted, the rule targets of g whose inputs are
// among changes:
//   - every target, when WORKSPACE.mc changed;
//   - every target of a package whose BUILD.mc changed, or any .star file
//     it loaded (directly or not);
//   - every target naming a changed file in srcs (or an image's files);
//   - every target of the package that owns a file that is gone (deleted,
//     or renamed away), and of the package enclosing a BUILD.mc that
//     appeared or disappeared (files moved between the two): a glob may
//     have matched the file, and which glob did is no longer known, so the
//     whole package counts.
//
// isPackage reports whether a directory is a package now; it finds the
// owner of a path that is gone.
func (g *Graph) ChangedTargets(changes []FileChange, isPackage func(string) bool) []Label {
	out := map[Label]bool{}
	addPkg := func(p string) {
		if pkg, ok := g.Packages[p]; ok {
			for _, t := range pkg.Targets {
				out[t.Label] = true
			}
		}
	}
	var users map[string][]Label // source path -> targets naming it
	var loaders map[string][]string
	for _, c := range changes {
		p := c.Path
		if p == workspaceFile {
			for l := range g.Targets {
				out[l] = true
			}
			break
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if base == "BUILD.mc" {
			addPkg(dir)
			if c.Status != FileModified && dir != "" {
				// The files of a package that appeared belonged to the
				// enclosing package before, and the other way round.
				if owner, ok := owningPackage(path.Dir(dir), isPackage); ok {
					addPkg(owner)
				}
			}
		}
		if strings.HasSuffix(base, ".star") { // loaded; maybe a source file too
			if loaders == nil {
				loaders = map[string][]string{}
				for name, pkg := range g.Packages {
					for _, f := range pkg.Loads {
						loaders[f] = append(loaders[f], name)
					}
				}
			}
			for _, pkg := range loaders[p] {
				addPkg(pkg)
			}
		}
		if users == nil {
			users = map[string][]Label{}
			for l, refs := range g.Refs {
				for _, r := range refs {
					if r.Kind == RefSource {
						f := path.Join(r.Label.Pkg, r.Label.Name)
						users[f] = append(users[f], l)
					}
				}
			}
		}
		for _, l := range users[p] {
			out[l] = true
		}
		if c.Status == FileDeleted {
			if owner, ok := owningPackage(dir, isPackage); ok {
				addPkg(owner)
			}
		}
	}
	labels := make([]Label, 0, len(out))
	for l := range out {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Less(labels[j]) })
	return labels
}

// owningPackage returns the package a file in directory dir belongs to:
// the nearest enclosing directory that is a package.
func owningPackage(dir string, isPackage func(string) bool) (string, bool) {
	if dir == "." {
		dir = ""
	}
	for {
		if isPackage(dir) {
			return dir, true
		}
		if dir == "" {
			return "", false
		}
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			dir = ""
		} else {
			dir = dir[:i]
		}
	}
}

// DependingOn returns the members of roots (in their order) that are in
// targets or depend on one of them, directly or transitively.
func (g *Graph) DependingOn(roots []Label, targets []Label) []Label {
	hit := map[Label]bool{}
	for _, l := range targets {
		hit[l] = true
	}
	memo := map[Label]bool{}
	var reaches func(l Label) bool
	reaches = func(l Label) bool {
		if v, ok := memo[l]; ok {
			return v
		}
		memo[l] = hit[l] // the graph is acyclic (Link checked it)
		if !hit[l] {
			for _, r := range g.Refs[l] {
				if r.Kind != RefSource && reaches(r.Label) {
					memo[l] = true
					break
				}
			}
		}
		return memo[l]
	}
	var out []Label
	for _, l := range roots {
		if reaches(l) {
			out = append(out, l)
		}
	}
	return out
}
