package watch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// collect reads batches until one holds marker, failing after a deadline,
// and returns every change seen by path.
func collect(t *testing.T, w *Watcher, marker string) map[string]Op {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := map[string]Op{}
	for {
		b, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a batch with %s: %v (seen %v)", marker, err, seen)
		}
		for _, c := range b.Changes {
			seen[c.Path] |= c.Op
		}
		if _, ok := seen[marker]; ok {
			return seen
		}
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatcher runs a real inotify watch over a temporary tree: edits,
// editors' atomic saves and new directories are reported workspace-
// relative; mc-out, hidden directories (.git) and ignored ones are not.
// Each case ends with a marker file, so that "not reported" is checked
// against batches that did arrive, not against a sleep.
func TestWatcher(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "mc-out/a", ".git/objects", "ignored/x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, root, "a/x.txt", "1")
	w, err := New(root, Options{Quiet: 20 * time.Millisecond, Max: time.Second,
		SkipDir: func(rel string) bool { return rel == "ignored" }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	write(t, root, "a/x.txt", "2")
	if got := collect(t, w, "a/x.txt"); got["a/x.txt"]&Written == 0 {
		t.Errorf("edit: %v, want a/x.txt written", got)
	}

	write(t, root, "mc-out/a/out.txt", "o")
	write(t, root, ".git/objects/o", "o")
	write(t, root, "ignored/x/i.txt", "i")
	write(t, root, "a/b/marker1", "")
	got := collect(t, w, "a/b/marker1")
	for p := range got {
		if strings.HasPrefix(p, "mc-out/") || strings.HasPrefix(p, ".git/") || strings.HasPrefix(p, "ignored/") {
			t.Errorf("reported %s, which is not watched", p)
		}
	}

	// vim-style save: write a temporary file, rename it over the original.
	write(t, root, "a/.x.txt.swp", "3")
	if err := os.Rename(filepath.Join(root, "a/.x.txt.swp"), filepath.Join(root, "a/x.txt")); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, w, "a/x.txt"); got["a/x.txt"]&Created == 0 {
		t.Errorf("atomic save: %v, want a/x.txt created", got)
	}

	// A new directory is watched from then on.
	write(t, root, "a/new/deep/f.txt", "f")
	collect(t, w, "a/new/deep/f.txt")
	write(t, root, "a/new/deep/f.txt", "g")
	if got := collect(t, w, "a/new/deep/f.txt"); got["a/new/deep/f.txt"]&Written == 0 {
		t.Errorf("edit in a new directory: %v", got)
	}
}
