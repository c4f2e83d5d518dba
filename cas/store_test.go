package cas

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path string, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

func mustPut(t *testing.T, s *Store, content string) Digest {
	t.Helper()
	d, err := s.PutBytes([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tamper overwrites the blob d with other content, as a user or a buggy
// stage writing through a hard link could.
func tamper(t *testing.T, s *Store, d Digest, content string) {
	t.Helper()
	p := s.Path(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStoreLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != root {
		t.Errorf("Dir() = %q, want %q", s.Dir(), root)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || !fi.IsDir() {
		t.Errorf("tmp dir not created: %v", err)
	}
	d := FromBytes([]byte("x"))
	want := filepath.Join(root, d.Hex()[:2], d.Hex())
	if got := s.Path(d); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}

func TestOpenStoreCleansStaleTemps(t *testing.T) {
	root := t.TempDir()
	if _, err := OpenStore(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "tmp", "put-stale")
	fresh := filepath.Join(root, "tmp", "put-fresh")
	writeFile(t, stale, "half a blob", 0o600)
	writeFile(t, fresh, "being written", 0o600)
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp removed: %v", err)
	}
}

func TestPutBytesAndRead(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"small", []byte("hello\n")},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}, // 1 MiB, several copy buffers
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			want := FromBytes(tt.content)
			if s.Has(want) {
				t.Fatal("Has before Put")
			}
			d, err := s.PutBytes(tt.content)
			if err != nil {
				t.Fatal(err)
			}
			if d != want {
				t.Fatalf("PutBytes = %s, want %s", d, want)
			}
			if !s.Has(d) {
				t.Fatal("Has after Put = false")
			}
			fi, err := os.Stat(s.Path(d))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("blob mode = %v, want 0444", fi.Mode().Perm())
			}
			got, err := s.ReadBytes(d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.content) {
				t.Error("ReadBytes returned other content")
			}
			rc, err := s.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.content) {
				t.Error("Open returned other content")
			}
			if err := s.Verify(d); err != nil {
				t.Errorf("Verify: %v", err)
			}
			// A second put is a no-op and leaves no temp behind.
			if d2, err := s.PutBytes(tt.content); err != nil || d2 != d {
				t.Errorf("second PutBytes = %s, %v", d2, err)
			}
			assertNoTemps(t, s)
		})
	}
}

func assertNoTemps(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("temp files left behind: %v", ents)
	}
}

func TestMissingBlob(t *testing.T) {
	s := newStore(t)
	d := FromBytes([]byte("never stored"))
	checks := []struct {
		name string
		err  func() error
	}{
		{"Open", func() error { _, err := s.Open(d); return err }},
		{"ReadBytes", func() error { _, err := s.ReadBytes(d); return err }},
		{"Verify", func() error { return s.Verify(d) }},
		{"Materialize copy", func() error { return s.Materialize(d, filepath.Join(t.TempDir(), "f"), false, false) }},
		{"Materialize link", func() error { return s.Materialize(d, filepath.Join(t.TempDir(), "f"), false, true) }},
		{"MaterializeTree", func() error { return s.MaterializeTree(d, filepath.Join(t.TempDir(), "d"), false) }},
		{"GetTree", func() error { _, err := s.GetTree(d); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("err = %v, want fs.ErrNotExist too", err)
			}
		})
	}
	if s.Has(d) {
		t.Error("Has(missing) = true")
	}
	if err := s.Remove(d); err != nil {
		t.Errorf("Remove(missing) = %v, want nil", err)
	}
}

func TestRemove(t *testing.T) {
	s := newStore(t)
	d := mustPut(t, s, "bye")
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	if s.Has(d) {
		t.Error("Has after Remove")
	}
}

func TestExistingBlobNeverReplaced(t *testing.T) {
	// Readers and hard links share a blob's inode, so a racing writer that
	// lost must leave it alone.
	s := newStore(t)
	d := mustPut(t, s, "first")
	before, err := os.Stat(s.Path(d))
	if err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(t.TempDir(), "late")
	writeFile(t, late, "first", 0o444)
	if err := s.renameIn(late, d); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(s.Path(d))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("blob replaced by a later writer")
	}
	if _, err := os.Stat(late); err != nil {
		t.Errorf("loser's file should be left for its owner: %v", err)
	}
}

func TestPutFile(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "src.txt")
	writeFile(t, p, "source content", 0o644)
	d, n, err := s.PutFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if d != FromBytes([]byte("source content")) || n != int64(len("source content")) {
		t.Fatalf("PutFile = %s, %d", d, n)
	}
	if got, err := s.ReadBytes(d); err != nil || string(got) != "source content" {
		t.Fatalf("ReadBytes = %q, %v", got, err)
	}
	// The source is untouched (a copy, not a move).
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("source changed: %v %v", fi, err)
	}
	if same(t, p, s.Path(d)) {
		t.Error("PutFile linked the source instead of copying it")
	}
	// Present already: same answer, no temp left.
	if d2, n2, err := s.PutFile(p); err != nil || d2 != d || n2 != n {
		t.Errorf("second PutFile = %s, %d, %v", d2, n2, err)
	}
	assertNoTemps(t, s)

	t.Run("directory", func(t *testing.T) {
		if _, _, err := s.PutFile(dir); err == nil {
			t.Error("PutFile(dir) succeeded")
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, _, err := s.PutFile(filepath.Join(dir, "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want not exist", err)
		}
	})
}

