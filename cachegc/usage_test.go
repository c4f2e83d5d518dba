package cachegc

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/history"
)

func TestStoreUsage(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	u, err := Usage(ctx, s)
	if err != nil || u != (StoreUsage{}) {
		t.Fatalf("empty store: %+v, %v", u, err)
	}
	mustPut(t, s, "hello")
	mustPut(t, s, strings.Repeat("x", 1000))
	mustPut(t, s, "hello") // stored once
	// Files that are not blobs are not counted as blobs.
	d := cas.FromBytes([]byte("stray"))
	writeFile(t, filepath.Join(s.Dir(), d.Hex()[:2], "notablob"), "abc", 0o644)
	writeFile(t, filepath.Join(s.Dir(), "zz", strings.Repeat("z", 64)), "abc", 0o644)
	writeFile(t, filepath.Join(s.Dir(), d.Hex()[2:4], d.Hex()), "abc", 0o644) // wrong shard
	writeFile(t, filepath.Join(s.TempDir(), "put-1"), "temp!", 0o644)
	u, err = Usage(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := StoreUsage{Blobs: 2, Bytes: 1005, TempFiles: 1, TempBytes: 5}
	if u != want {
		t.Errorf("usage = %+v, want %+v", u, want)
	}
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := Usage(ctx, s); err == nil {
		t.Error("usage of a removed store succeeded")
	}
}

func TestDBCounts(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if n, err := CountActions(ctx, db); err != nil || n != 0 {
		t.Fatalf("CountActions = %d, %v", n, err)
	}
	r := sampleResult()
	for _, k := range []string{"a", "b"} {
		if err := db.PutAction(ctx, cas.FromBytes([]byte(k)), r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := CountActions(ctx, db); err != nil || n != 2 {
		t.Errorf("CountActions = %d, %v; want 2", n, err)
	}
	if n, err := DBSize(ctx, db); err != nil || n <= 0 {
		t.Errorf("Size = %d, %v; want > 0", n, err)
	}
}

func TestPurgeQueries(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := sampleResult() // label //svc/api:build
	k1, k2, k3 := cas.FromBytes([]byte("k1")), cas.FromBytes([]byte("k2")), cas.FromBytes([]byte("k3"))
	if err := db.RecordAction(ctx, "/ws", k1, r); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordAction(ctx, "/ws", k2, r); err != nil {
		t.Fatal(err)
	}
	other := sampleResult()
	other.Label = "//svc/web:build"
	if err := db.RecordAction(ctx, "/ws", k3, other); err != nil {
		t.Fatal(err)
	}
	// History knows another key of //svc/api:build whose result is gone,
	// and a label with no result at all.
	hist := []history.StageRecord{stageRec("//svc/api:build", "old", history.StageBuilt), stageRec("//gone:x", "x", history.StageBuilt)}
	if _, err := history.RecordRun(ctx, db, "/ws", "build //...", 10, hist); err != nil {
		t.Fatal(err)
	}
	labels, err := KnownLabels(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"//gone:x", "//svc/api:build", "//svc/web:build"}; !slices.Equal(labels, want) {
		t.Errorf("KnownLabels = %q, want %q", labels, want)
	}
	keys, local, err := KeysOf(ctx, db, "//svc/api:build")
	if err != nil {
		t.Fatal(err)
	}
	histKey := hist[0].Key
	want := []cas.Digest{k1, k2, histKey}
	slices.SortFunc(want, compareDigests)
	if !slices.Equal(keys, want) {
		t.Errorf("KeysOf = %d keys, want k1, k2 and the history's key", len(keys))
	}
	if !local[k1] || !local[k2] || local[histKey] {
		t.Errorf("KeysOf local = %v, want k1 and k2 only", local)
	}
	n, err := DeleteActions(ctx, db, keys)
	if err != nil || n != 2 {
		t.Fatalf("DeleteActions = %d, %v; want 2", n, err)
	}
	latest, err := db.LatestActions(ctx, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := latest[k3]; !ok || len(latest) != 1 {
		t.Errorf("latest after delete: %d entries, want only //svc/web:build's", len(latest))
	}
	var rows int
	if err := db.SQL().QueryRow("SELECT count(*) FROM latest").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("latest rows = %d, %v; want 1", rows, err)
	}
	if n, err := DeleteActions(ctx, db, nil); err != nil || n != 0 {
		t.Errorf("DeleteActions(nil) = %d, %v", n, err)
	}
}
