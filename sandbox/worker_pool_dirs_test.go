package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// inode returns the inode number of p.
func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestReshapeWithPool runs a worker's workspace through a sequence of
// shapes: after each reshape the workspace holds exactly the directories
// wanted, and a directory no longer needed waits in the pool, outside the
// workspace, to become one needed later (the same inode: no directory
// made or removed).
func TestReshapeWithPool(t *testing.T) {
	steps := []struct {
		want []string
		// reused names a directory of an earlier step expected to be
		// this step's directory (the same inode), from the pool or a
		// sibling rename.
		reused [2]string
		pooled int // trees in the pool afterwards
	}{
		{want: []string{"a", "a/src", "a/out", "b", "b/out"}},
		// b goes to the pool; a becomes c.
		{want: []string{"c", "c/src", "c/out"}, reused: [2]string{"a/out", "c/out"}, pooled: 1},
		// d comes from the pool (b's tree, with its out/).
		{want: []string{"c", "c/src", "c/out", "d", "d/out"}, reused: [2]string{"b/out", "d/out"}, pooled: 0},
		// Everything goes to the pool.
		{want: nil, pooled: 2},
		// The pooled tree most like the one wanted comes back: c's, with
		// src/ and out/.
		{want: []string{"e", "e/src", "e/out"}, reused: [2]string{"c/src", "e/src"}, pooled: 1},
	}
	sb := t.TempDir()
	dirs := &sandboxDirs{dir: sb, ws: filepath.Join(sb, "ws", "stage"), home: filepath.Join(sb, "home"), tmp: filepath.Join(sb, "tmp")}
	for _, d := range []string{dirs.ws, dirs.home, dirs.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ws := dirs.ws
	w := &worker{sb: dirs, shape: dirTree{}, pool: &dirPool{dir: filepath.Join(sb, "ws", "spare")}}
	inodes := map[string]uint64{} // every directory seen, by its path at the time
	for i, st := range steps {
		if err := w.reshape(set(st.want...)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var got []string
		for _, e := range tree(t, ws) {
			got = append(got, strings.TrimSuffix(e, "/"))
		}
		want := slices.Clone(st.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: workspace %q, want %q", i, got, want)
		}
		if st.reused[0] != "" {
			if old, ok := inodes[st.reused[0]]; !ok || inode(t, filepath.Join(ws, st.reused[1])) != old {
				t.Errorf("step %d: %s is not the former %s", i, st.reused[1], st.reused[0])
			}
		}
		if len(w.pool.trees) != st.pooled {
			t.Errorf("step %d: %d trees pooled, want %d", i, len(w.pool.trees), st.pooled)
		}
		for _, d := range st.want {
			inodes[d] = inode(t, filepath.Join(ws, d))
		}
		// A stage leaves files behind; clear takes them away and records
		// the shape the next reshape starts from.
		for _, d := range st.want {
			if err := os.WriteFile(filepath.Join(ws, d, "junk"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.clear(set(st.want...), false); err != nil {
			t.Fatalf("step %d: clear: %v", i, err)
		}
	}
}

// TestDirPoolBound: a pool keeps at most maxPooled trees; more are
// removed, and a pool without a directory removes everything.
func TestDirPoolBound(t *testing.T) {
	tests := []struct {
		name   string
		pooled bool
		put    int
		kept   int
	}{
		{"within the bound", true, 3, 3},
		{"over the bound", true, maxPooled + 2, maxPooled},
		{"no pool", false, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := &dirPool{}
			if tc.pooled {
				p.dir = filepath.Join(dir, "spare")
			}
			var srcs []string
			for i := range tc.put {
				src := filepath.Join(dir, "d"+strings.Repeat("x", i))
				if err := os.MkdirAll(filepath.Join(src, "out"), 0o755); err != nil {
					t.Fatal(err)
				}
				srcs = append(srcs, src)
				if err := p.put(src, dirTree{"out": {}}); err != nil {
					t.Fatal(err)
				}
			}
			for _, src := range srcs {
				if _, err := os.Stat(src); !os.IsNotExist(err) {
					t.Errorf("%s still there after put: %v", src, err)
				}
			}
			if len(p.trees) != tc.kept {
				t.Errorf("%d trees kept, want %d", len(p.trees), tc.kept)
			}
			n := 0
			if tc.pooled {
				ents, err := os.ReadDir(p.dir)
				if err != nil {
					t.Fatal(err)
				}
				n = len(ents)
			}
			if n != tc.kept {
				t.Errorf("%d directories in the pool, want %d", n, tc.kept)
			}
			// Everything put in can be taken out again, each once.
			for i := range tc.kept {
				dst := filepath.Join(dir, "taken"+strings.Repeat("y", i))
				got, ok, err := p.take(dst, dirTree{"out": {}})
				if err != nil || !ok {
					t.Fatalf("take %d: %v, %v", i, ok, err)
				}
				if _, err := os.Stat(filepath.Join(dst, "out")); err != nil || len(got) != 1 {
					t.Errorf("take %d: tree %v, out/: %v", i, got, err)
				}
			}
			if _, ok, err := p.take(filepath.Join(dir, "none"), nil); ok || err != nil {
				t.Errorf("take from an empty pool = %v, %v", ok, err)
			}
		})
	}
}