func same(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

func TestPutFileExpect(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "actual", 0o644)
	tests := []struct {
		name    string
		want    Digest
		wantErr error
	}{
		{"match", FromBytes([]byte("actual")), nil},
		{"mismatch", FromBytes([]byte("expected")), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			err := s.PutFileExpect(p, tt.want)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := s.Has(tt.want); got != (tt.wantErr == nil) {
				t.Errorf("Has(want) = %v", got)
			}
			if tt.wantErr != nil && s.Has(FromBytes([]byte("actual"))) {
				t.Error("mismatching content was stored under its own digest")
			}
			assertNoTemps(t, s)
		})
	}
	t.Run("present blob is not reread", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "stored")
		// The path does not even exist: a present blob needs no reading.
		if err := s.PutFileExpect(filepath.Join(dir, "missing"), d); err != nil {
			t.Errorf("err = %v", err)
		}
	})
}

func TestAdoptFile(t *testing.T) {
	t.Run("moves the file", func(t *testing.T) {
		s := newStore(t)
		p := filepath.Join(t.TempDir(), "out", "bin")
		writeFile(t, p, "output bytes", 0o755)
		before, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := s.AdoptFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if d != FromBytes([]byte("output bytes")) || n != 12 {
			t.Fatalf("AdoptFile = %s, %d", d, n)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("source still there: %v", err)
		}
		after, err := os.Stat(s.Path(d))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(before, after) {
			t.Error("blob is a copy, not the adopted file")
		}
		if after.Mode().Perm() != 0o444 {
			t.Errorf("blob mode = %v", after.Mode().Perm())
		}
		if err := s.Verify(d); err != nil {
			t.Error(err)
		}
	})
	t.Run("blob present: file left alone", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "dup")
		p := filepath.Join(t.TempDir(), "dup")
		writeFile(t, p, "dup", 0o644)
		got, _, err := s.AdoptFile(p)
		if err != nil || got != d {
			t.Fatalf("AdoptFile = %s, %v", got, err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("source changed: %v, %v", fi, err)
		}
		if same(t, p, s.Path(d)) {
			t.Error("existing blob replaced")
		}
	})
	t.Run("symlink rejected", func(t *testing.T) {
		s := newStore(t)
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "target"), "x", 0o644)
		if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.AdoptFile(filepath.Join(dir, "link")); err == nil {
			t.Error("adopted a symlink")
		}
	})
	t.Run("across filesystems", func(t *testing.T) {
		s := newStore(t)
		other, err := os.MkdirTemp("/dev/shm", "mc-cas-test-")
		if err != nil {
			t.Skipf("no /dev/shm to test cross-filesystem adoption: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(other) })
		if deviceOf(t, other) == deviceOf(t, s.Dir()) {
			t.Skip("/dev/shm is on the store's filesystem; cannot test EXDEV fallback")
		}
		p := filepath.Join(other, "f")
		writeFile(t, p, "far away", 0o644)
		d, _, err := s.AdoptFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.ReadBytes(d); err != nil || string(got) != "far away" {
			t.Errorf("ReadBytes = %q, %v", got, err)
		}
	})
}

func deviceOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Dev)
}

// TestCorruptBlobDetected tampers with a stored blob and checks that every
// way of using it notices, reports ErrCorrupt and removes the blob.
func TestCorruptBlobDetected(t *testing.T) {
	tests := []struct {
		name string
		use  func(s *Store, d Digest, t *testing.T) error
	}{
		{"Open", func(s *Store, d Digest, t *testing.T) error {
			rc, err := s.Open(d)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			return err
		}},
		{"ReadBytes", func(s *Store, d Digest, t *testing.T) error { _, err := s.ReadBytes(d); return err }},
		{"Verify", func(s *Store, d Digest, t *testing.T) error { return s.Verify(d) }},
		{"GetTree", func(s *Store, d Digest, t *testing.T) error { _, err := s.GetTree(d); return err }},
		{"Materialize copy", func(s *Store, d Digest, t *testing.T) error {
			return s.Materialize(d, filepath.Join(t.TempDir(), "f"), false, false)
		}},
		{"Materialize exec", func(s *Store, d Digest, t *testing.T) error {
			return s.Materialize(d, filepath.Join(t.TempDir(), "f"), true, true)
		}},
	}
	for _, tt := range tests {
		for _, tamperWith := range []string{"same-len", "much longer content"} {
			t.Run(tt.name+"/"+tamperWith, func(t *testing.T) {
				s := newStore(t)
				d := mustPut(t, s, "original")
				tamper(t, s, d, tamperWith)
				err := tt.use(s, d, t)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				if s.Has(d) {
					t.Error("corrupt blob still in the store")
				}
			})
		}
	}
	t.Run("Materialize leaves no partial file", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "original")
		tamper(t, s, d, "tampered")
		dir := t.TempDir()
		dst := filepath.Join(dir, "f")
		writeFile(t, dst, "previous", 0o644)
		if err := s.Materialize(d, dst, false, false); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(dst); string(b) != "previous" {
			t.Errorf("dst = %q, want the previous content kept", b)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("leftovers in %s: %v", dir, ents)
		}
	})
	t.Run("replaced blob is not removed", func(t *testing.T) {
		// A reader that saw a corrupt file must not delete a good blob that
		// another process put in its place meanwhile.
		s := newStore(t)
		d := mustPut(t, s, "original")
		tamper(t, s, d, "tampered")
		rc, err := s.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if err := os.Remove(s.Path(d)); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "original")
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
		if err := s.Verify(d); err != nil {
			t.Errorf("good blob damaged: %v", err)
		}
	})
}

