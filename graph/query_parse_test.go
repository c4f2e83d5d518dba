package graph

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQueryCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"//a:b", "//a:b"},
		{"  //a/...  ", "//a/..."},
		{":x", ":x"},
		{"'//a:b c'", `"//a:b c"`},
		{`"it's"`, `"it's"`},
		{`'say "hi"'`, `'say "hi"'`},
		{"'union'", `"union"`},
		{"//a:b-c", "//a:b-c"}, // '-' inside a word is part of it
		{"//a:b - //c:d", "(//a:b - //c:d)"},
		{"a + b - c ^ d", "(((a + b) - c) ^ d)"}, // one precedence, left to right
		{"a union b except c intersect d", "(((a + b) - c) ^ d)"},
		{"a + (b - c)", "(a + (b - c))"},
		{"deps(//a)", "deps(//a)"},
		{"deps(//a, 2)", "deps(//a, 2)"},
		{"deps(//a, 007)", "deps(//a, 7)"},
		{"rdeps(//..., //a:b)", "rdeps(//..., //a:b)"},
		{"rdeps(//..., //a:b, 1)", "rdeps(//..., //a:b, 1)"},
		{"allpaths(//a, //b)", "allpaths(//a, //b)"},
		{"somepath(//a, //b)", "somepath(//a, //b)"},
		{`kind("source file", deps(//a))`, `kind("source file", deps(//a))`},
		{"kind(stage, //...)", "kind(stage, //...)"},
		{`attr(tags, '^go$', //...)`, `attr(tags, "^go$", //...)`},
		{`filter('\.go$', //...)`, `filter("\.go$", //...)`},
		{"tests(//...)", "tests(//...)"},
		{"buildfiles(//a:b)", "buildfiles(//a:b)"},
		{"labels(srcs, //a:b)", "labels(srcs, //a:b)"},
		{"set()", "set()"},
		{"set(//a:b :c 'd e')", `set(//a:b :c "d e")`},
		{"let v = //a in $v + //b", "(let v = //a in ($v + //b))"}, // the body extends right
		{"(let v = //a in $v) + //b", "((let v = //a in $v) + //b)"},
		{"let v = //a in let w = $v in $w", "(let v = //a in (let w = $v in $w))"},
		{`changed("HEAD~1")`, "changed(HEAD~1)"},
		{`affected('origin/main')`, "affected(origin/main)"},
		{"deps\n(\n//a\n)", "deps(//a)"},
		{"deps", "deps"}, // a word not followed by '(' is a target pattern
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, err := ParseQuery(tc.in)
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tc.in, err)
			}
			if got := q.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			q2, err := ParseQuery(q.String())
			if err != nil {
				t.Fatalf("canonical form %q does not parse: %v", q.String(), err)
			}
			if q2.String() != q.String() {
				t.Errorf("canonical form is not stable: %q -> %q", q.String(), q2.String())
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		in        string
		line, col int
		msg       string
	}{
		{"", 1, 1, "expected an expression, got end of expression"},
		{"deps(//a", 1, 9, "expected ',' or ')', got end of expression (deps(x[, depth]))"},
		{"deps()", 1, 6, "expected an expression, got ')'"},
		{"deps(//a,)", 1, 10, "expected a non-negative integer depth, got ')'"},
		{"deps(//a, x)", 1, 11, `expected a non-negative integer depth, got word "x"`},
		{"deps(//a, 1, 2)", 1, 12, "expected ')', got ','"},
		{"rdeps(//...)", 1, 12, "expected ',', got ')' (rdeps(universe, x[, depth]))"},
		{"allpaths(//a)", 1, 13, "expected ',', got ')'"},
		{"attr(tags, //a)", 1, 15, "expected ',', got ')'"},
		{"kind(deps(//a), //b)", 1, 10, "expected ',', got '(' (kind(regex, x))"},
		{"kind(, //b)", 1, 6, "expected a word or quoted string, got ','"},
		{"frob(//a)", 1, 1, `unknown function "frob"`},
		{"dep(//a)", 1, 1, `unknown function "dep" (did you mean deps`},
		{"//a:b //c:d", 1, 7, `expected an operator (+, -, ^, union, except, intersect) or end of expression, got word "//c:d"`},
		{"//a +", 1, 6, "expected an expression, got end of expression"},
		{"//a + + //b", 1, 7, "expected an expression, got '+'"},
		{"(//a", 1, 5, "expected ')', got end of expression"},
		{"//a)", 1, 4, "expected an operator"},
		{"'abc", 1, 5, "expected closing ' of the string that starts at column 1, got end of expression"},
		{"x + \"ab\ncd\"", 1, 8, `expected closing " of the string that starts at column 5, got end of line`},
		{"//a !", 1, 5, "unexpected character '!'"},
		{"//a é", 1, 5, "unexpected character 'é'"},
		{"*x", 1, 1, "a word cannot start with '*'"},
		{"$", 1, 2, "expected a variable name after '$', got end of expression"},
		{"$1", 1, 2, "expected a variable name after '$', got '1'"},
		{"let = //a in $x", 1, 5, "expected a variable name after let, got '='"},
		{"let in = //a in $in", 1, 5, `expected a variable name after let, got word "in"`},
		{"let x //a in $x", 1, 7, "expected '=', got word"},
		{"let x = //a $x", 1, 13, "expected 'in', got $x"},
		{"union", 1, 1, `expected an expression, got keyword "union"`},
		{"set(//a, //b)", 1, 8, "expected a target pattern or ')' in set(...), got ','"},
		{"set //a", 1, 5, "expected '(' after set, got word"},
		{"deps(\n  //a,\n  -1)", 3, 3, "expected a non-negative integer depth, got '-'"},
		{"//a +\n\n  )", 3, 3, "expected an expression, got ')'"},
		{"deps(//a, 99999999999999999999)", 1, 11, "expected a non-negative integer depth"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseQuery(tc.in)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("ParseQuery(%q) = %v, want a *QueryError", tc.in, err)
			}
			if qe.Line != tc.line || qe.Col != tc.col || !strings.Contains(qe.Msg, tc.msg) {
				t.Errorf("error %d:%d %q, want %d:%d containing %q", qe.Line, qe.Col, qe.Msg, tc.line, tc.col, tc.msg)
			}
			if want := "query:"; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want it to start with %q", err.Error(), want)
			}
		})
	}
}

