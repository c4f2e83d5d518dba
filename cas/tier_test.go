package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
)

// tiers returns a trusted store and an untrusted one reading through to it.
func tiers(t *testing.T) (trusted, untrusted *Store) {
	t.Helper()
	dir := t.TempDir()
	trusted, err := OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err = OpenStore(filepath.Join(UntrustedDir(dir), "cas"))
	if err != nil {
		t.Fatal(err)
	}
	if err := untrusted.ReadThrough(trusted); err != nil {
		t.Fatal(err)
	}
	return trusted, untrusted
}

// snapshot lists every file under dir with its inode, size, mode and
// modification time: any write, removal or replacement changes it.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		out = append(out, fmt.Sprintf("%s ino=%d size=%d mode=%v mtime=%d ctime=%d", p, st.Ino, fi.Size(), fi.Mode(), st.Mtim.Nano(), st.Ctim.Nano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestUntrustedStoreReadsTrustedBlobsAsCopies(t *testing.T) {
	trusted, untrusted := tiers(t)
	d := mustPut(t, trusted, "built by main")
	if untrusted.Base() != trusted {
		t.Fatal("Base is not the trusted store")
	}
	if !untrusted.Has(d) {
		t.Fatal("the untrusted store does not see a trusted blob")
	}
	b, err := untrusted.ReadBytes(d)
	if err != nil || string(b) != "built by main" {
		t.Fatalf("ReadBytes = %q, %v", b, err)
	}
	if inode(t, untrusted.Path(d)) == inode(t, trusted.Path(d)) {
		t.Fatal("the untrusted store's blob is the trusted blob's inode: a write through it would reach the trusted tier")
	}
	// Size and Open find it too, as does a blob asked for first by Size.
	d2 := mustPut(t, trusted, "second")
	if n, err := untrusted.Size(d2); err != nil || n != 6 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	d3 := mustPut(t, trusted, "third")
	r, err := untrusted.Open(d3)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// What neither tier holds is still missing.
	if untrusted.Has(FromBytes([]byte("nowhere"))) {
		t.Fatal("Has of an absent blob")
	}
	if _, err := untrusted.ReadBytes(FromBytes([]byte("nowhere"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadBytes of an absent blob: %v", err)
	}
}

// The attack: a stage of an untrusted build gets a trusted blob as a
// (hard-linked) input, makes it writable and overwrites it. The trusted
// blob must keep its bytes. Positive control: the same write to an input
// materialized from the trusted store itself does reach the blob, so the
// probe can fail.
func TestUntrustedInputWriteNeverReachesTrustedBlob(t *testing.T) {
	poison := func(s *Store, d Digest) string {
		dst := filepath.Join(t.TempDir(), "input")
		if err := s.Materialize(d, dst, false, true); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte("poison"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}

	trusted, untrusted := tiers(t)
	d := mustPut(t, trusted, "compiler output")
	poison(untrusted, d)
	if err := trusted.Verify(d); err != nil {
		t.Fatalf("the trusted blob changed after an untrusted stage wrote its input: %v", err)
	}

	// Positive control.
	ctl := newStore(t)
	dc := mustPut(t, ctl, "compiler output")
	poison(ctl, dc)
	if err := ctl.Verify(dc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("control: a write to an input linked from the store itself left the blob intact (%v): the probe cannot fail", err)
	}
}

// Everything the untrusted store writes or removes stays in its own
// directory: the trusted store's directory is byte for byte, inode for
// inode, what it was. Positive control: the same snapshot sees a write to
// the trusted store.
func TestUntrustedStoreNeverWritesTrustedTier(t *testing.T) {
	trusted, untrusted := tiers(t)
	shared := mustPut(t, trusted, "shared content")
	gone := mustPut(t, trusted, "to be removed by the untrusted tier")
	before := snapshot(t, trusted.Dir())

	// Reads that copy in.
	if !untrusted.Has(shared) || !untrusted.Has(gone) {
		t.Fatal("trusted blobs not visible")
	}
	// Writes of new content and of content the trusted tier has.
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, "shared content", 0o644)
	if _, _, err := untrusted.PutFile(src); err != nil {
		t.Fatal(err)
	}
	mustPut(t, untrusted, "new untrusted content")
	out := filepath.Join(untrusted.TempDir(), "out")
	writeFile(t, out, "an untrusted stage's output", 0o644)
	if _, _, err := untrusted.AdoptFile(out); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	writeFile(t, filepath.Join(tree, "a"), "shared content", 0o644)
	writeFile(t, filepath.Join(tree, "b"), "tree file", 0o755)
	if _, _, err := untrusted.PutTree(tree, false); err != nil {
		t.Fatal(err)
	}
	// Removal, and corruption found by verification, of a copied blob.
	if err := untrusted.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(untrusted.Path(shared), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(untrusted.Path(shared), []byte("tampered in the untrusted tier"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := untrusted.Verify(shared); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of the tampered copy: %v", err)
	}
	if err := untrusted.Sync(); err != nil {
		t.Fatal(err)
	}

	after := snapshot(t, trusted.Dir())
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the trusted store changed:\nbefore %q\nafter  %q", before, after)
	}
	// The removed and tampered copies come back, verified, from the
	// trusted tier.
	if b, err := untrusted.ReadBytes(shared); err != nil || string(b) != "shared content" {
		t.Fatalf("after the tampered copy was dropped: %q, %v", b, err)
	}

	// Positive control: the snapshot does see a write.
	mustPut(t, trusted, "written to the trusted store")
	if fmt.Sprint(before) == fmt.Sprint(snapshot(t, trusted.Dir())) {
		t.Fatal("control: a write to the trusted store left the snapshot unchanged")
	}
}

// A trusted blob that does not match its digest is not used by the
// untrusted tier, and the untrusted tier does not delete it.
func TestUntrustedStoreSkipsCorruptTrustedBlob(t *testing.T) {
	trusted, untrusted := tiers(t)
	d := mustPut(t, trusted, "original")
	p := trusted.Path(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if untrusted.Has(d) {
		t.Fatal("a corrupt trusted blob was taken into the untrusted tier")
	}
	if _, err := untrusted.ReadBytes(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadBytes: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the untrusted tier removed the trusted blob: %v", err)
	}
}

func TestReadThroughRefusesItselfAndChains(t *testing.T) {
	trusted, untrusted := tiers(t)
	if err := trusted.ReadThrough(trusted); err == nil {
		t.Fatal("a store reads through to itself")
	}
	third := newStore(t)
	if err := third.ReadThrough(untrusted); err == nil {
		t.Fatal("a store reads through to a store that reads through")
	}
}

// The trusted action cache as an untrusted build opens it refuses writes
// at the SQLite level; it reads what the trusted build recorded. Positive
// control: the same write through the ordinary handle succeeds.
func TestReadOnlyDBRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mc.db")
	rw, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	key := FromBytes([]byte("key"))
	res := &ActionResult{Label: "//p:a", Log: Empty}
	if err := rw.PutAction(context.Background(), key, res); err != nil {
		t.Fatalf("control: a write through the ordinary handle failed: %v", err)
	}
	ro, err := OpenDBReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, err := ro.GetAction(context.Background(), key)
	if err != nil || got == nil || got.Label != "//p:a" {
		t.Fatalf("GetAction = %+v, %v", got, err)
	}
	other := FromBytes([]byte("other"))
	if err := ro.PutAction(context.Background(), other, res); err == nil {
		t.Fatal("a write through the read-only handle succeeded")
	}
	if err := ro.DeleteAction(context.Background(), key); err == nil {
		t.Fatal("a delete through the read-only handle succeeded")
	}
	if got, _ := rw.GetAction(context.Background(), other); got != nil {
		t.Fatal("the read-only handle's write reached the database")
	}
	if _, err := OpenDBReadOnly(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Fatal("a missing database opened")
	}
}
