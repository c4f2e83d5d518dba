package oci

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenDigest pins the encoding of a tiny image: if it changes, every
// image digest (and so every cache key over images) changes with it. Change
// it only on purpose.
const goldenDigest = "sha256:f08d547fce682695368d1f9efdb09f995217648feac060db4534aad75c342289"

func goldenInput(t *testing.T) ([]File, Config) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"hello*": "#!/bin/sh\necho hello\n", "data/a.txt": "a\n"})
	return []File{
			{Dest: "/usr/local/bin/hello", Src: filepath.Join(src, "hello")},
			{Dest: "/srv/data", Src: filepath.Join(src, "data")},
		}, Config{
			Entrypoint: []string{"/usr/local/bin/hello"},
			Env:        map[string]string{"GREETING": "hi"},
			Workdir:    "/srv",
			Labels:     map[string]string{"org.example": "x"},
		}
}

func TestBuildGoldenDigest(t *testing.T) {
	files, cfg := goldenInput(t)
	_, d := build(t, "", files, cfg)
	if d != goldenDigest {
		t.Errorf("digest of the golden image = %s, want %s (the image encoding changed)", d, goldenDigest)
	}
}

func TestBuildReproducible(t *testing.T) {
	// Two copies of the same tree that differ in everything Build must
	// ignore: location, mtimes, non-exec permission bits, creation order.
	mk := func(mtime time.Time, perm os.FileMode, reverse bool) []File {
		src := t.TempDir()
		// One name longer than ustar's 100 bytes, so PAX records are
		// covered too.
		names := []string{"app/z.txt", "app/a/b.txt", "app/run", "app/a/" + strings.Repeat("long", 30)}
		if reverse {
			slices.Reverse(names)
		}
		for _, n := range names {
			writeFiles(t, src, map[string]string{n: "content of " + n})
		}
		if err := os.Chmod(filepath.Join(src, "app/run"), perm|0o100); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, "app/z.txt"), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("a/b.txt", filepath.Join(src, "app/link")); err != nil {
			t.Fatal(err)
		}
		for _, n := range append(names, "app", "app/a") {
			if err := os.Chtimes(filepath.Join(src, n), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return []File{{Dest: "/opt/app", Src: filepath.Join(src, "app")}, {Dest: "/bin/run", Src: filepath.Join(src, "app/run")}}
	}
	cfg := Config{Cmd: []string{"/bin/run"}, Env: map[string]string{"B": "2", "A": "1"}}
	_, d1 := build(t, "", mk(time.Unix(1e9, 0), 0o644, false), cfg)
	_, d2 := build(t, "", mk(time.Now(), 0o600, true), cfg)
	if d1 != d2 {
		t.Fatalf("same inputs gave %s and %s", d1, d2)
	}
	if !strings.HasPrefix(d1, "sha256:") || len(d1) != 71 {
		t.Fatalf("digest %q is not sha256:<64 hex>", d1)
	}
}

func TestBuildLayerEncoding(t *testing.T) {
	files, cfg := goldenInput(t)
	out, d := build(t, "", files, cfg)
	if got, err := ReadDigest(out); err != nil || got != d {
		t.Fatalf("ReadDigest = %q, %v; want %s", got, err, d)
	}
	var got []string
	for _, h := range lastLayer(t, out) {
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d uname %q gname %q; want epoch, 0, 0, no names", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		got = append(got, fmt.Sprintf("%c %s %o", h.Typeflag, h.Name, h.Mode))
	}
	want := []string{
		"5 srv/ 755", "5 srv/data/ 755", "0 srv/data/a.txt 644",
		"5 usr/ 755", "5 usr/local/ 755", "5 usr/local/bin/ 755", "0 usr/local/bin/hello 755",
	}
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n got %q\nwant %q", got, want)
	}
	rc, err := ImageConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Platform != "linux/amd64" || rc.WorkingDir != "/srv" || !slices.Equal(rc.Entrypoint, []string{"/usr/local/bin/hello"}) ||
		!slices.Equal(rc.Env, []string{"GREETING=hi"}) || rc.Cmd != nil {
		t.Errorf("ImageConfig = %+v", rc)
	}
	img, err := readImage(out, "")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) || len(cf.History) != 1 || !cf.History[0].Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("config created %v, history %+v; want epoch everywhere", cf.Created, cf.History)
	}
	if cf.Config.Labels["org.example"] != "x" {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
}

