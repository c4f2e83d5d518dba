// Package graph holds mc's plain-data model: labels, patterns, targets, the
// action graph built from them, and the canonical encoding that gives every
// action its digest. It never sees a Starlark value: the evaluator (lang,
// builtins) hands it ordinary Go structs.
package graph

import (
	"fmt"
	"strings"
)

// Label names a target: //Pkg:Name. The root package is Pkg == "".
// Name may contain slashes (source files and outputs: "src/main.go", "out/api").
type Label struct {
	Pkg  string
	Name string
}

func (l Label) String() string { return "//" + l.Pkg + ":" + l.Name }

// IsZero reports whether l is the zero Label.
func (l Label) IsZero() bool { return l.Pkg == "" && l.Name == "" }

// Less orders labels by package, then name.
func (l Label) Less(o Label) bool {
	if l.Pkg != o.Pkg {
		return l.Pkg < o.Pkg
	}
	return l.Name < o.Name
}

// LabelError is a malformed label or pattern.
type LabelError struct {
	Input  string
	Reason string
}

func (e *LabelError) Error() string { return fmt.Sprintf("invalid label %q: %s", e.Input, e.Reason) }

// ParseLabel parses s relative to package cur. It accepts "//pkg:name",
// "//pkg" (short for //pkg:<last component of pkg>), ":name" and a bare
// "name" (both relative to cur, as in BUILD files: srcs = ["main.go"]).
func ParseLabel(s, cur string) (Label, error) {
	if s == "" {
		return Label{}, &LabelError{s, "empty label"}
	}
	var pkg, name string
	switch {
	case strings.HasPrefix(s, "//"):
		rest := s[2:]
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			pkg, name = rest[:i], rest[i+1:]
			if name == "" {
				return Label{}, &LabelError{s, "empty target name after ':'"}
			}
		} else {
			pkg = rest
			if pkg == "" {
				return Label{}, &LabelError{s, "the root package needs an explicit target name (//:name)"}
			}
			name = pkg[strings.LastIndexByte(pkg, '/')+1:]
		}
	case strings.HasPrefix(s, ":"):
		pkg, name = cur, s[1:]
		if name == "" {
			return Label{}, &LabelError{s, "empty target name after ':'"}
		}
	default:
		if strings.HasPrefix(s, "@") {
			return Label{}, &LabelError{s, "external repositories (@repo) are not supported"}
		}
		pkg, name = cur, s
	}
	if err := checkPkg(pkg); err != "" {
		return Label{}, &LabelError{s, err}
	}
	if err := checkName(name); err != "" {
		return Label{}, &LabelError{s, err}
	}
	return Label{Pkg: pkg, Name: name}, nil
}

// checkPkg validates a package path: slash-separated, no empty, "." or ".."
// components, no leading or trailing slash.
func checkPkg(p string) string {
	if p == "" {
		return ""
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return "package path must not start or end with '/'"
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return "package path has an empty component ('//')"
		case ".", "..":
			return "package path must not contain '.' or '..' components"
		}
		if strings.ContainsAny(c, ":\x00\n\r\t ") || c == "..." {
			return fmt.Sprintf("invalid character in package component %q", c)
		}
	}
	return ""
}

// checkName validates a target name. Names may contain '/', but no empty,
// "." or ".." components, so that a name can never point outside its package.
func checkName(n string) string {
	if n == "" {
		return "empty target name"
	}
	if strings.HasPrefix(n, "/") {
		return "target name must not start with '/'"
	}
	n = strings.TrimSuffix(n, "/") // a directory output "out/dir/" is named with its slash
	for _, c := range strings.Split(n, "/") {
		switch c {
		case "":
			return "target name has an empty component"
		case ".", "..":
			return "target name must not contain '.' or '..' components"
		}
	}
	if strings.ContainsAny(n, ":\x00\n\r") {
		return "target name contains ':' or a control character"
	}
	return ""
}

// ValidName reports whether n is acceptable as a rule name (stage, image, filegroup).
func ValidName(n string) error {
	if msg := checkName(n); msg != "" {
		return &LabelError{n, msg}
	}
	return nil
}

// ValidDeclaredName is ValidName for the names a BUILD file declares (rules
// and a stage's outs): also limited to letters, digits and % - @ ^ _ + , = ~ / .
// That is Bazel's target-name character set less what a shell or a query
// treats specially (space, quotes, !, $, &, ;, |, <, >, brackets, ...), so that
// every declared label can be typed unquoted on the command line.
func ValidDeclaredName(n string) error {
	if err := ValidName(n); err != nil {
		return err
	}
	for _, r := range n {
		if !declaredNameChar(r) {
			return &LabelError{n, fmt.Sprintf("%q is not allowed in a target name (letters, digits and %% - @ ^ _ + , = ~ / . are)", r)}
		}
	}
	return nil
}

func declaredNameChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("%-@^_+,=~/.", r)
}
