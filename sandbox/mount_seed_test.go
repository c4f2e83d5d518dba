package sandbox

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// An untrusted build's cache mount starts as a copy of the trusted one:
// same contents, other inodes, symlinks as symlinks (never followed),
// no special files. A write to the copy leaves the trusted mount as it
// was. Positive control: a hard-linked "copy" is caught by the same
// inode check, and a write through it does reach the trusted file.
func TestSeedMountCopiesNeverLinks(t *testing.T) {
	dir := t.TempDir()
	trusted := filepath.Join(dir, "mounts", "gocache")
	if err := os.MkdirAll(filepath.Join(trusted, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(trusted, "sub", "obj")
	if err := os.WriteFile(f, []byte("trusted object"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/obj", filepath.Join(trusted, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(trusted, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(trusted, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	own := filepath.Join(dir, "untrusted", "mounts", "gocache")
	if err := seedMount(trusted, own); err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(own, "sub", "obj")
	b, err := os.ReadFile(g)
	if err != nil || string(b) != "trusted object" {
		t.Fatalf("copy holds %q, %v", b, err)
	}
	if inodeOf(t, g) == inodeOf(t, f) {
		t.Fatal("the copy is the trusted file's inode")
	}
	for name, want := range map[string]string{"link": "sub/obj", "abs": "/etc/passwd"} {
		if got, err := os.Readlink(filepath.Join(own, name)); err != nil || got != want {
			t.Fatalf("symlink %s: %q, %v", name, got, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(own, "fifo")); !os.IsNotExist(err) {
		t.Fatalf("a fifo was copied: %v", err)
	}
	// The attack: the untrusted stage makes its file writable and writes.
	if err := os.Chmod(g, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g, []byte("poison"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "trusted object" {
		t.Fatalf("the trusted file now holds %q", b)
	}

	// Positive control.
	linked := filepath.Join(dir, "linked")
	if err := os.Link(f, linked); err != nil {
		t.Fatal(err)
	}
	if inodeOf(t, linked) != inodeOf(t, f) {
		t.Fatal("control: a hard link has another inode: the check cannot fail")
	}
	if err := os.Chmod(linked, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(linked, []byte("poison"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "poison" {
		t.Fatalf("control: a write through a link did not reach the file (%q)", b)
	}
}

// Seeding a mount that is already there (another stage won) leaves it
// alone; a trusted mount that does not exist gives an empty one; stages
// seeding the same mount at once each see a whole copy.
func TestSeedMountOnceAndEmpty(t *testing.T) {
	dir := t.TempDir()
	trusted := filepath.Join(dir, "t")
	if err := os.MkdirAll(trusted, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(trusted, string(rune('a'+i%26))+string(rune('a'+i/26))), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &Local{opts: LocalOptions{MountsDir: filepath.Join(dir, "own"), SeedMountsDir: dir}}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := filepath.Join(l.opts.MountsDir, "t")
			err := l.seedFromTrusted("t")
			if err == nil {
				var ents []os.DirEntry
				if ents, err = os.ReadDir(host); err == nil && len(ents) != 50 {
					t.Errorf("stage %d sees %d of 50 files", i, len(ents))
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "own", ".seed-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary copies left: %q", leftovers)
	}
	// Once there, a mount is not copied again.
	if err := os.WriteFile(filepath.Join(trusted, "later"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.seedFromTrusted("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "own", "t", "later")); !os.IsNotExist(err) {
		t.Fatalf("the mount was seeded again: %v", err)
	}
	// None in the trusted tier: nothing is made (the caller makes an
	// empty directory).
	if err := l.seedFromTrusted("none"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "own", "none")); !os.IsNotExist(err) {
		t.Fatalf("a mount the trusted tier lacks: %v", err)
	}
	// A trusted build seeds nothing.
	tl := &Local{opts: LocalOptions{MountsDir: filepath.Join(dir, "trusted-own")}}
	if err := tl.seedFromTrusted("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "trusted-own", "t")); !os.IsNotExist(err) {
		t.Fatalf("a trusted build seeded a mount: %v", err)
	}
}
