package cas

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStatCacheDropStats: a stat kept by Stat for a later Digest is stale
// once the file changes (a cache kept across builds, as mc watch keeps
// it): without DropStats the old content's digest comes back (the positive
// control, showing the hazard is real); after it, the new one.
func TestStatCacheDropStats(t *testing.T) {
	db := newDB(t)
	root := t.TempDir()
	p := filepath.Join(root, "src.txt")
	oldFile(t, p, "old", 0o644)
	sc, _ := countingCache(t, db, root)
	before := digestOf(t, sc, p)

	edit := func(content string) {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(-30 * time.Minute) // past the racy window, unlike the old stat's
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Stat(p); err != nil {
		t.Fatal(err)
	}
	edit("new")
	if got := digestOf(t, sc, p); got.Digest != before.Digest {
		t.Fatalf("control: the kept stat did not serve the old digest (got %v); the test shows nothing", got.Digest)
	}

	if _, err := sc.Stat(p); err != nil {
		t.Fatal(err)
	}
	edit("newer")
	sc.DropStats()
	if got := digestOf(t, sc, p); got.Digest != FromBytes([]byte("newer")) {
		t.Errorf("after DropStats: digest %v, want that of the file as it is", got.Digest)
	}
}
