package runc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
