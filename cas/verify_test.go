package cas

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The attacks here are done as root, on the blob files themselves: the
// blobs are read-only, which does not stop root. Each test has a positive
// control: the same attack with verification switched off
// (SkipVerifyForTesting) must be seen to get the bad bytes used, so the
// test can tell.

var blobText = []byte(strings.Repeat("the right bytes\n", 64))

// nextProcess opens the store at dir as the next mc process would: a new
// Store with the fingerprints the last one saved.
func nextProcess(t *testing.T, dir string, db *DB, verify bool) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !verify {
		s.SkipVerifyForTesting()
	}
	s.LoadVerified(context.Background(), db)
	return s
}

// firstProcess stores blobText, links it once as a build would (which
// moves the blob's ctime) and saves the fingerprints.
func firstProcess(t *testing.T) (dir string, db *DB, d Digest) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "store")
	db = newDB(t)
	s := nextProcess(t, dir, db, true)
	d, err := s.PutBytes(blobText)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Materialize(d, filepath.Join(t.TempDir(), "out", "a"), false, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveVerified(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return dir, db, d
}

// corruptInPlace flips one byte of the file at p, writing through the same
// inode, and sets its mtime back: a naive (size, mtime) check sees nothing;
// only the ctime, which nobody can set, moves.
func corruptInPlace(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0) // root: the read-only mode does not stop it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'T'}, 0); err != nil { // 't' -> 'T'
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(fi.ModTime()) || after.Size() != fi.Size() || !os.SameFile(fi, after) {
		t.Fatal("the corruption was supposed to keep inode, size and mtime")
	}
}

// replaceWithGarbage puts a new file (a new inode) of the same size, mode
// and mtime in place of the file at p.
func replaceWithGarbage(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	tmp := p + ".garbage"
	if err := os.WriteFile(tmp, bytes.Repeat([]byte{'x'}, int(fi.Size())), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// linkAndRead materializes d as a link (a sandbox input, an mc-out/ file)
// and returns what the link holds.
func linkAndRead(t *testing.T, s *Store, d Digest) ([]byte, error) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "in", "file")
	if err := s.Materialize(d, dst, false, true); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

func TestVerifyCatchesAttacksOnStoredBlobs(t *testing.T) {
	attacks := map[string]func(*testing.T, string){
		"corrupted in place, mtime set back": corruptInPlace,
		"replaced by garbage":                replaceWithGarbage,
	}
	for name, attack := range attacks {
		t.Run(name, func(t *testing.T) {
			dir, db, d := firstProcess(t)
			s := nextProcess(t, dir, db, true)
			attack(t, s.Path(d))
			err := s.Check(d)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check after the attack: %v, want ErrCorrupt", err)
			}
			if s.Has(d) {
				t.Fatal("the corrupt blob is still in the store")
			}
			if _, err := linkAndRead(t, s, d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("linking the removed blob: %v, want ErrNotFound", err)
			}
			// Writing the right bytes again brings it back.
			if _, err := s.PutBytes(blobText); err != nil {
				t.Fatal(err)
			}
			if got, err := linkAndRead(t, s, d); err != nil || !bytes.Equal(got, blobText) {
				t.Fatalf("after PutBytes: %q, %v", got, err)
			}
		})
		t.Run(name+"/link checks too", func(t *testing.T) {
			dir, db, d := firstProcess(t)
			s := nextProcess(t, dir, db, true)
			attack(t, s.Path(d))
			if got, err := linkAndRead(t, s, d); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("linking the attacked blob: got %q, %v; want ErrCorrupt", got, err)
			}
		})
		t.Run(name+"/positive control", func(t *testing.T) {
			dir, db, d := firstProcess(t)
			s := nextProcess(t, dir, db, false)
			attack(t, s.Path(d))
			if err := s.Check(d); err != nil {
				t.Fatalf("unverified Check: %v", err)
			}
			got, err := linkAndRead(t, s, d)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, blobText) {
				t.Fatal("the attack did not change what a link holds: the test cannot tell")
			}
		})
	}
}

