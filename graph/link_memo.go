package graph

import "sync"

// memoPackages remembers IsPackage answers while one graph is linked:
// resolving a file label asks about every directory on its path (does
// pkg/src/BUILD.mc exist?), the same few directories for thousands of
// files. Targets are resolved in parallel, hence the lock; the question is
// asked outside it, and asked twice at worst.
type memoPackages struct {
	PackageSource
	mu    sync.Mutex
	known map[string]bool
}

func (m *memoPackages) IsPackage(pkg string) bool {
	m.mu.Lock()
	v, ok := m.known[pkg]
	m.mu.Unlock()
	if !ok {
		v = m.PackageSource.IsPackage(pkg)
		m.mu.Lock()
		m.known[pkg] = v
		m.mu.Unlock()
	}
	return v
}
