package oci

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// tree lists what is under root as "path type": f file, d dir, l symlink.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		kind := "f"
		switch {
		case d.IsDir():
			kind = "d"
		case d.Type()&fs.ModeSymlink != 0:
			kind = "l"
		}
		out = append(out, rel+" "+kind)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnpackWhiteouts(t *testing.T) {
	lower := tarBytes(t,
		dir("a/"), file("a/gone", "1"), file("a/kept", "2"),
		dir("b/"), file("b/old", "x"), dir("b/sub/"), file("b/sub/old", "y"),
		dir("c/"), file("c/y", "y"),
		file("keep", "k"),
		dir("o/"), file("o/old", "x"),
	)
	upper := tarBytes(t,
		file("a/.wh.gone", ""),
		// Opaque marker first: b's lower content goes, this layer's stays.
		dir("b/"), file("b/.wh..wh..opq", ""), file("b/new", "n"), dir("b/sub/"), file("b/sub/new", "n"),
		file(".wh.c", ""),
		file("a/.wh.never-existed", ""),
		// Opaque marker after this layer's own entry: that entry stays.
		dir("o/"), file("o/mine", "m"), file("o/.wh..wh..opq", ""),
	)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), layoutOf(t, lower, upper), rootfs); err != nil {
		t.Fatal(err)
	}
	want := []string{"a d", "a/kept f", "b d", "b/new f", "b/sub d", "b/sub/new f", "keep f", "o d", "o/mine f"}
	if got := tree(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("rootfs:\n got %q\nwant %q", got, want)
	}
}