// FuzzQueryParse checks that the parser never panics, that every error is a
// *QueryError pointing into the input, and that the canonical form of an
// accepted expression parses back to itself.
func FuzzQueryParse(f *testing.F) {
	for _, s := range []string{
		"//a:b", "deps(//a, 2)", "rdeps(//..., //a:b)", "let v = //a in $v + //b",
		`kind("source file", deps(//a))`, "set(a b 'c d')", "a - b ^ c union d", "somepath(//a, //b)",
		"attr(tags, '^x$', //...)", "labels(srcs, :x)", "buildfiles(//a)", `changed("HEAD")`,
		"(//a", "deps(", "'x", "$", "let x", "//a\n+\n//b", "))", "a,b", "é", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("ParseQuery(%q): error %T (%v) is not a *QueryError", s, err, err)
			}
			lines := strings.Split(s, "\n")
			if qe.Line < 1 || qe.Line > len(lines) {
				t.Fatalf("ParseQuery(%q): line %d outside 1..%d", s, qe.Line, len(lines))
			}
			if qe.Col < 1 || qe.Col > len(lines[qe.Line-1])+1 {
				t.Fatalf("ParseQuery(%q): column %d outside line %d (%d bytes)", s, qe.Col, qe.Line, len(lines[qe.Line-1]))
			}
			if qe.Msg == "" {
				t.Fatalf("ParseQuery(%q): empty message", s)
			}
			return
		}
		c := q.String()
		q2, err := ParseQuery(c)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, s, err)
		}
		if q2.String() != c {
			t.Fatalf("canonical form of %q is unstable: %q -> %q", s, c, q2.String())
		}
	})
}
