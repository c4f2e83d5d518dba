package cas

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

var (
	dA = FromBytes([]byte("a"))
	dB = FromBytes([]byte("b"))
)

func TestTreeEncodeDeterministic(t *testing.T) {
	entries := []TreeEntry{
		{Path: "z", Digest: dA, Size: 1},
		{Path: "a/b", Digest: dB, Size: 1, Exec: true},
		{Path: "a.txt", Symlink: "z"},
		{Path: "empty", Dir: true},
	}
	want := (&Tree{Entries: entries}).Encode()
	// Every rotation of the input order encodes to the same bytes.
	for i := range entries {
		rot := append(append([]TreeEntry{}, entries[i:]...), entries[:i]...)
		tr := &Tree{Entries: rot}
		if got := tr.Encode(); !bytes.Equal(got, want) {
			t.Errorf("rotation %d encodes differently:\n%s\n%s", i, got, want)
		}
		if !reflect.DeepEqual(tr.Entries, rot) {
			t.Error("Encode modified the tree")
		}
	}
	// Pin the format: a change here changes every tree digest.
	const golden = `{"entries":[` +
		`{"path":"a.txt","symlink":"z"},` +
		`{"path":"a/b","digest":"sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d","size":1,"exec":true},` +
		`{"path":"empty","dir":true},` +
		`{"path":"z","digest":"sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","size":1}]}`
	if string(want) != golden {
		t.Errorf("encoding changed:\n got %s\nwant %s", want, golden)
	}
	if got := string((&Tree{}).Encode()); got != `{"entries":[]}` {
		t.Errorf("empty tree = %s", got)
	}
	// Paths with characters json escapes for HTML are not escaped.
	if got := string((&Tree{Entries: []TreeEntry{{Path: "<&>", Dir: true}}}).Encode()); !strings.Contains(got, `"<&>"`) {
		t.Errorf("HTML-escaped: %s", got)
	}
}

