package builtins

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
	"github.com/mc-build/mc/oci"
)

// unpackKeywords unpacks the arguments of a keyword-only builtin. pairs are
// as for starlark.UnpackArgs (name, pointer, ...), with "name??" for
// optional parameters (None counts as absent). Unknown keywords are
// reported with a suggestion; every error is positioned at the call.
func unpackKeywords(thread *starlark.Thread, fn string, args starlark.Tuple, kwargs []starlark.Tuple, pairs ...any) error {
	names := paramNames(pairs)
	if len(args) > 0 {
		return lang.ThreadErrorf(thread, "%s: got %d positional argument(s); %s() takes keyword arguments only (%s = ...)", fn, len(args), fn, names[0])
	}
	if err := checkKeywords(fn, kwargs, names); err != "" {
		return lang.ThreadErrorf(thread, "%s", err)
	}
	if err := starlark.UnpackArgs(fn, nil, kwargs, pairs...); err != nil {
		return lang.ThreadErrorf(thread, "%s", err)
	}
	return nil
}

func paramNames(pairs []any) []string {
	names := make([]string, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		names = append(names, strings.TrimRight(pairs[i].(string), "?"))
	}
	return names
}

// checkKeywords reports the first keyword argument that is not a parameter.
func checkKeywords(fn string, kwargs []starlark.Tuple, names []string) string {
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if slices.Contains(names, k) {
			continue
		}
		msg := fmt.Sprintf("%s: unexpected keyword argument %q", fn, k)
		if c := graph.Closest(k, names); len(c) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", c[0])
		}
		return msg
	}
	return ""
}

// stringList unpacks a list (or tuple) of strings. It stays nil when the
// argument is absent or empty.
type stringList []string

func (l *stringList) Unpack(v starlark.Value) error {
	var elems []starlark.Value
	switch x := v.(type) {
	case *starlark.List:
		for i := 0; i < x.Len(); i++ {
			elems = append(elems, x.Index(i))
		}
	case starlark.Tuple:
		elems = x
	default:
		return fmt.Errorf("got %s, want list of strings", v.Type())
	}
	var out []string
	for i, e := range elems {
		s, ok := starlark.AsString(e)
		if !ok {
			return fmt.Errorf("got %s at index %d, want list of strings", e.Type(), i)
		}
		out = append(out, s)
	}
	*l = out
	return nil
}

// stringDict unpacks a dict of string to string, keeping insertion order
// for error messages. It stays nil when absent or empty.
type stringDict struct {
	keys []string
	m    map[string]string
}

func (d *stringDict) Unpack(v starlark.Value) error {
	return unpackDict(v, "dict of string to string", d, func(x starlark.Value) (string, bool) {
		return starlark.AsString(x)
	})
}

// machineDict unpacks a dict of string to string or int (ints are kept in
// their decimal form).
type machineDict struct{ stringDict }

func (d *machineDict) Unpack(v starlark.Value) error {
	return unpackDict(v, "dict of string to string or int", &d.stringDict, func(x starlark.Value) (string, bool) {
		switch x := x.(type) {
		case starlark.String:
			return string(x), true
		case starlark.Int:
			return x.String(), true
		}
		return "", false
	})
}

func unpackDict(v starlark.Value, want string, d *stringDict, value func(starlark.Value) (string, bool)) error {
	dict, ok := v.(*starlark.Dict)
	if !ok {
		return fmt.Errorf("got %s, want %s", v.Type(), want)
	}
	for _, item := range dict.Items() {
		k, ok := starlark.AsString(item[0])
		if !ok {
			return fmt.Errorf("got %s key %s, want %s", item[0].Type(), item[0], want)
		}
		s, ok := value(item[1])
		if !ok {
			return fmt.Errorf("got %s value for key %q, want %s", item[1].Type(), k, want)
		}
		if d.m == nil {
			d.m = map[string]string{}
		}
		d.keys = append(d.keys, k)
		d.m[k] = s
	}
	return nil
}

// commandList unpacks cmd: a string, or a list of strings.
type commandList []string

func (c *commandList) Unpack(v starlark.Value) error {
	if s, ok := v.(starlark.String); ok {
		*c = []string{string(s)}
		return nil
	}
	var l stringList
	if err := l.Unpack(v); err != nil {
		if _, isList := v.(*starlark.List); isList {
			return err
		}
		if _, isTuple := v.(starlark.Tuple); isTuple {
			return err
		}
		return fmt.Errorf("got %s, want string or list of strings", v.Type())
	}
	*c = commandList(l)
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvName validates an environment variable name.
func checkEnvName(name string) error {
	if !envName.MatchString(name) {
		return fmt.Errorf("%q is not a valid environment variable name (letters, digits and _, not starting with a digit)", name)
	}
	return nil
}

// parseDuration parses a Go-style duration ("90s", "30m", "2h", "1h30m")
// that must be positive.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a number with a unit, like \"90s\", \"30m\" or \"2h\")", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return d, nil
}

// parseLabels parses label strings relative to pkg.
func parseLabels(ss []string, pkg string) ([]graph.Label, error) {
	var out []graph.Label
	for _, s := range ss {
		l, err := graph.ParseLabel(s, pkg)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// checkRuleName validates the name of a stage, image or filegroup.
func checkRuleName(name string) error {
	if err := graph.ValidDeclaredName(name); err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(name, "/"):
		return fmt.Errorf("invalid target name %q: must not end with '/'", name)
	case name == "all" || name == "*":
		return fmt.Errorf("target name %q is reserved: //pkg:%s means every target of the package", name, name)
	}
	return nil
}

// imageOrLabel normalises an image reference attribute: a value starting
// with "//" or ":" is a label (returned in its absolute form), anything else
// must be a registry reference.
func imageOrLabel(s, pkg string) (string, error) {
	if s == "" {
		return "", nil
	}
	if strings.HasPrefix(s, "//") || strings.HasPrefix(s, ":") {
		l, err := graph.ParseLabel(s, pkg)
		if err != nil {
			return "", err
		}
		return l.String(), nil
	}
	if err := checkReference(s); err != nil {
		return "", err
	}
	// What pulling will use, stricter about digests than the grammar above.
	if err := oci.ParseReference(s); err != nil {
		return "", err
	}
	return s, nil
}