func TestUnpackModesAndLinks(t *testing.T) {
	layer := tarBytes(t,
		tarEntry{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555}},
		file("ro/inside", "still written"), // after its read-only parent
		tarEntry{hdr: tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755}, body: "su"},
		tarEntry{hdr: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}},
		symlink("bin/sh", "/bin/busybox"), // absolute targets are fine as entries
		hardlink("bin/su2", "/bin/su"),    // absolute link names are rooted
		tarEntry{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
		tarEntry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}},
		tarEntry{hdr: tar.Header{Name: "owned", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 1234, Gid: 5678}, body: "o"},
		// lib -> usr/lib stays inside, so a later entry may go through it.
		dir("usr/lib/"), symlink("lib", "usr/lib"), file("lib/libc.so", "libc"),
	)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), layoutOf(t, layer), rootfs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		".":      fs.ModeDir | 0o755,
		"ro":     fs.ModeDir | 0o555,
		"bin/su": fs.ModeSetuid | 0o755,
		"tmp":    fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(rootfs, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if target, err := os.Readlink(filepath.Join(rootfs, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	a, err1 := os.Stat(filepath.Join(rootfs, "bin/su"))
	b, err2 := os.Stat(filepath.Join(rootfs, "bin/su2"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("bin/su2 is not a hardlink of bin/su (%v, %v)", err1, err2)
	}
	// Ownership is kept when running as root, else files are the caller's.
	wantUID, wantGID := uint32(os.Geteuid()), uint32(os.Getegid())
	if os.Geteuid() == 0 {
		wantUID, wantGID = 1234, 5678
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "owned")); err != nil {
		t.Error(err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != wantUID || st.Gid != wantGID || fi.Mode() != 0o600 {
		t.Errorf("owned: %d:%d %v, want %d:%d -rw-------", st.Uid, st.Gid, fi.Mode(), wantUID, wantGID)
	}
	for _, skipped := range []string{"dev/null", "fifo"} {
		if _, err := os.Lstat(filepath.Join(rootfs, skipped)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v; device nodes and FIFOs are skipped", skipped, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "usr/lib/libc.so")); err != nil || string(b) != "libc" {
		t.Errorf("usr/lib/libc.so = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "ro/inside")); err != nil || string(b) != "still written" {
		t.Errorf("ro/inside = %q, %v", b, err)
	}
}

func TestUnpackReplaces(t *testing.T) {
	lower := tarBytes(t, file("x", "file"), dir("d/"), file("d/f", "f"), symlink("l", "x"))
	upper := tarBytes(t, dir("x/"), file("d", "now a file"), file("l", "now a file"))
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), layoutOf(t, lower, upper), rootfs); err != nil {
		t.Fatal(err)
	}
	if want, got := []string{"d f", "l f", "x d"}, tree(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("rootfs %q, want %q", got, want)
	}
}

func TestUnpackRejectsEscapes(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeFiles(t, outside, map[string]string{"victim": "original"})
	for _, tc := range []struct {
		name   string
		layers [][]tarEntry
		want   string
	}{
		{"dotdot", [][]tarEntry{{file("../x", "evil")}}, ".. component"},
		{"absolute with dotdot", [][]tarEntry{{file("/abs/../../x", "evil")}}, ".. component"},
		{"deep dotdot", [][]tarEntry{{dir("a/"), file("a/../../outside/victim", "evil")}}, ".. component"},
		{"absolute symlink then file", [][]tarEntry{{symlink("a", outside), file("a/victim", "evil")}}, "a/victim"},
		{"symlink to /etc then passwd", [][]tarEntry{{symlink("a", "/etc"), file("a/passwd", "evil")}}, "a/passwd"},
		{"relative escaping symlink", [][]tarEntry{{symlink("a", "../../.."), file("a/x", "evil")}}, "a/x"},
		{"symlink across layers", [][]tarEntry{{symlink("a", "../outside")}, {file("a/victim", "evil")}}, "a/victim"},
		{"symlink chain", [][]tarEntry{{symlink("a", "b"), symlink("b", ".."), file("a/outside/victim", "evil")}}, "a/outside/victim"},
		{"symlink then dir under it", [][]tarEntry{{symlink("a", outside), dir("a/sub/")}}, "a/sub"},
		{"hardlink out", [][]tarEntry{{hardlink("x", "../outside/victim")}}, ".. component"},
		{"hardlink through symlink", [][]tarEntry{{symlink("l", outside), hardlink("x", "l/victim")}}, "x"},
		{"whiteout through symlink", [][]tarEntry{{symlink("a", outside)}, {file("a/.wh.victim", "")}}, "whiteout"},
		{"opaque through symlink", [][]tarEntry{{symlink("a", outside)}, {file("a/.wh..wh..opq", "")}}, "opaque"},
		{"empty whiteout", [][]tarEntry{{file(".wh.", "")}}, "names nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var layers [][]byte
			for _, l := range tc.layers {
				layers = append(layers, tarBytes(t, l...))
			}
			layout := layoutOf(t, layers...)
			parent := t.TempDir()
			rootfs := filepath.Join(parent, "rootfs")
			err := Unpack(context.Background(), layout, rootfs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Unpack error = %v, want one mentioning %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "original" {
				t.Errorf("outside/victim = %q, %v: written through the archive", b, err)
			}
			if got := tree(t, outside); !slices.Equal(got, []string{"victim f"}) {
				t.Errorf("outside holds %q", got)
			}
			for _, p := range []string{filepath.Join(parent, "x"), filepath.Join(base, "x")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
			// Atomic: neither the rootfs nor its temporary sibling is left.
			if got := tree(t, parent); len(got) != 0 {
				t.Errorf("after a failed Unpack %s holds %q", parent, got)
			}
		})
	}
}

func TestUnpackExistingRootfs(t *testing.T) {
	layout := layoutOf(t, tarBytes(t, file("x", "x")))
	rootfs := t.TempDir() // exists, even empty
	err := Unpack(context.Background(), layout, rootfs)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Unpack into an existing directory: %v, want fs.ErrExist", err)
	}
}

func TestUnpackCanceled(t *testing.T) {
	layout := layoutOf(t, tarBytes(t, file("x", "x")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(ctx, layout, rootfs); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unpack with a canceled context: %v", err)
	}
	if _, err := os.Stat(rootfs); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("canceled Unpack left %s (%v)", rootfs, err)
	}
}
