package graph

import (
	"strings"
	"testing"
)

// FuzzParseLabel checks that ParseLabel never panics and that the String()
// of every accepted label parses back to the same label, from any package.
func FuzzParseLabel(f *testing.F) {
	for _, seed := range []struct{ s, cur string }{
		{"//service/api:build", ""},
		{"//service/api", "x"},
		{":build", "service/api"},
		{"main.go", "service/api"},
		{"src/main.go", ""},
		{"//:root", "a"},
		{"//pkg:out/dir/", ""},
		{"//a/../b:c", ""},
		{"@repo//x:y", ""},
		{"//a:b:c", ""},
		{"", ""},
		{"//", ""},
		{":", "p"},
		{"//a b:c", ""},
		{"//...", ""},
	} {
		f.Add(seed.s, seed.cur)
	}
	f.Fuzz(func(t *testing.T, s, cur string) {
		l, err := ParseLabel(s, cur)
		if err != nil {
			if _, ok := err.(*LabelError); !ok {
				t.Fatalf("ParseLabel(%q, %q): error %T is not a *LabelError", s, cur, err)
			}
			return
		}
		str := l.String()
		if !strings.HasPrefix(str, "//") {
			t.Fatalf("String() = %q does not start with //", str)
		}
		for _, from := range []string{"", cur, "other/pkg"} {
			back, err := ParseLabel(str, from)
			if err != nil {
				t.Fatalf("ParseLabel(%q, %q) = %+v, but its String() %q does not parse: %v", s, cur, l, str, err)
			}
			if back != l {
				t.Fatalf("ParseLabel(%q, %q) = %+v; String() %q parses back to %+v", s, cur, l, str, back)
			}
		}
		if err := ValidName(l.Name); err != nil {
			t.Fatalf("ParseLabel(%q, %q) accepted name %q that ValidName rejects: %v", s, cur, l.Name, err)
		}
	})
}

// FuzzParsePattern checks that ParsePattern never panics, that its errors
// are *LabelError, and that String() of an accepted pattern parses back to
// the same pattern.
func FuzzParsePattern(f *testing.F) {
	for _, seed := range []struct{ s, cur string }{
		{"//...", ""},
		{"//service/...", ""},
		{"//service/api:all", ""},
		{"//service/api:*", ""},
		{"//service/...:all", ""},
		{"...", "svc"},
		{"api/...", "svc"},
		{":all", "svc"},
		{":build", "svc"},
		{"//a:b", ""},
		{"//a/../...", ""},
		{"//:all", ""},
		{"x/...:*", ""},
		{"*", "0"},
		{"all", "p"},
	} {
		f.Add(seed.s, seed.cur)
	}
	f.Fuzz(func(t *testing.T, s, cur string) {
		p, err := ParsePattern(s, cur)
		if err != nil {
			if _, ok := err.(*LabelError); !ok {
				t.Fatalf("ParsePattern(%q, %q): error %T is not a *LabelError", s, cur, err)
			}
			return
		}
		str := p.String()
		back, err := ParsePattern(str, "")
		if err != nil {
			t.Fatalf("ParsePattern(%q, %q) = %+v, but its String() %q does not parse: %v", s, cur, p, str, err)
		}
		if back != p {
			t.Fatalf("ParsePattern(%q, %q) = %+v; String() %q parses back to %+v", s, cur, p, str, back)
		}
		_ = p.MatchesPkg(cur)
	})
}