func TestOpenPartialReadDoesNotJudge(t *testing.T) {
	s := newStore(t)
	d := mustPut(t, s, "0123456789")
	tamper(t, s, d, "0123456789-tampered")
	rc, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatalf("partial read: %v", err)
	}
	rc.Close()
	if !s.Has(d) {
		t.Error("blob removed without being read to EOF")
	}
}

func TestMaterialize(t *testing.T) {
	tests := []struct {
		name     string
		exec     bool
		link     bool
		wantMode os.FileMode
		wantLink bool
	}{
		{"link", false, true, 0o444, true},
		{"link exec", true, true, 0o555, false},
		{"copy", false, false, 0o644, false},
		{"copy exec", true, false, 0o755, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			d := mustPut(t, s, "payload")
			dst := filepath.Join(t.TempDir(), "deep", "er", "file")
			if err := s.Materialize(d, dst, tt.exec, tt.link); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("mode = %v, want %v", fi.Mode(), tt.wantMode)
			}
			if got := same(t, dst, s.Path(d)); got != tt.wantLink {
				t.Errorf("hard link = %v, want %v", got, tt.wantLink)
			}
			if b, _ := os.ReadFile(dst); string(b) != "payload" {
				t.Errorf("content = %q", b)
			}
			// Materializing again over the result replaces it cleanly, also
			// when dst is already a link to the same blob.
			if err := s.Materialize(d, dst, tt.exec, tt.link); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(filepath.Dir(dst))
			if len(ents) != 1 {
				t.Errorf("leftovers next to dst: %v", ents)
			}
		})
	}
	t.Run("link across filesystems copies", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "payload")
		other, err := os.MkdirTemp("/dev/shm", "mc-cas-test-")
		if err != nil {
			t.Skipf("no /dev/shm to test the EXDEV fallback: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(other) })
		if deviceOf(t, other) == deviceOf(t, s.Dir()) {
			t.Skip("/dev/shm is on the store's filesystem; cannot test the EXDEV fallback")
		}
		dst := filepath.Join(other, "f")
		if err := s.Materialize(d, dst, false, true); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o444 {
			t.Errorf("mode = %v, want 0444 like a link", fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(dst); string(b) != "payload" {
			t.Errorf("content = %q", b)
		}
		// The fallback copy is verified like any copy.
		tamper(t, s, d, "tampered")
		if err := s.Materialize(d, dst, false, true); !errors.Is(err, ErrCorrupt) {
			t.Errorf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("replaces existing file", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "new")
		dst := filepath.Join(t.TempDir(), "f")
		writeFile(t, dst, "old and longer", 0o600)
		if err := s.Materialize(d, dst, false, false); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(dst); string(b) != "new" {
			t.Errorf("content = %q", b)
		}
		// Editing a copy (what a user does in mc-out/) must not touch the blob.
		if err := os.WriteFile(dst, []byte("edited"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(d); err != nil {
			t.Errorf("blob damaged by editing a copy: %v", err)
		}
	})
	t.Run("umask does not matter", func(t *testing.T) {
		old := syscall.Umask(0o077)
		defer syscall.Umask(old)
		s := newStore(t)
		d := mustPut(t, s, "x")
		dst := filepath.Join(t.TempDir(), "f")
		if err := s.Materialize(d, dst, true, false); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("mode = %v, %v", fi.Mode(), err)
		}
	})
	t.Run("dst is a directory", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, "x")
		dst := t.TempDir()
		writeFile(t, filepath.Join(dst, "keep"), "k", 0o644)
		if err := s.Materialize(d, dst, false, false); err == nil {
			t.Fatal("materialized over a non-empty directory")
		}
		if !strings.Contains(errString(s.Materialize(d, dst, false, true)), dst) {
			t.Error("error does not name dst")
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// With DeferSync blobs are still complete and verified; Sync succeeds.
func TestDeferSync(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.DeferSync()
	d, err := s.PutBytes([]byte("deferred"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d); err != nil {
		t.Fatalf("blob written with deferred sync: %v", err)
	}
	f := filepath.Join(t.TempDir(), "adopt")
	if err := os.WriteFile(f, []byte("adopted"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2, _, err := s.AdoptFile(f)
	if err != nil || s.Verify(d2) != nil {
		t.Fatalf("adopt with deferred sync: %v", err)
	}
}