// A write through a link within the same process (a stage writing to an
// input, root editing mc-out/) moves mtime and is caught at the next use.
func TestVerifyCatchesWriteThroughLinkWithinProcess(t *testing.T) {
	for _, verify := range []bool{true, false} {
		s := newStore(t)
		if !verify {
			s.SkipVerifyForTesting()
		}
		d, err := s.PutBytes(blobText)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "link")
		if err := s.Materialize(d, dst, false, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a later mtime tick
		if err := os.WriteFile(dst, bytes.ToUpper(blobText), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := linkAndRead(t, s, d)
		switch {
		case verify && !errors.Is(err, ErrCorrupt):
			t.Fatalf("linking after a write through a link: %q, %v; want ErrCorrupt", got, err)
		case !verify && (err != nil || bytes.Equal(got, blobText)):
			t.Fatalf("positive control: %q, %v; want the written bytes", got, err)
		}
	}
}

// What a build does to a blob's ctime (links made and removed) costs no
// hashing, neither in the process nor in the next one; a blob whose
// fingerprint moved is hashed once and found good.
func TestVerifyHashesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	db := newDB(t)
	s := nextProcess(t, dir, db, true)
	hashed := 0
	s.v.onHash = func(Digest) { hashed++ }
	var ds []Digest
	for i := range 20 {
		d, err := s.PutBytes([]byte(strings.Repeat("x", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	out := t.TempDir()
	for i, d := range ds {
		for j := range 3 { // linked into three sandboxes, two of them emptied again
			dst := filepath.Join(out, strings.Repeat("s", j+1), string(rune('a'+i)))
			if err := s.Materialize(d, dst, false, true); err != nil {
				t.Fatal(err)
			}
			if j < 2 {
				os.Remove(dst)
			}
		}
		if err := s.Check(d); err != nil {
			t.Fatal(err)
		}
	}
	if hashed != 0 {
		t.Fatalf("%d blobs hashed in the process that wrote them", hashed)
	}
	if err := s.SaveVerified(ctx, db); err != nil {
		t.Fatal(err)
	}

	s2 := nextProcess(t, dir, db, true)
	s2.v.onHash = func(Digest) { hashed++ }
	// chmod to the same mode moves only the ctime, between the processes:
	// that blob is hashed once, and found good.
	if err := os.Chmod(s2.Path(ds[3]), 0o444); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, d := range ds {
			if err := s2.CheckUse(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if hashed != 1 {
		t.Fatalf("the next process hashed %d blobs, want 1 (the one whose ctime moved)", hashed)
	}
}

// A writer that finds a corrupt blob under its digest replaces it instead
// of taking it as its own.
func TestPutReplacesCorruptBlob(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, string(blobText), 0o644)
	for name, put := range map[string]func(*Store, Digest) error{
		"PutFileExpect": func(s *Store, d Digest) error { return s.PutFileExpect(src, d) },
		"PutFile":       func(s *Store, d Digest) error { _, _, err := s.PutFile(src); return err },
		"PutBytes":      func(s *Store, d Digest) error { _, err := s.PutBytes(blobText); return err },
		"PutReaderExpect": func(s *Store, d Digest) error {
			return s.PutReaderExpect(bytes.NewReader(blobText), d)
		},
		"AdoptFile": func(s *Store, d Digest) error {
			p := filepath.Join(s.TempDir(), "adopt")
			if err := os.WriteFile(p, blobText, 0o644); err != nil {
				return err
			}
			_, _, err := s.AdoptFile(p)
			return err
		},
		"AdoptFile deferred sync": func(s *Store, d Digest) error {
			s.DeferSync()
			p := filepath.Join(s.TempDir(), "adopt")
			if err := os.WriteFile(p, blobText, 0o644); err != nil {
				return err
			}
			_, _, err := s.AdoptFile(p)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir, db, d := firstProcess(t)
			s := nextProcess(t, dir, db, true)
			corruptInPlace(t, s.Path(d))
			if err := put(s, d); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(s.Path(d))
			if err != nil || !bytes.Equal(got, blobText) {
				t.Fatalf("after %s the blob holds %.20q..., %v", name, got, err)
			}
		})
	}
}

// Another build linking a blob into its sandbox while this process hashes
// it moves only the blob's ctime: the blob is good and stays. A write at
// that moment (the control) is still caught and the blob removed. Before,
// any moved ctime counted as a write, and concurrent builds removed good
// blobs under each other (TestConcurrentGoroutinesAndProcesses, once).
func TestRehashWhileLinked(t *testing.T) {
	for _, write := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "store")
		w, err := OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		d, err := w.PutBytes([]byte("a blob another build links"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(dir) // another process: the blob is not known good here
		if err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "sandbox-input")
		s.v.onRead = func(Digest) {
			if write {
				f, err := os.OpenFile(s.Path(d), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString("!")
				f.Close()
				return
			}
			if err := os.Link(s.Path(d), link); err != nil {
				t.Fatal(err)
			}
		}
		err = s.CheckUse(d)
		switch {
		case !write && err != nil:
			t.Fatalf("blob linked elsewhere while hashed: %v; want it good", err)
		case !write && !s.Has(d):
			t.Fatal("blob linked elsewhere while hashed was removed")
		case write && !errors.Is(err, ErrCorrupt):
			t.Fatalf("control, blob written while hashed: %v; want ErrCorrupt", err)
		case write && s.Has(d):
			t.Fatal("control, blob written while hashed: still in the store")
		}
	}
}
