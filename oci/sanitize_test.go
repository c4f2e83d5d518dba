package oci

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanEntryName(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{"a/b", "a/b"},
		{"./a/b/", "a/b"},
		{"/abs/x", "abs/x"},
		{"//a//./b", "a/b"},
		{"./", "."},
		{"/", "."},
		{"a/..b/c..", "a/..b/c.."},
		{"../x", ""},
		{"/abs/../../x", ""},
		{"a/../b", ""},
		{"..", ""},
		{"", ""},
		{"a\x00b", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cleanEntryName(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("cleanEntryName(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("cleanEntryName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzCleanEntryName checks that whatever a tar names, the accepted result
// joined to a root never leaves it.
func FuzzCleanEntryName(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs/../../x", "./", "a/./../..", "...", "a/.../b", "\\..\\x", "//"} {
		f.Add(s)
	}
	const root = "/rootfs"
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := cleanEntryName(name)
		if err != nil {
			return
		}
		if rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("cleanEntryName(%q) = %q, not local", name, rel)
		}
		p := filepath.Join(root, rel)
		if p != root && !strings.HasPrefix(p, root+"/") {
			t.Fatalf("cleanEntryName(%q) = %q joins to %q, outside %s", name, rel, p, root)
		}
		if p != filepath.Clean(p) || strings.Contains(rel, "//") {
			t.Fatalf("cleanEntryName(%q) = %q is not clean", name, rel)
		}
	})
}