func TestDecodeTreeRoundTrip(t *testing.T) {
	in := &Tree{Entries: []TreeEntry{
		{Path: "bin/tool", Digest: dA, Size: 1, Exec: true},
		{Path: "bin/tool2", Symlink: "tool"},
		{Path: "data/x", Digest: dB, Size: 1},
		{Path: "empty/dir", Dir: true},
		{Path: "up", Symlink: "data/../bin/./tool"},
	}}
	out, err := DecodeTree(in.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestDecodeTreeRejects(t *testing.T) {
	file := func(p string) TreeEntry { return TreeEntry{Path: p, Digest: dA, Size: 1} }
	link := func(p, target string) TreeEntry { return TreeEntry{Path: p, Symlink: target} }
	tests := []struct {
		name    string
		entries []TreeEntry
		wantErr string
	}{
		{"dotdot", []TreeEntry{file("../x")}, "goes above"},
		{"dotdot only", []TreeEntry{file("..")}, "goes above"},
		{"inner dotdot", []TreeEntry{file("a/../../x")}, "not clean"},
		{"absolute", []TreeEntry{file("/etc/passwd")}, "absolute"},
		{"empty path", []TreeEntry{file("")}, "empty"},
		{"dot", []TreeEntry{file(".")}, "empty"},
		{"unclean", []TreeEntry{file("a//b")}, "not clean"},
		{"trailing slash", []TreeEntry{file("a/")}, "not clean"},
		{"dot component", []TreeEntry{file("./a")}, "not clean"},
		{"duplicate", []TreeEntry{file("a"), file("a")}, "duplicate"},
		{"below a file", []TreeEntry{file("a"), file("a/b")}, "below"},
		{"below a symlink", []TreeEntry{link("a", "b"), file("a/c"), file("b/c")}, "below"},
		{"children of empty dir", []TreeEntry{{Path: "d", Dir: true}, file("d/x")}, "below"},
		{"no kind", []TreeEntry{{Path: "a"}}, "exactly one"},
		{"two kinds", []TreeEntry{{Path: "a", Digest: dA, Dir: true}}, "exactly one"},
		{"exec dir", []TreeEntry{{Path: "a", Dir: true, Exec: true}}, "non-file"},
		{"negative size", []TreeEntry{{Path: "a", Digest: dA, Size: -1}}, "negative"},
		{"absolute symlink", []TreeEntry{link("a", "/etc/passwd")}, "absolute"},
		{"escaping symlink", []TreeEntry{link("a", "../x")}, "leaves the tree"},
		{"escaping from subdir", []TreeEntry{link("d/a", "../../x"), file("d/f")}, "leaves the tree"},
		{"escaping through a symlink", []TreeEntry{link("d/up", ".."), link("x", "d/up/..")}, "leaves the tree"},
		{"loop", []TreeEntry{link("a", "b"), link("b", "a/x")}, "too many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := (&Tree{Entries: tt.entries}).Encode()
			_, err := DecodeTree(b)
			if err == nil {
				t.Fatalf("DecodeTree(%s) succeeded", b)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
	canonical := string((&Tree{Entries: []TreeEntry{{Path: "a", Dir: true}, {Path: "b", Dir: true}}}).Encode())
	for _, bad := range []string{
		strings.Replace(canonical, `{"path":"a","dir":true},{"path":"b","dir":true}`, `{"path":"b","dir":true},{"path":"a","dir":true}`, 1), // unsorted
		strings.Replace(canonical, `"path":"a"`, `"Path":"a"`, 1),
		canonical + "\n",
		strings.Replace(canonical, `,`, `, `, 1),
		``, `{`, `[]`, `{"entries":[]} {}`, `{"entries":[],"extra":1}`, `{"entries":[{"path":"a","digest":"nothex"}]}`} {
		t.Run("malformed "+bad, func(t *testing.T) {
			if _, err := DecodeTree([]byte(bad)); err == nil {
				t.Errorf("DecodeTree(%q) succeeded", bad)
			}
		})
	}
}

func TestDecodeTreeAcceptsInnerSymlinks(t *testing.T) {
	tests := []struct {
		name    string
		entries []TreeEntry
	}{
		{"sibling", []TreeEntry{{Path: "a", Symlink: "b"}, {Path: "b", Digest: dA}}},
		{"dangling", []TreeEntry{{Path: "a", Symlink: "nothing/here"}}},
		{"to root", []TreeEntry{{Path: "d/root", Symlink: ".."}}},
		{"through a symlink", []TreeEntry{{Path: "d/up", Symlink: ".."}, {Path: "x", Symlink: "d/up/d"}}},
		{"dot", []TreeEntry{{Path: "self", Symlink: "."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeTree((&Tree{Entries: tt.entries}).Encode()); err != nil {
				t.Error(err)
			}
		})
	}
}

// makeTree builds a directory with files, an executable, a relative symlink
// and empty directories.
func makeTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, filepath.Join(dir, "bin", "tool"), "#!/bin/sh\necho hi\n", 0o755)
	writeFile(t, filepath.Join(dir, "lib", "a.txt"), "aaa", 0o644)
	writeFile(t, filepath.Join(dir, "lib", "b.txt"), "bbb", 0o600)
	writeFile(t, filepath.Join(dir, "lib", "dup.txt"), "aaa", 0o644)
	writeFile(t, filepath.Join(dir, "lib", "empty"), "", 0o644)
	for _, d := range []string{"empty", "nested/empty/dir"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../lib/a.txt", filepath.Join(dir, "bin", "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("lib", filepath.Join(dir, "liblink")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPutTree(t *testing.T) {
	for _, adopt := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "adopt"}[adopt], func(t *testing.T) {
			s := newStore(t)
			dir := makeTree(t)
			d, tr, err := s.PutTree(dir, adopt)
			if err != nil {
				t.Fatal(err)
			}
			want := []TreeEntry{
				{Path: "bin/a", Symlink: "../lib/a.txt"},
				{Path: "bin/tool", Digest: FromBytes([]byte("#!/bin/sh\necho hi\n")), Size: 18, Exec: true},
				{Path: "empty", Dir: true},
				{Path: "lib/a.txt", Digest: FromBytes([]byte("aaa")), Size: 3},
				{Path: "lib/b.txt", Digest: FromBytes([]byte("bbb")), Size: 3},
				{Path: "lib/dup.txt", Digest: FromBytes([]byte("aaa")), Size: 3},
				{Path: "lib/empty", Digest: Empty},
				{Path: "liblink", Symlink: "lib"},
				{Path: "nested/empty/dir", Dir: true},
			}
			if !reflect.DeepEqual(tr.Entries, want) {
				t.Errorf("entries:\n got %+v\nwant %+v", tr.Entries, want)
			}
			if d != FromBytes(tr.Encode()) {
				t.Error("digest is not the encoding's")
			}
			got, err := s.GetTree(d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tr) {
				t.Errorf("GetTree differs:\n got %+v\nwant %+v", got, tr)
			}
			for _, e := range tr.Entries {
				if !e.Digest.IsZero() {
					if err := s.Verify(e.Digest); err != nil {
						t.Errorf("%s: %v", e.Path, err)
					}
				}
			}
			_, statErr := os.Stat(filepath.Join(dir, "lib", "b.txt"))
			if adopt != errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("adopt=%v but source file stat: %v", adopt, statErr)
			}
		})
	}
	t.Run("same content, same digest", func(t *testing.T) {
		s := newStore(t)
		d1, _, err := s.PutTree(makeTree(t), false)
		if err != nil {
			t.Fatal(err)
		}
		d2, _, err := s.PutTree(makeTree(t), true)
		if err != nil {
			t.Fatal(err)
		}
		if d1 != d2 {
			t.Error("identical trees got different digests")
		}
	})
	t.Run("exec bit matters", func(t *testing.T) {
		s := newStore(t)
		dir := makeTree(t)
		d1, _, _ := s.PutTree(dir, false)
		if err := os.Chmod(filepath.Join(dir, "lib", "a.txt"), 0o744); err != nil {
			t.Fatal(err)
		}
		d2, _, _ := s.PutTree(dir, false)
		if d1 == d2 {
			t.Error("exec bit change did not change the digest")
		}
	})
	t.Run("empty tree", func(t *testing.T) {
		s := newStore(t)
		d, tr, err := s.PutTree(t.TempDir(), false)
		if err != nil || len(tr.Entries) != 0 {
			t.Fatalf("PutTree = %+v, %v", tr, err)
		}
		if _, err := s.GetTree(d); err != nil {
			t.Error(err)
		}
	})
}

func TestPutTreeRejects(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		at      string
		wantErr string
	}{
		{"absolute symlink", "/etc/passwd", "l", "absolute"},
		{"escaping symlink", "../../outside", "sub/l", "leaves the tree"},
		{"escaping via root", "..", "l", "leaves the tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "f"), "keep me", 0o644)
			p := filepath.Join(dir, filepath.FromSlash(tt.at))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(tt.target, p); err != nil {
				t.Fatal(err)
			}
			_, _, err := s.PutTree(dir, true)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			// Nothing was adopted from a rejected tree.
			if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
				t.Errorf("file adopted from a rejected tree: %v", err)
			}
		})
	}
	t.Run("fifo", func(t *testing.T) {
		s := newStore(t)
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.PutTree(dir, false); err == nil {
			t.Error("stored a fifo")
		}
	})
	t.Run("file name not UTF-8", func(t *testing.T) {
		// JSON cannot carry such a name faithfully, so it must not be stored.
		s := newStore(t)
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a\xff"), "x", 0o644)
		if _, _, err := s.PutTree(dir, false); err == nil || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("err = %v, want a UTF-8 complaint", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		s := newStore(t)
		p := filepath.Join(t.TempDir(), "f")
		writeFile(t, p, "x", 0o644)
		if _, _, err := s.PutTree(p, false); err == nil {
			t.Error("PutTree of a file succeeded")
		}
	})
}

func TestMaterializeTree(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "link"}[link], func(t *testing.T) {
			s := newStore(t)
			d, tr, err := s.PutTree(makeTree(t), true)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "mc-out", "pkg", "out")
			if err := s.MaterializeTree(d, dst, link); err != nil {
				t.Fatal(err)
			}
			// Reading the materialized directory back gives the same tree.
			s2 := newStore(t)
			d2, tr2, err := s2.PutTree(dst, false)
			if err != nil {
				t.Fatal(err)
			}
			if d2 != d {
				t.Errorf("materialized tree differs:\n got %+v\nwant %+v", tr2.Entries, tr.Entries)
			}
			fi, err := os.Stat(filepath.Join(dst, "lib", "a.txt"))
			if err != nil {
				t.Fatal(err)
			}
			wantMode := map[bool]os.FileMode{false: 0o644, true: 0o444}[link]
			if fi.Mode().Perm() != wantMode {
				t.Errorf("file mode = %v, want %v", fi.Mode().Perm(), wantMode)
			}
			if got := same(t, filepath.Join(dst, "lib", "a.txt"), s.Path(FromBytes([]byte("aaa")))); got != link {
				t.Errorf("hard linked = %v, want %v", got, link)
			}
			if b, err := os.ReadFile(filepath.Join(dst, "bin", "a")); err != nil || string(b) != "aaa" {
				t.Errorf("symlink read = %q, %v", b, err)
			}
			assertNoTempsIn(t, filepath.Dir(dst))
		})
	}
	t.Run("replaces existing", func(t *testing.T) {
		for _, old := range []string{"dir", "file"} {
			t.Run(old, func(t *testing.T) {
				s := newStore(t)
				d, _, err := s.PutTree(makeTree(t), false)
				if err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(t.TempDir(), "out")
				if old == "dir" {
					writeFile(t, filepath.Join(dst, "stale", "file"), "from an older build", 0o644)
				} else {
					writeFile(t, dst, "a file", 0o644)
				}
				if err := s.MaterializeTree(d, dst, false); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(filepath.Join(dst, "stale")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("old content survived: %v", err)
				}
				if b, err := os.ReadFile(filepath.Join(dst, "lib", "b.txt")); err != nil || string(b) != "bbb" {
					t.Errorf("b.txt = %q, %v", b, err)
				}
				assertNoTempsIn(t, filepath.Dir(dst))
			})
		}
	})
	t.Run("corrupt file blob", func(t *testing.T) {
		s := newStore(t)
		d, _, err := s.PutTree(makeTree(t), false)
		if err != nil {
			t.Fatal(err)
		}
		bad := FromBytes([]byte("bbb"))
		tamper(t, s, bad, "BBB")
		dst := filepath.Join(t.TempDir(), "out")
		if err := s.MaterializeTree(d, dst, false); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
		if s.Has(bad) {
			t.Error("corrupt blob kept")
		}
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("half-materialized tree left at dst: %v", err)
		}
		assertNoTempsIn(t, filepath.Dir(dst))
	})
}

func assertNoTempsIn(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}
