package cas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned within a few
// seconds (a FIFO opened for reading would block forever).
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked")
	}
}

// TestAdoptFileDeferred covers AdoptFile when the store defers its
// fsyncs, as a build's does: the rename alone finds a blob present.
func TestAdoptFileDeferred(t *testing.T) {
	tests := []struct {
		name    string
		present bool // the blob is in the store already
	}{
		{"new blob", false},
		{"blob present", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			s.DeferSync()
			var blob os.FileInfo
			if tc.present {
				d := mustPut(t, s, "output")
				var err error
				if blob, err = os.Stat(s.Path(d)); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(t.TempDir(), "out")
			writeFile(t, p, "output", 0o640)
			file, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			d, n, err := s.AdoptFile(p)
			if err != nil || d != FromBytes([]byte("output")) || n != 6 {
				t.Fatalf("AdoptFile = %s, %d, %v", d, n, err)
			}
			now, err := os.Stat(s.Path(d))
			if err != nil {
				t.Fatal(err)
			}
			if now.Mode().Perm() != 0o444 {
				t.Errorf("blob mode %v, want 0444", now.Mode().Perm())
			}
			left, err := os.Stat(p)
			if tc.present {
				// The blob is not replaced; the file stays as it was.
				if !os.SameFile(now, blob) {
					t.Error("the blob was replaced")
				}
				if err != nil || left.Mode().Perm() != 0o640 {
					t.Errorf("the file left: %v, %v; want it with mode 0640", left, err)
				}
			} else {
				if !os.SameFile(now, file) {
					t.Error("the blob is not the adopted file")
				}
				if !os.IsNotExist(err) {
					t.Errorf("the adopted file is still there: %v", err)
				}
			}
			assertNoTemps(t, s)
		})
	}
}

// TestNotRegularFiles: a FIFO, a directory or (for AdoptFile) a symlink
// is refused with a message saying so, without blocking on the FIFO.
func TestNotRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "target"), "x", 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	tests := []struct {
		name string
		put  func() error
		want string
	}{
		{"PutFile of a FIFO", func() error { _, _, err := s.PutFile(fifo); return err }, "not a regular file"},
		{"PutFileExpect of a FIFO", func() error { return s.PutFileExpect(fifo, FromBytes([]byte("x"))) }, "not a regular file"},
		{"PutFile of a directory", func() error { _, _, err := s.PutFile(dir); return err }, "not a regular file"},
		{"AdoptFile of a FIFO", func() error { _, _, err := s.AdoptFile(fifo); return err }, "not a regular file"},
		{"AdoptFile of a directory", func() error { _, _, err := s.AdoptFile(dir); return err }, "not a regular file"},
		{"AdoptFile of a symlink", func() error { _, _, err := s.AdoptFile(link); return err }, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			within(t, func() { err = tc.put() })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			assertNoTemps(t, s)
		})
	}
	// PutFile follows a symlink to a file, as before.
	if d, _, err := s.PutFile(link); err != nil || d != FromBytes([]byte("x")) {
		t.Errorf("PutFile(symlink to a file) = %s, %v", d, err)
	}
}

// New blobs are unnamed files linked into place (O_TMPFILE), and where the
// filesystem has none, named files in tmp/ renamed into place: both leave
// only whole, verified blobs and nothing in tmp/.
func TestTempFiles(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(fmt.Sprintf("unnamed=%v", unnamed), func(t *testing.T) {
			s := newStore(t)
			if !unnamed {
				s.tmpfileOnce.Do(func() {}) // as if the probe had failed
			} else if !s.unnamedTemps() {
				t.Fatalf("O_TMPFILE and linking through /proc/self/fd do not work in %s; mc's CI expects them (ext4, tmpfs)", s.Dir())
			}
			src := filepath.Join(t.TempDir(), "src")
			writeFile(t, src, "from a file", 0o644)
			d1, _, err := s.PutFile(src)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := s.PutBytes([]byte("from bytes"))
			if err != nil {
				t.Fatal(err)
			}
			d3 := FromBytes([]byte("from a reader"))
			if err := s.PutReaderExpect(strings.NewReader("from a reader"), d3); err != nil {
				t.Fatal(err)
			}
			// A second writer of a present blob, past the Has check: its
			// file is dropped and the blob stays the first one's inode.
			before, err := os.Stat(s.Path(d3))
			if err != nil {
				t.Fatal(err)
			}
			f, got, _, err := s.copyToTemp(strings.NewReader("from a reader"), d3)
			if err != nil || got != d3 {
				t.Fatalf("copyToTemp = %s, %v", got.Short(), err)
			}
			if err := s.commit(f, d3); err != nil {
				t.Fatalf("commit of a present blob: %v", err)
			}
			after, err := os.Stat(s.Path(d3))
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("the present blob was replaced (%v)", err)
			}
			// A wrong download stores nothing.
			if err := s.PutReaderExpect(strings.NewReader("tampered"), FromBytes([]byte("x"))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("wrong content: err = %v, want ErrCorrupt", err)
			}
			for _, d := range []Digest{d1, d2, d3} {
				fi, err := os.Stat(s.Path(d))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o444 {
					t.Errorf("blob %s mode %v, want 0444", d.Short(), fi.Mode().Perm())
				}
			}
			if n := verifyAll(t, s); n != 3 {
				t.Errorf("%d blobs in the store, want 3", n)
			}
			assertNoTemps(t, s)
		})
	}
}