func TestBuildOnBase(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"sh*": "shell", "api*": "api", "etc/conf": "c"})
	base, baseDigest := build(t, "", []File{{Dest: "/bin/sh", Src: filepath.Join(src, "sh")}}, Config{
		Env:     map[string]string{"PATH": "/bin", "A": "1"},
		Cmd:     []string{"/bin/sh"},
		Workdir: "/root",
		Labels:  map[string]string{"base": "yes", "over": "base"},
	})
	out, d := build(t, base, []File{
		{Dest: "/usr/local/bin/api", Src: filepath.Join(src, "api")},
		{Dest: "/etc", Src: filepath.Join(src, "etc")},
	}, Config{
		Entrypoint: []string{"/usr/local/bin/api"},
		Env:        map[string]string{"A": "2", "Z": "26", "B": "4"},
		Labels:     map[string]string{"over": "image"},
	})
	if d == baseDigest {
		t.Fatal("image digest equals its base's")
	}
	img, err := readImage(out, "")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	baseImg, err := readImage(base, "")
	if err != nil {
		t.Fatal(err)
	}
	baseLs, err := baseImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	l0, _ := ls[0].Digest()
	b0, _ := baseLs[0].Digest()
	if len(ls) != 2 || l0 != b0 {
		t.Fatalf("image has %d layers, first %s; want 2, first the base's %s", len(ls), l0, b0)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	// A (from the base) replaced in place, new keys sorted after.
	if want := []string{"A=2", "PATH=/bin", "B=4", "Z=26"}; !slices.Equal(c.Env, want) {
		t.Errorf("Env = %q, want %q", c.Env, want)
	}
	if c.Cmd != nil || c.WorkingDir != "/root" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/api"}) {
		t.Errorf("Cmd %q Workdir %q Entrypoint %q; want Cmd cleared by the new entrypoint, Workdir inherited", c.Cmd, c.WorkingDir, c.Entrypoint)
	}
	if c.Labels["base"] != "yes" || c.Labels["over"] != "image" {
		t.Errorf("Labels = %v", c.Labels)
	}
	if len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
		t.Errorf("diff_ids %d history %d, want 2 and 2", len(cf.RootFS.DiffIDs), len(cf.History))
	}

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), out, rootfs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"bin/sh": "shell", "usr/local/bin/api": "api", "etc/conf": "c"} {
		if b, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || string(b) != want {
			t.Errorf("%s in rootfs: %q, %v; want %q", name, b, err, want)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x", "tree/a": "a"})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "abs")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, src, map[string]string{"esc/x": "x", "absdir/x": "x"})
	if err := os.Symlink("../f", filepath.Join(src, "esc/up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(src, "absdir/l")); err != nil {
		t.Fatal(err)
	}
	nonEmpty := t.TempDir()
	writeFiles(t, nonEmpty, map[string]string{"x": ""})
	base, _ := build(t, "", nil, Config{Platform: "linux/arm64"})
	f := filepath.Join(src, "f")
	for _, tc := range []struct {
		name, base string
		files      []File
		cfg        Config
		out        string
		want       string
	}{
		{name: "relative dest", files: []File{{Dest: "bin/f", Src: f}}, want: "not an absolute path"},
		{name: "dotdot dest", files: []File{{Dest: "/a/../../f", Src: f}}, want: "contains .."},
		{name: "file at root", files: []File{{Dest: "/", Src: f}}, want: "root directory"},
		{name: "two files one path", files: []File{{Dest: "/f", Src: f}, {Dest: "/f", Src: f}}, want: "both place /f"},
		{name: "file over dir", files: []File{{Dest: "/x/y", Src: f}, {Dest: "/x", Src: f}}, want: "both place /x"},
		{name: "missing src", files: []File{{Dest: "/f", Src: filepath.Join(src, "nope")}}, want: "no such file"},
		{name: "escaping symlink in tree", files: []File{{Dest: "/t", Src: filepath.Join(src, "esc")}}, want: "points outside"},
		{name: "absolute symlink in tree", files: []File{{Dest: "/t", Src: filepath.Join(src, "absdir")}}, want: "points outside"},
		{name: "bad env name", cfg: Config{Env: map[string]string{"A=B": "1"}}, want: "invalid variable name"},
		{name: "bad platform", cfg: Config{Platform: "linux"}, want: "want os/arch"},
		{name: "base of other platform", base: base, cfg: Config{Platform: "linux/amd64"}, want: "base image is for linux/arm64"},
		{name: "base not a layout", base: src, want: "reading OCI layout"},
		{name: "out not empty", out: nonEmpty, want: "not empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "out")
			}
			_, err := Build(context.Background(), tc.base, tc.files, tc.cfg, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build error = %v, want one containing %q", err, tc.want)
			}
			if tc.out == "" {
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Errorf("failed Build left %s behind (%v)", out, err)
				}
			}
		})
	}
}

func TestBuildSymlinkToSrcIsFollowed(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"real/x*": "x"})
	if err := os.Symlink("real", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	out, _ := build(t, "", []File{{Dest: "/d", Src: filepath.Join(src, "link")}}, Config{})
	var got []string
	for _, h := range lastLayer(t, out) {
		got = append(got, h.Name)
		if h.Name == "d/x" && (h.Typeflag != tar.TypeReg || h.Mode != 0o755) {
			t.Errorf("d/x: type %c mode %o, want a 0755 regular file", h.Typeflag, h.Mode)
		}
	}
	if !slices.Equal(got, []string{"d/", "d/x"}) {
		t.Errorf("entries %q, want [d/ d/x]", got)
	}
}

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		base []string
		env  map[string]string
		want []string
	}{
		{"nothing new", []string{"A=1"}, nil, []string{"A=1"}},
		{"onto nothing", nil, map[string]string{"B": "2", "A": "1"}, []string{"A=1", "B=2"}},
		{"override in place", []string{"PATH=/bin", "HOME=/root"}, map[string]string{"PATH": "/usr/bin"}, []string{"PATH=/usr/bin", "HOME=/root"}},
		{"value with =", []string{"X=a=b"}, map[string]string{"Y": "c=d"}, []string{"X=a=b", "Y=c=d"}},
		{"empty value", []string{"X=1"}, map[string]string{"X": ""}, []string{"X="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mergeEnv(tc.base, tc.env); !slices.Equal(got, tc.want) {
				t.Errorf("mergeEnv = %q, want %q", got, tc.want)
			}
		})
	}
}
