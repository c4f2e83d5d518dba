package lang

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.mc":          "",
		"BUILD.mc":              "",
		"top.go":                "",
		"mc-out/p/x.go":         "",
		"p/BUILD.mc":            "",
		"p/a.go":                "",
		"p/a_test.go":           "",
		"p/.env":                "",
		"p/b.txt":               "",
		"p/x/c.go":              "",
		"p/x/y/d.go":            "",
		"p/x/y/z/e.go":          "",
		"p/x/y/z/e.txt":         "",
		"p/.git/objects/o.go":   "",
		"p/node_modules/m.go":   "",
		"p/deep/node_modules/n": "",
		"p/sub/BUILD.mc":        "",
		"p/sub/s.go":            "",
		"p/sub/inner/i.go":      "",
		"p/logs/app.log":        "",
		"p/gen/":                "",
		"p/empty/":              "",
		"p/dir.go/f":            "",
		"q/BUILD.mc":            "",
		"q/anchored/k.go":       "",
		"anchored/k.go":         "",
	})
	if err := os.Symlink("a.go", filepath.Join(root, "p/link.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(root, "p/linkdir")); err != nil {
		t.Fatal(err)
	}
	tree := NewSourceTree(root, []string{"node_modules", "*.log", "/anchored"})
	tests := []struct {
		name             string
		pkg              string
		include, exclude []string
		want             []string
	}{
		{"star", "p", []string{"*.go"}, nil, []string{"a.go", "a_test.go", "link.go"}},
		{"star matches dot files", "p", []string{"*"}, nil, []string{".env", "BUILD.mc", "a.go", "a_test.go", "b.txt", "link.go"}},
		{"question mark", "p", []string{"?.go"}, nil, []string{"a.go"}},
		{"class", "p", []string{"[ab].*"}, nil, []string{"a.go", "b.txt"}},
		{"literal path", "p", []string{"x/y/d.go"}, nil, []string{"x/y/d.go"}},
		{"literal missing", "p", []string{"x/nope.go"}, nil, []string{}},
		{"double star", "p", []string{"**/*.go"}, nil, []string{"a.go", "a_test.go", "link.go", "x/c.go", "x/y/d.go", "x/y/z/e.go"}},
		{"double star in the middle", "p", []string{"x/**/*.go"}, nil, []string{"x/c.go", "x/y/d.go", "x/y/z/e.go"}},
		{"double star alone", "p", []string{"**"}, nil, []string{".env", "BUILD.mc", "a.go", "a_test.go", "b.txt", "dir.go/f", "link.go", "x/c.go", "x/y/d.go", "x/y/z/e.go", "x/y/z/e.txt"}},
		{"double star twice", "p", []string{"**/y/**/*.txt"}, nil, []string{"x/y/z/e.txt"}},
		{"collapsed double stars", "p", []string{"**/**/e.go"}, nil, []string{"x/y/z/e.go"}},
		{"exclude", "p", []string{"**/*.go"}, []string{"**/*_test.go", "x/y/**"}, []string{"a.go", "link.go", "x/c.go"}},
		{"exclude with star only at top", "p", []string{"**/*.go"}, []string{"*.go"}, []string{"x/c.go", "x/y/d.go", "x/y/z/e.go"}},
		{"several includes are merged", "p", []string{"*.go", "a*", "x/*.go"}, nil, []string{"a.go", "a_test.go", "link.go", "x/c.go"}},
		{"directories are not files", "p", []string{"*.go", "gen", "empty", "x"}, nil, []string{"a.go", "a_test.go", "link.go"}},
		{"a directory named like a file pattern", "p", []string{"dir.go/*"}, nil, []string{"dir.go/f"}},
		{"sub-package boundary", "p", []string{"sub/**", "**/s.go", "**/i.go"}, nil, []string{}},
		{"hidden directories", "p", []string{"**/o.go", ".git/**"}, nil, []string{}},
		{"ignored by name", "p", []string{"**/m.go", "node_modules/*", "deep/**", "**/*.log"}, nil, []string{}},
		{"symlinked directory not followed", "p", []string{"linkdir/*"}, nil, []string{}},
		{"root package skips mc-out and sub-packages", "", []string{"**/*.go"}, nil, []string{"top.go"}},
		{"anchored ignore only at its path", "q", []string{"**"}, nil, []string{"BUILD.mc", "anchored/k.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tree.Glob(tt.pkg, tt.include, tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGlobBadPatterns(t *testing.T) {
	tree := NewSourceTree(writeTree(t, map[string]string{"p/BUILD.mc": ""}), nil)
	for _, tt := range []struct{ pat, want string }{
		{"", `invalid glob pattern "": empty pattern`},
		{"/abs/*.go", `invalid glob pattern "/abs/*.go": patterns are relative to the package; remove the leading '/'`},
		{"../x", `invalid glob pattern "../x": "." and ".." are not allowed`},
		{"a/./b", `invalid glob pattern "a/./b": "." and ".." are not allowed`},
		{"a//b", `invalid glob pattern "a//b": empty path component`},
		{"dir/", `invalid glob pattern "dir/": empty path component`},
		{"a**/b", `invalid glob pattern "a**/b": "**" must be a whole path component`},
		{"[a", `invalid glob pattern "[a": syntax error in pattern`},
	} {
		t.Run(tt.pat, func(t *testing.T) {
			_, err := tree.Glob("p", []string{tt.pat}, nil)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
			_, err = tree.Glob("p", []string{"*"}, []string{tt.pat})
			if err == nil || err.Error() != tt.want {
				t.Errorf("as exclude: got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestMatchParts(t *testing.T) {
	for _, tt := range []struct {
		pat, path string
		want      bool
	}{
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/a", "a", true},
		{"**/a", "x/y/a", true},
		{"a/**", "a", false},
		{"a/**", "a/b", true},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"*.go", "x/a.go", false},
		{"*/*.go", "x/a.go", true},
	} {
		p, err := parsePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := matchParts(p, strings.Split(tt.path, "/")); got != tt.want {
			t.Errorf("matchParts(%q, %q) = %v, want %v", tt.pat, tt.path, got, tt.want)
		}
	}
}

func TestCheckIgnore(t *testing.T) {
	for _, tt := range []struct {
		entry string
		ok    bool
	}{
		{"node_modules", true},
		{"*.log", true},
		{"build/tmp", true},
		{"/dist", true},
		{"dist/", true},
		{"", false},
		{"/", false},
		{"../x", false},
		{"a//b", false},
		{"./a", false},
		{"[x", false},
	} {
		if err := CheckIgnore(tt.entry); (err == nil) != tt.ok {
			t.Errorf("CheckIgnore(%q) = %v, want ok=%v", tt.entry, err, tt.ok)
		}
	}
}
