package cachegc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
)

// gcFixture is a store and database with results whose blobs have known sizes.
type gcFixture struct {
	t  *testing.T
	s  *cas.Store
	db *cas.DB
	// base is the creation time of the first result; results are created a
	// minute apart in the order they are added.
	base time.Time
	n    int
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	dir := t.TempDir()
	s, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	return &gcFixture{t: t, s: s, db: openDBAt(t, filepath.Join(dir, "mc.db")),
		base: time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)}
}

// blob stores n bytes made of c (plus a salt so equal sizes differ).
func (f *gcFixture) blob(c byte, n int, salt string) cas.Digest {
	f.t.Helper()
	b := []byte(salt + strings.Repeat(string(c), n-len(salt)))
	return mustPut(f.t, f.s, string(b))
}

// result records a result for label with the given file outputs and a log,
// created a minute after the previous one, and returns its key.
func (f *gcFixture) result(label string, log cas.Digest, outs ...cas.Output) cas.Digest {
	f.t.Helper()
	key := cas.FromBytes([]byte("key " + label))
	r := &cas.ActionResult{Label: label, Outputs: outs, Log: log, Created: f.base.Add(time.Duration(f.n) * time.Minute)}
	f.n++
	if err := f.db.RecordAction(context.Background(), "/ws", key, r); err != nil {
		f.t.Fatal(err)
	}
	return key
}

func fileOut(path string, d cas.Digest) cas.Output { return cas.Output{Path: path, Digest: d} }

