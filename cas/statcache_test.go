package cas

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingCache opens a StatCache over root whose hashes are counted.
func countingCache(t *testing.T, db *DB, root string) (*StatCache, *atomic.Int64) {
	t.Helper()
	sc, err := db.StatCache(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	sc.onHash = func(string) { n.Add(1) }
	return sc, &n
}

// oldFile writes a file and backdates its mtime past the racy window.
func oldFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	writeFile(t, path, content, mode)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

func digestOf(t *testing.T, sc *StatCache, p string) FileInfo {
	t.Helper()
	fi, err := sc.Digest(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestStatCacheHitAndMiss(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	a := filepath.Join(root, "a.txt")
	b := filepath.Join(root, "sub", "b.sh")
	oldFile(t, a, "alpha", 0o644)
	oldFile(t, b, "beta", 0o755)

	sc, hashes := countingCache(t, db, root)
	want := map[string]FileInfo{
		a: {Digest: FromBytes([]byte("alpha")), Size: 5},
		b: {Digest: FromBytes([]byte("beta")), Size: 4, Exec: true},
	}
	for p, w := range want {
		if got := digestOf(t, sc, p); got != w {
			t.Errorf("%s = %+v, want %+v", p, got, w)
		}
	}
	if hashes.Load() != 2 {
		t.Fatalf("hashed %d files, want 2", hashes.Load())
	}
	// Same cache, unchanged files: served from memory.
	for p, w := range want {
		if got := digestOf(t, sc, p); got != w {
			t.Errorf("%s again = %+v, want %+v", p, got, w)
		}
	}
	if hashes.Load() != 2 {
		t.Errorf("unchanged files rehashed in the same cache: %d", hashes.Load())
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// A new cache (a new mc process) reads the rows back.
	sc2, hashes2 := countingCache(t, db, root)
	for p, w := range want {
		if got := digestOf(t, sc2, p); got != w {
			t.Errorf("%s from db = %+v, want %+v", p, got, w)
		}
	}
	if hashes2.Load() != 0 {
		t.Errorf("unchanged files rehashed after reload: %d", hashes2.Load())
	}

	// Changes of every kind are noticed.
	changes := []struct {
		name   string
		change func(t *testing.T)
		path   string
		want   FileInfo
	}{
		{"content, same size", func(t *testing.T) { oldFile(t, a, "ALPHA", 0o644) }, a, FileInfo{Digest: FromBytes([]byte("ALPHA")), Size: 5}},
		{"content, other size", func(t *testing.T) { oldFile(t, a, "alphabet", 0o644) }, a, FileInfo{Digest: FromBytes([]byte("alphabet")), Size: 8}},
		{"mode", func(t *testing.T) {
			if err := os.Chmod(b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, b, FileInfo{Digest: FromBytes([]byte("beta")), Size: 4}},
		{"replaced by rename", func(t *testing.T) {
			tmp := filepath.Join(root, "tmp")
			oldFile(t, tmp, "gamma", 0o644)
			if err := os.Rename(tmp, a); err != nil {
				t.Fatal(err)
			}
		}, a, FileInfo{Digest: FromBytes([]byte("gamma")), Size: 5}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			sc, hashes := countingCache(t, db, root)
			c.change(t)
			if got := digestOf(t, sc, c.path); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			if hashes.Load() != 1 {
				t.Errorf("hashed %d times, want 1", hashes.Load())
			}
			if err := sc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sc2, hashes2 := countingCache(t, db, root)
			if got := digestOf(t, sc2, c.path); got != c.want {
				t.Errorf("after flush: got %+v, want %+v", got, c.want)
			}
			if hashes2.Load() != 0 {
				t.Errorf("new row not used: hashed %d times", hashes2.Load())
			}
		})
	}
}

func TestStatCacheRacyRule(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	p := filepath.Join(root, "fresh")
	writeFile(t, p, "just written", 0o644) // mtime is now

	sc, hashes := countingCache(t, db, root)
	got := digestOf(t, sc, p)
	if got.Digest != FromBytes([]byte("just written")) {
		t.Fatalf("racy file digest wrong: %+v", got)
	}
	// Not remembered, in memory or on disk.
	digestOf(t, sc, p)
	if hashes.Load() != 2 {
		t.Errorf("racy digest was cached in memory (hashes = %d)", hashes.Load())
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sc2, hashes2 := countingCache(t, db, root)
	digestOf(t, sc2, p)
	if hashes2.Load() != 1 {
		t.Errorf("racy digest was recorded (hashes = %d)", hashes2.Load())
	}

	// The window is measured against the clock: the same file is trusted
	// once its mtime is old enough.
	// A whole-second mtime suggests a coarse filesystem: 2 s window; a
	// sub-second one a fine filesystem: 100 ms window.
	coarse := time.Unix(1700000000, 0)
	fine := time.Unix(1700000000, 123456789)
	tests := []struct {
		name   string
		mtime  time.Time
		age    time.Duration
		record bool
	}{
		{"in the future", fine, -time.Minute, false},
		{"now", fine, 0, false},
		{"fine 50ms old", fine, 50 * time.Millisecond, false},
		{"fine 150ms old", fine, 150 * time.Millisecond, true},
		{"coarse 1.9s old", coarse, 1900 * time.Millisecond, false},
		{"coarse 2.1s old", coarse, 2100 * time.Millisecond, true},
		{"an hour old", fine, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.Chtimes(p, tt.mtime, tt.mtime); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			sc, _ := countingCache(t, db, root)
			sc.now = func() time.Time { return fi.ModTime().Add(tt.age) }
			digestOf(t, sc, p)
			sc.mu.Lock()
			_, recorded := sc.pending[p]
			sc.mu.Unlock()
			if recorded != tt.record {
				t.Errorf("recorded = %v, want %v", recorded, tt.record)
			}
		})
	}
}

func TestStatCacheErrors(t *testing.T) {
	db := newDB(t)
	root := t.TempDir()
	oldFile(t, filepath.Join(root, "f"), "x", 0o644)
	if err := os.Symlink("f", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nothing", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	sc, _ := countingCache(t, db, root)
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"directory", root, "is a directory"},
		{"missing", filepath.Join(root, "nope"), "no such file"},
		{"dangling symlink", filepath.Join(root, "dangling"), "no such file"},
		{"relative", "f", "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sc.Digest(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("symlink followed", func(t *testing.T) {
		got, err := sc.Digest(filepath.Join(root, "link"))
		if err != nil || got.Digest != FromBytes([]byte("x")) {
			t.Errorf("got %+v, %v", got, err)
		}
	})
}

func TestStatCacheLoadsOnlyRoot(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	base := t.TempDir()
	files := []string{"ws/a", "ws/sub/b", "ws2/c", "ws-x/d", "other/e"}
	sc, _ := countingCache(t, db, base)
	for _, f := range files {
		p := filepath.Join(base, f)
		oldFile(t, p, f, 0o644)
		digestOf(t, sc, p)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		root string
		want int
	}{
		{"ws", 2},
		{"ws/", 2},
		{"ws/sub", 1},
		{"ws2", 1},
		{"", 5},
		{"none", 0},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			sc, err := db.StatCache(ctx, filepath.Join(base, tt.root)+strings.Repeat("/", len(tt.root)-len(strings.TrimSuffix(tt.root, "/"))))
			if err != nil {
				t.Fatal(err)
			}
			if len(sc.rows) != tt.want {
				t.Errorf("loaded %d rows, want %d", len(sc.rows), tt.want)
			}
		})
	}
	t.Run("filesystem root", func(t *testing.T) {
		sc, err := db.StatCache(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.rows) != len(files) {
			t.Errorf("loaded %d rows, want %d", len(sc.rows), len(files))
		}
	})
}

func TestStatCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	const n = 50
	for i := range n {
		oldFile(t, filepath.Join(root, fmt.Sprint(i)), fmt.Sprint("content ", i), 0o644)
	}
	sc, hashes := countingCache(t, db, root)
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for range 4 {
		wg.Go(func() {
			for i := range n {
				fi, err := sc.Digest(filepath.Join(root, fmt.Sprint(i)))
				if err != nil {
					errs <- err
					continue
				}
				if fi.Digest != FromBytes([]byte(fmt.Sprint("content ", i))) {
					errs <- fmt.Errorf("file %d: wrong digest", i)
				}
			}
			if err := sc.Flush(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := hashes.Load(); h < n || h > 4*n {
		t.Errorf("hashed %d times, want between %d and %d", h, n, 4*n)
	}
	sc2, hashes2 := countingCache(t, db, root)
	for i := range n {
		digestOf(t, sc2, filepath.Join(root, fmt.Sprint(i)))
	}
	if hashes2.Load() != 0 {
		t.Errorf("%d rows missing after concurrent flushes", hashes2.Load())
	}
}

func TestStatCacheFlushRetriesAfterFailure(t *testing.T) {
	db := newDB(t)
	root := t.TempDir()
	p := filepath.Join(root, "f")
	oldFile(t, p, "x", 0o644)
	sc, _ := countingCache(t, db, root)
	digestOf(t, sc, p)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sc.Flush(canceled); err == nil {
		t.Fatal("Flush with a canceled context succeeded")
	}
	if err := sc.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc2, hashes := countingCache(t, db, root)
	digestOf(t, sc2, p)
	if hashes.Load() != 0 {
		t.Error("row lost by the failed flush")
	}
}

func TestPackedDirRoundTrip(t *testing.T) {
	ents := map[string]statRow{
		"a":                         {size: -1, mtime: 1 << 62, ctime: 42, ino: 1<<64 - 1, mode: 0o100755, digest: FromBytes([]byte("d"))},
		"b with spaces":             {size: 7, digest: Empty},
		strings.Repeat("long", 100): {mode: 0o100644},
	}
	b := packDir(ents)
	got := map[string]statRow{}
	if !unpackDir(b, func(n []byte, r statRow) { got[string(n)] = r }) {
		t.Fatal("unpackDir failed on packDir output")
	}
	if fmt.Sprint(got) != fmt.Sprint(ents) {
		t.Errorf("round trip:\n got %v\nwant %v", got, ents)
	}
	if string(packDir(ents)) != string(b) {
		t.Error("packDir is not deterministic")
	}
	for _, cut := range []int{1, packedRowSize, len(b) - 1} {
		n := 0
		if unpackDir(b[:len(b)-cut], func([]byte, statRow) { n++ }) {
			t.Errorf("truncated by %d accepted", cut)
		}
		if n >= len(ents) {
			t.Errorf("truncated by %d yielded %d entries", cut, n)
		}
	}
	if !unpackDir(nil, func([]byte, statRow) { t.Error("entry from nothing") }) {
		t.Error("empty input rejected")
	}
}

func TestStatCacheMalformedRowIsAMiss(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	p := filepath.Join(root, "f")
	oldFile(t, p, "x", 0o644)
	if _, err := db.SQL().Exec("INSERT INTO stat (dir, ents) VALUES (?, ?)", root, []byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	sc, hashes := countingCache(t, db, root)
	if got := digestOf(t, sc, p); got.Digest != FromBytes([]byte("x")) {
		t.Errorf("got %+v", got)
	}
	if hashes.Load() != 1 {
		t.Errorf("hashes = %d", hashes.Load())
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sc2, hashes2 := countingCache(t, db, root)
	digestOf(t, sc2, p)
	if hashes2.Load() != 0 {
		t.Error("malformed row not repaired by a flush")
	}
}

func TestStatCacheFlushDropsDeletedFiles(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	oldFile(t, a, "a", 0o644)
	oldFile(t, b, "b", 0o644)
	sc, _ := countingCache(t, db, root)
	digestOf(t, sc, a)
	digestOf(t, sc, b)
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// b is deleted; a later flush of its directory forgets it and keeps a.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(root, "c")
	oldFile(t, c, "c", 0o644)
	sc2, _ := countingCache(t, db, root)
	digestOf(t, sc2, c)
	if err := sc2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sc3, _ := countingCache(t, db, root)
	if _, ok := sc3.rows[b]; ok {
		t.Error("row of a deleted file kept")
	}
	for _, p := range []string{a, c} {
		if _, ok := sc3.rows[p]; !ok {
			t.Errorf("row of %s lost", p)
		}
	}
}

// BenchmarkStatCacheNullBuild measures what a null build of 10k files pays:
// loading the rows, then a stat and a map lookup per file.
func BenchmarkStatCacheNullBuild(b *testing.B) {
	ctx := context.Background()
	db, err := OpenDB(filepath.Join(b.TempDir(), "mc.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	root := b.TempDir()
	const n = 10000
	paths := make([]string, n)
	old := time.Now().Add(-time.Hour)
	sc, err := db.StatCache(ctx, root)
	if err != nil {
		b.Fatal(err)
	}
	for i := range paths {
		paths[i] = filepath.Join(root, fmt.Sprint(i%100), fmt.Sprint(i))
		os.MkdirAll(filepath.Dir(paths[i]), 0o755)
		if err := os.WriteFile(paths[i], []byte(paths[i]), 0o644); err != nil {
			b.Fatal(err)
		}
		os.Chtimes(paths[i], old, old)
		if _, err := sc.Digest(paths[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := sc.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.StatCache(ctx, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load+digest", func(b *testing.B) {
		for b.Loop() {
			sc, err := db.StatCache(ctx, root)
			if err != nil {
				b.Fatal(err)
			}
			var hashed int
			sc.onHash = func(string) { hashed++ }
			for _, p := range paths {
				if _, err := sc.Digest(p); err != nil {
					b.Fatal(err)
				}
			}
			if hashed != 0 {
				b.Fatalf("hashed %d files in a null build", hashed)
			}
		}
	})
}

// TestStatCacheLearn: a file placed from the store is recorded without
// being read, however new, as long as nothing but its ctime moved since it
// was placed (another hard link to the blob); a write, or a file that does
// not hold what the caller says, is not recorded. Without restat, the
// state seen when placing is recorded as it is.
func TestStatCacheLearn(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	content := []byte("placed output\n")
	info := FileInfo{Digest: FromBytes(content), Size: int64(len(content))}
	place := func(name string) (string, os.FileInfo) {
		p := filepath.Join(root, name)
		writeFile(t, p, string(content), 0o444) // new: racy for hash
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, fi
	}
	linked, linkedFI := place("linked.txt")
	// A sandbox links the blob and removes the link again: the ctime moves.
	time.Sleep(20 * time.Millisecond)
	if err := os.Link(linked, linked+".sandbox"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(linked + ".sandbox"); err != nil {
		t.Fatal(err)
	}
	written, writtenFI := place("written.txt")
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(written, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, written, "placed outpuT\n", 0o644)
	if err := os.Chmod(written, 0o444); err != nil {
		t.Fatal(err)
	}
	wrongSize, wrongSizeFI := place("short.txt")
	notExec, notExecFI := place("notexec.txt")
	asPlaced, asPlacedFI := place("asplaced.txt") // no stage ran: recorded without a stat

	sc, _ := countingCache(t, db, root)
	for _, c := range []struct {
		p    string
		info FileInfo
		fi   os.FileInfo
	}{
		{linked, info, linkedFI},
		{written, info, writtenFI},
		{wrongSize, FileInfo{Digest: info.Digest, Size: info.Size + 1}, wrongSizeFI},
		{notExec, FileInfo{Digest: info.Digest, Size: info.Size, Exec: true}, notExecFI},
	} {
		if err := sc.Learn(c.p, c.info, c.fi, true); err != nil {
			t.Fatalf("Learn(%s): %v", c.p, err)
		}
	}
	if err := sc.Learn(asPlaced, info, asPlacedFI, false); err != nil {
		t.Fatalf("Learn(%s) without a stat: %v", asPlaced, err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sc.Learn(filepath.Join(root, "missing"), info, linkedFI, true); err == nil {
		t.Error("Learn of a missing file: no error")
	}

	// A later build: only the linked file is known without a read.
	sc2, hashes := countingCache(t, db, root)
	for _, p := range []string{linked, asPlaced} {
		if got := digestOf(t, sc2, p); got != info {
			t.Errorf("%s = %+v, want %+v", p, got, info)
		}
	}
	if n := hashes.Load(); n != 0 {
		t.Errorf("the learned files were read again (%d reads)", n)
	}
	if got := digestOf(t, sc2, written); got.Digest != FromBytes([]byte("placed outpuT\n")) {
		t.Errorf("written = %+v: the write was not seen", got)
	}
	digestOf(t, sc2, wrongSize)
	digestOf(t, sc2, notExec)
	if n := hashes.Load(); n != 3 {
		t.Errorf("%d reads of the files not to be learned, want 3", n)
	}
}

// TestStatCacheStatServesOneDigest: a Stat's answer serves the next Digest
// of the path (link asks whether a label is a file, the key digests it:
// one stat(2)), and only that one.
func TestStatCacheStatServesOneDigest(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	root := t.TempDir()
	p := filepath.Join(root, "src.txt")
	oldFile(t, p, "before", 0o644)
	sc, _ := countingCache(t, db, root)
	digestOf(t, sc, p) // recorded
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	sc, hashes := countingCache(t, db, root)
	if _, err := sc.Stat(p); err != nil {
		t.Fatal(err)
	}
	oldFile(t, p, "after!", 0o644) // same size, another mtime
	if got := digestOf(t, sc, p); got.Digest != FromBytes([]byte("before")) || hashes.Load() != 0 {
		t.Errorf("Digest after Stat = %s with %d reads, want the file as Stat saw it, from the row", got.Digest.Short(), hashes.Load())
	}
	if got := digestOf(t, sc, p); got.Digest != FromBytes([]byte("after!")) || hashes.Load() != 1 {
		t.Errorf("second Digest = %s with %d reads, want the file as it is now", got.Digest.Short(), hashes.Load())
	}
	if _, err := sc.Stat(filepath.Join(root, "missing")); err == nil {
		t.Error("Stat of a missing file: no error")
	}
}
