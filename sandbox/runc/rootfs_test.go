package runc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mc-build/mc/confine"
)

// TestShiftOwners checks that PrepareRootfs, as root, gives the image's
// files to the containers' ids: N to IDBase+N, ids beyond the range to
// its nobody, setuid bits kept, hard links shifted once, and a second
// run changes nothing.
func TestShiftOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("owners are shifted when mc is root: run this test as root")
	}
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "home"))
	files := []struct {
		path     string
		uid, gid int
		mode     fs.FileMode
		wantUID  int
		wantGID  int
	}{
		{"bin/su", 0, 0, 0o755 | fs.ModeSetuid, confine.IDBase, confine.IDBase},
		{"home/user", 1000, 100, 0o644, confine.IDBase + 1000, confine.IDBase + 100},
		{"home/far", 70000, 65534, 0o755 | fs.ModeSetgid, confine.IDBase + overflowID, confine.IDBase + 65534},
	}
	mustMkdir(t, filepath.Join(root, "bin"))
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.WriteFile(p, []byte(f.path), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "home/user"), filepath.Join(root, "bin/user-link")); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "user", filepath.Join(root, "home/link"))
	if err := os.Lchown(filepath.Join(root, "home/link"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (int, int, fs.FileMode) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid), fi.Mode()
	}
	for run := 1; run <= 2; run++ {
		if err := PrepareRootfs(root); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			uid, gid, mode := owner(f.path)
			if uid != f.wantUID || gid != f.wantGID || mode != f.mode {
				t.Errorf("run %d: %s is %d:%d %v, want %d:%d %v", run, f.path, uid, gid, mode, f.wantUID, f.wantGID, f.mode)
			}
		}
		if uid, gid, _ := owner("home/link"); uid != confine.IDBase+1000 || gid != confine.IDBase+1000 {
			t.Errorf("run %d: the symlink is %d:%d, want it shifted itself", run, uid, gid)
		}
		for _, d := range []string{".", "home", "mc", "etc/hosts"} {
			if uid, gid, _ := owner(d); uid != confine.IDBase || gid != confine.IDBase {
				t.Errorf("run %d: %s is %d:%d, want the containers' root's", run, d, uid, gid)
			}
		}
	}
}

func TestPrepareRootfs(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		root := t.TempDir()
		if err := PrepareRootfs(root); err != nil {
			t.Fatal(err)
		}
		for _, d := range preparedDirs() {
			fi, err := os.Lstat(filepath.Join(root, d.path))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != d.mode {
				t.Errorf("%s: %v, want a directory %v", d.path, fi.Mode(), d.mode)
			}
		}
		for _, f := range preparedFiles() {
			fi, err := os.Lstat(filepath.Join(root, f))
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
				t.Errorf("%s: %v, %v; want an empty file", f, fi, err)
			}
		}
		// Again: nothing to do, nothing changed.
		before := snapshot(t, root)
		if err := PrepareRootfs(root); err != nil {
			t.Fatal(err)
		}
		after := snapshot(t, root)
		if len(before) != len(after) {
			t.Errorf("a second PrepareRootfs changed the tree: %d entries, was %d", len(after), len(before))
		}
		for p, d := range before {
			if after[p] != d {
				t.Errorf("a second PrepareRootfs changed %s", p)
			}
		}
	})
	t.Run("image files kept", func(t *testing.T) {
		root := t.TempDir()
		mustMkdir(t, filepath.Join(root, "etc"))
		mustMkdir(t, filepath.Join(root, "var/tmp"))
		mustSymlink(t, "../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
		mustSymlink(t, "var/tmp", filepath.Join(root, "tmp"))
		if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("image\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := PrepareRootfs(root); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || target != "../run/systemd/resolve/stub-resolv.conf" {
			t.Errorf("resolv.conf symlink: %q, %v", target, err)
		}
		if target, err := os.Readlink(filepath.Join(root, "tmp")); err != nil || target != "var/tmp" {
			t.Errorf("tmp symlink: %q, %v", target, err)
		}
		if data, err := os.ReadFile(filepath.Join(root, "etc/hosts")); err != nil || string(data) != "image\n" {
			t.Errorf("hosts: %q, %v", data, err)
		}
	})
	t.Run("mc not a directory", func(t *testing.T) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "mc"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := PrepareRootfs(root); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("PrepareRootfs = %v, want a /mc error", err)
		}
	})
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "usr/lib"))
	mustMkdir(t, filepath.Join(root, "var/tmp"))
	mustSymlink(t, "usr/lib", filepath.Join(root, "lib"))
	mustSymlink(t, "/var/tmp", filepath.Join(root, "tmp"))
	mustSymlink(t, "../../../../etc", filepath.Join(root, "usr/lib/up"))
	mustSymlink(t, "loop2", filepath.Join(root, "loop1"))
	mustSymlink(t, "loop1", filepath.Join(root, "loop2"))
	mustSymlink(t, "/nowhere", filepath.Join(root, "dangling"))
	mustMkdir(t, filepath.Join(root, "etc"))
	tests := []struct {
		path    string
		want    string // relative to root, or
		wantErr error
	}{
		{path: "/", want: "."},
		{path: "/usr/lib", want: "usr/lib"},
		{path: "/lib", want: "usr/lib"},
		{path: "/tmp", want: "var/tmp"},
		{path: "/usr/lib/up", want: "etc"}, // ".." stops at the root
		{path: "/missing", wantErr: fs.ErrNotExist},
		{path: "/dangling", wantErr: fs.ErrNotExist},
		{path: "/loop1", wantErr: errors.New("too many levels of symbolic links")},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := resolveIn(root, tt.path)
			if tt.wantErr != nil {
				if err == nil || !errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error()) {
					t.Errorf("resolveIn = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tt.want); got != want {
				t.Errorf("resolveIn = %s, want %s", got, want)
			}
		})
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
