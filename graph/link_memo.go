package graph

// memoPackages remembers IsPackage answers while one graph is linked:
// resolving a file label asks about every directory on its path (does
// pkg/src/BUILD.mc exist?), the same few directories for thousands of
// files. Link runs on one goroutine, so a plain map will do.
type memoPackages struct {
	PackageSource
	known map[string]bool
}

func (m *memoPackages) IsPackage(pkg string) bool {
	v, ok := m.known[pkg]
	if !ok {
		v = m.PackageSource.IsPackage(pkg)
		m.known[pkg] = v
	}
	return v
}
