package lang

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// age sets the mtime of everything under root an hour back, so that glob
// stamps are trusted.
func age(t *testing.T, root string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGlobStamps(t *testing.T) {
	files := map[string]string{
		"p/BUILD.mc":     "",
		"p/a.go":         "",
		"p/x/b.go":       "",
		"p/x/y/c.go":     "",
		"p/sub/BUILD.mc": "",
		"p/other/d.txt":  "",
	}
	changes := []struct {
		name   string
		change func(t *testing.T, root string)
	}{
		{"file added", func(t *testing.T, root string) { write(t, root, "p/x/y/new.go") }},
		{"file removed", func(t *testing.T, root string) { remove(t, root, "p/x/b.go") }},
		{"file renamed", func(t *testing.T, root string) { rename(t, root, "p/a.go", "p/z.go") }},
		{"directory added", func(t *testing.T, root string) { mkdir(t, root, "p/x/new") }},
		{"sub-package removed", func(t *testing.T, root string) { remove(t, root, "p/sub/BUILD.mc") }},
		{"sub-package added", func(t *testing.T, root string) { write(t, root, "p/x/y/BUILD.mc") }},
		{"file added in an unrelated directory the glob walked", func(t *testing.T, root string) { write(t, root, "p/other/e.txt") }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			root := writeTree(t, copyMap(files))
			tree := NewSourceTree(root, nil)
			age(t, root)
			got, stamps, err := tree.GlobStamped("p", []string{"**/*.go"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a.go", "x/b.go", "x/y/c.go"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			var dirs []string
			for _, s := range stamps {
				dirs = append(dirs, s.Dir)
			}
			if want := []string{"", "other", "sub", "x", "x/y"}; !reflect.DeepEqual(dirs, want) {
				t.Fatalf("stamped %q, want %q", dirs, want)
			}
			if !tree.StampsUnchanged("p", stamps) {
				t.Fatal("stamps changed without a change")
			}
			c.change(t, root)
			if tree.StampsUnchanged("p", stamps) {
				t.Error("change not seen by the stamps")
			}
		})
	}
}

func TestGlobStampsRacy(t *testing.T) {
	root := writeTree(t, map[string]string{"p/BUILD.mc": "", "p/a.go": ""})
	tree := NewSourceTree(root, nil)
	// Just written: the package directory's mtime is too recent to trust.
	got, stamps, err := tree.GlobStamped("p", []string{"*.go"}, nil)
	if err != nil || !reflect.DeepEqual(got, []string{"a.go"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	if stamps != nil {
		t.Errorf("got stamps %v for a directory changed just now, want nil", stamps)
	}
	// Directories skipped by the walk (hidden) are never stamped or read.
	age(t, root)
	mkdir(t, root, "p/.git")
	if _, stamps, _ = tree.GlobStamped("p", []string{"*.go"}, nil); stamps != nil {
		t.Errorf("package directory just changed: got stamps %v, want nil", stamps)
	}
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func write(t *testing.T, root, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, name)); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, root, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(root, from), filepath.Join(root, to)); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
		t.Fatal(err)
	}
}
