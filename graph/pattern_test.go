package graph

import "testing"

// TestParsePatternRelative: on the command line, labels and patterns are
// relative to the current directory's package, pkg:name included (Bazel).
func TestParsePatternRelative(t *testing.T) {
	for _, c := range []struct{ s, cur, want string }{
		{"lib:gen", "", "//lib:gen"},
		{"lib:gen", "svc", "//svc/lib:gen"},
		{":gen", "svc", "//svc:gen"},
		{"gen", "svc", "//svc:gen"},
		{"lib:all", "svc", "//svc/lib:all"},
		{"lib/...", "svc", "//svc/lib/..."},
		{"//lib:gen", "svc", "//lib:gen"},
	} {
		p, err := ParsePattern(c.s, c.cur)
		if err != nil {
			t.Errorf("ParsePattern(%q, %q): %v", c.s, c.cur, err)
			continue
		}
		if got := p.String(); got != c.want {
			t.Errorf("ParsePattern(%q, %q) = %s, want %s", c.s, c.cur, got, c.want)
		}
	}
	for _, s := range []string{"lib:a:b", "../lib:gen", "lib/:gen", "@r//x:y"} {
		if p, err := ParsePattern(s, "svc"); err == nil {
			t.Errorf("ParsePattern(%q) = %s, want an error", s, p)
		}
	}
}

// TestValidDeclaredName: a declared name is limited to Bazel's characters
// less those a shell treats specially; the allowed ones all pass.
func TestValidDeclaredName(t *testing.T) {
	if err := ValidDeclaredName("Az09%-@^_+,=~/.x"); err != nil {
		t.Errorf("allowed characters refused: %v", err)
	}
	for _, n := range []string{"a b", "x!", "it's", "a$b", "a;b", "a&b", "a|b", "a*b", "é", "a\"b", "a(b)"} {
		if ValidDeclaredName(n) == nil {
			t.Errorf("ValidDeclaredName(%q) accepted", n)
		}
	}
}