// tree stores a directory output holding the given files and returns its output.
func (f *gcFixture) tree(path string, files map[string]cas.Digest) cas.Output {
	f.t.Helper()
	t := &cas.Tree{}
	for p, d := range files {
		t.Entries = append(t.Entries, cas.TreeEntry{Path: p, Digest: d})
	}
	d, err := f.s.PutBytes(t.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	return cas.Output{Path: path, Digest: d, IsDir: true}
}

func (f *gcFixture) gc(max int64) *GCReport {
	f.t.Helper()
	rep, err := GC(context.Background(), f.s, f.db, GCOptions{MaxSize: max})
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// has reports which of the keys still have a result.
func (f *gcFixture) has(keys ...cas.Digest) []bool {
	f.t.Helper()
	var out []bool
	for _, k := range keys {
		r, err := f.db.GetAction(context.Background(), k)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r != nil)
	}
	return out
}

// checkIntact fails if any remaining result names a blob (output, log, or
// file of a tree) that is not in the store, and returns the store's usage.
func (f *gcFixture) checkIntact() StoreUsage {
	f.t.Helper()
	ctx := context.Background()
	results, err := gcResults(ctx, f.db)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range results {
		for _, d := range r.trees {
			tr, err := f.s.GetTree(d)
			if err != nil {
				f.t.Errorf("result %s: tree %s: %v", r.key.Short(), d.Short(), err)
				continue
			}
			for _, e := range tr.Entries {
				r.needs = append(r.needs, e.Digest)
			}
		}
		for _, d := range r.needs {
			if !f.s.Has(d) {
				f.t.Errorf("result %s names blob %s, which is gone", r.key.Short(), d.Short())
			}
		}
	}
	u, err := Usage(ctx, f.s)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

func TestGCBudget(t *testing.T) {
	// Three results of 1000 bytes each (a 900-byte output and a 100-byte
	// log), created in order, and 500 bytes of blobs no result needs.
	setup := func(t *testing.T) (*gcFixture, []cas.Digest, []cas.Digest) {
		f := newGCFixture(t)
		var keys, garbage []cas.Digest
		for i, l := range []string{"//a:one", "//a:two", "//a:three"} {
			out := f.blob('o', 900, l)
			log := f.blob('l', 100, l)
			keys = append(keys, f.result(l, log, fileOut(fmt.Sprintf("a/out%d", i), out)))
		}
		garbage = append(garbage, f.blob('g', 200, "old"), f.blob('g', 300, "new"))
		// The older garbage blob is older on disk too.
		old := time.Now().Add(-48 * time.Hour)
		if err := os.Chtimes(f.s.Path(garbage[0]), old, old); err != nil {
			t.Fatal(err)
		}
		return f, keys, garbage
	}
	tests := []struct {
		name        string
		max         int64
		wantResults []bool // one, two, three
		wantGarbage []bool // old, new
		wantBytes   int64
	}{
		{"everything fits", 10000, []bool{true, true, true}, []bool{true, true}, 3500},
		{"oldest garbage first", 3300, []bool{true, true, true}, []bool{false, true}, 3300},
		{"all garbage, no result", 3000, []bool{true, true, true}, []bool{false, false}, 3000},
		{"least recent result", 2999, []bool{false, true, true}, []bool{false, false}, 2000},
		{"one result", 1500, []bool{false, false, true}, []bool{false, false}, 1000},
		{"nothing fits", 999, []bool{false, false, false}, []bool{false, false}, 0},
		{"zero empties", 0, []bool{false, false, false}, []bool{false, false}, 0},
		{"no limit: garbage only", -1, []bool{true, true, true}, []bool{false, false}, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, keys, garbage := setup(t)
			rep := f.gc(tt.max)
			if got := f.has(keys...); !slices.Equal(got, tt.wantResults) {
				t.Errorf("results kept = %v, want %v", got, tt.wantResults)
			}
			var got []bool
			for _, d := range garbage {
				got = append(got, f.s.Has(d))
			}
			if !slices.Equal(got, tt.wantGarbage) {
				t.Errorf("unneeded blobs kept = %v, want %v", got, tt.wantGarbage)
			}
			u := f.checkIntact()
			if u.Bytes != tt.wantBytes || rep.BytesAfter != tt.wantBytes {
				t.Errorf("store holds %d bytes, report says %d; want %d", u.Bytes, rep.BytesAfter, tt.wantBytes)
			}
			if tt.max >= 0 && u.Bytes > tt.max {
				t.Errorf("store holds %d bytes, over the budget of %d", u.Bytes, tt.max)
			}
			if rep.BytesBefore != 3500 || rep.BlobsBefore != 8 || rep.ResultsBefore != 3 {
				t.Errorf("before: %d bytes, %d blobs, %d results; want 3500, 8, 3", rep.BytesBefore, rep.BlobsBefore, rep.ResultsBefore)
			}
			removed := 0
			for _, ok := range tt.wantResults {
				if !ok {
					removed++
				}
			}
			if rep.ResultsRemoved != removed {
				t.Errorf("report: %d results removed, want %d", rep.ResultsRemoved, removed)
			}
			if rep.BlobsAfter != u.Blobs || rep.BytesRemoved != rep.BytesBefore-u.Bytes {
				t.Errorf("report %+v does not match the store's %+v", rep, u)
			}
		})
	}
}

func TestGCKeepsSharedAndTreeBlobs(t *testing.T) {
	f := newGCFixture(t)
	shared := f.blob('s', 400, "shared")
	// //t:old has a directory output whose files are only in its tree, and
	// shares a blob with //t:new, the most recent result.
	member := f.blob('m', 300, "member")
	dir := f.tree("t/dir", map[string]cas.Digest{"x/member": member, "shared": shared})
	oldKey := f.result("//t:old", cas.Zero, dir)
	bigKey := f.result("//t:big", cas.Zero, fileOut("t/big", f.blob('b', 5000, "big")))
	newKey := f.result("//t:new", f.blob('l', 50, "log"), fileOut("t/s", shared))
	treeSize := int64(len((&cas.Tree{Entries: []cas.TreeEntry{{Path: "shared", Digest: shared}, {Path: "x/member", Digest: member}}}).Encode()))

	// //t:big does not fit, //t:new does, and so does the older //t:old
	// (its shared blob is already counted).
	rep := f.gc(450 + 300 + treeSize)
	if got := f.has(oldKey, bigKey, newKey); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("results kept (old, big, new) = %v, want [true false true]", got)
	}
	for name, d := range map[string]cas.Digest{"shared": shared, "tree member": member, "tree": dir.Digest} {
		if !f.s.Has(d) {
			t.Errorf("the %s blob of a kept result was removed", name)
		}
	}
	if u := f.checkIntact(); u.Bytes != 450+300+treeSize {
		t.Errorf("store holds %d bytes, want %d", u.Bytes, 450+300+treeSize)
	}
	if rep.ResultsRemoved != 1 || rep.BlobsRemoved != 1 || rep.BytesRemoved != 5000 {
		t.Errorf("report = %+v, want one result and one 5000-byte blob removed", rep)
	}

	// Without room for the tree's files, //t:old goes, but the blob it
	// shares with //t:new stays.
	f.gc(450)
	if got := f.has(oldKey, newKey); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("results kept (old, new) = %v, want [false true]", got)
	}
	if f.s.Has(member) || f.s.Has(dir.Digest) {
		t.Error("the tree of a dropped result is still there")
	}
	if !f.s.Has(shared) {
		t.Error("a blob of a kept result was removed with a dropped result sharing it")
	}
	f.checkIntact()
}

func TestGCLeastRecentlyUsed(t *testing.T) {
	f := newGCFixture(t)
	var keys []cas.Digest
	for _, l := range []string{"//l:a", "//l:b", "//l:c"} {
		keys = append(keys, f.result(l, cas.Zero, fileOut("l/"+l[4:], f.blob('x', 100, l))))
	}
	// //l:a, the oldest, was a cache hit after the others were created.
	if err := f.db.TouchActions(context.Background(), keys[:1], f.base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.gc(250)
	if got := f.has(keys...); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("results kept (a, b, c) = %v, want [true false true]: b is the least recently used", got)
	}
	f.gc(150)
	if got := f.has(keys...); !slices.Equal(got, []bool{true, false, false}) {
		t.Errorf("results kept (a, b, c) = %v, want [true false false]: a was used last", got)
	}
	f.checkIntact()
}

func TestGCDroppedResultsLeaveLatest(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	f.result("//x:gone", cas.Zero, fileOut("x/g", f.blob('g', 100, "g")))
	kept := f.result("//x:kept", cas.Zero, fileOut("x/k", f.blob('k', 100, "k")))
	f.gc(100)
	latest, err := f.db.LatestActions(ctx, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := latest[kept]; !ok || len(latest) != 1 {
		t.Errorf("latest actions = %d entries, want only the kept one", len(latest))
	}
	var n int
	if err := f.db.SQL().QueryRow("SELECT count(*) FROM latest").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("latest table holds %d rows, want 1 (the dropped result's row goes with it)", n)
	}
}

func TestGCTempFiles(t *testing.T) {
	f := newGCFixture(t)
	stale := filepath.Join(f.s.TempDir(), "put-stale")
	fresh := filepath.Join(f.s.TempDir(), "put-fresh")
	writeFile(t, stale, "12345", 0o644)
	writeFile(t, fresh, "123", 0o644)
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	rep := f.gc(-1)
	if rep.TempFilesRemoved != 1 || rep.TempBytesRemoved != 5 {
		t.Errorf("temp files removed: %d (%d bytes), want 1 (5 bytes)", rep.TempFilesRemoved, rep.TempBytesRemoved)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a stale temp file is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a temp file a writer may still own was removed: %v", err)
	}
}

func TestGCMissingBlobsAndBadRows(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	// A result whose outputs are only in a shared cache costs nothing
	// locally, and neither does a row that does not decode (the oldest).
	remoteOnly := f.result("//r:remote", cas.Zero, fileOut("r/x", cas.FromBytes([]byte("not here"))),
		cas.Output{Path: "r/d", Digest: cas.FromBytes([]byte("no tree")), IsDir: true})
	bad := cas.FromBytes([]byte("bad row"))
	if _, err := f.db.SQL().Exec("INSERT INTO actions (key, label, result, created) VALUES (?, ?, ?, ?)",
		bad[:], "//r:bad", []byte{99}, f.base.Add(-time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	older := f.result("//r:older", cas.Zero, fileOut("r/o", f.blob('o', 100, "o")))
	newer := f.result("//r:newer", cas.Zero, fileOut("r/n", f.blob('n', 100, "n")))
	rep := f.gc(150)
	if got := f.has(remoteOnly, older, newer); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("results kept (remote-only, older, newer) = %v, want [true false true]", got)
	}
	var n int
	if err := f.db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM actions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 || rep.ResultsRemoved != 1 {
		t.Errorf("%d rows left, %d removed; want 3 left (the bad row kept), 1 removed", n, rep.ResultsRemoved)
	}
	if rep := f.gc(0); rep.ResultsRemoved != 3 {
		t.Errorf("gc to 0 removed %d results, want 3", rep.ResultsRemoved)
	}
}

func TestGCCanceled(t *testing.T) {
	f := newGCFixture(t)
	key := f.result("//c:c", cas.Zero, fileOut("c/c", f.blob('c', 100, "c")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GC(ctx, f.s, f.db, GCOptions{MaxSize: 0}); err == nil {
		t.Fatal("GC with a canceled context succeeded")
	}
	if got := f.has(key); !got[0] {
		t.Error("a canceled GC removed a result")
	}
	f.checkIntact()
}

func TestGCZeroEmptiesEverything(t *testing.T) {
	f := newGCFixture(t)
	// Nothing local costs a byte: an empty blob no result needs, and a
	// result whose outputs are only in a shared cache.
	empty := mustPut(t, f.s, "")
	key := f.result("//z:remote", cas.Zero, fileOut("z/x", cas.FromBytes([]byte("elsewhere"))))
	rep := f.gc(0)
	if f.has(key)[0] || f.s.Has(empty) {
		t.Errorf("after gc to 0: result kept %v, empty blob kept %v; want neither", f.has(key)[0], f.s.Has(empty))
	}
	if rep.ResultsRemoved != 1 || rep.BlobsRemoved != 1 || rep.BlobsAfter != 0 {
		t.Errorf("report = %+v", rep)
	}
}

func TestGCCountsABlobOnce(t *testing.T) {
	f := newGCFixture(t)
	older := f.result("//d:older", cas.Zero, fileOut("d/o", f.blob('o', 50, "o")))
	// Two outputs with the same content, which is the log too: 100 bytes.
	d := f.blob('d', 100, "dup")
	key := f.result("//d:dup", d, fileOut("d/a", d), fileOut("d/b", d))
	f.gc(100)
	if got := f.has(older, key); !slices.Equal(got, []bool{false, true}) || !f.s.Has(d) {
		t.Errorf("results kept (older, dup) = %v, want [false true]: dup needs one 100-byte blob three times", got)
	}
}
