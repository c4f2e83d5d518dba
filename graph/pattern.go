package graph

import "strings"

// PatternKind says what a Pattern matches.
type PatternKind int

const (
	// PatternTarget matches one label.
	PatternTarget PatternKind = iota
	// PatternAll matches every rule target in one package (//pkg:all, //pkg:*).
	PatternAll
	// PatternRecursive matches every rule target in Pkg and below (//pkg/...).
	PatternRecursive
)

// Pattern is a target pattern from the command line or a query (SPEC §2).
type Pattern struct {
	Kind  PatternKind
	Label Label // for PatternTarget; for the others only Label.Pkg is set
}

func (p Pattern) String() string {
	switch p.Kind {
	case PatternAll:
		return "//" + p.Label.Pkg + ":all"
	case PatternRecursive:
		if p.Label.Pkg == "" {
			return "//..."
		}
		return "//" + p.Label.Pkg + "/..."
	}
	return p.Label.String()
}

// ParsePattern parses a target pattern relative to package cur:
// //..., //pkg/..., //pkg:all, //pkg:*, //pkg/...:all, ..., pkg/..., :all, and labels.
func ParsePattern(s, cur string) (Pattern, error) {
	abs := s
	if !strings.HasPrefix(s, "//") {
		// Relative pattern: resolve against cur the way a shell user expects.
		switch {
		case strings.HasPrefix(s, ":"):
			abs = "//" + cur + s
		case s == "...":
			abs = "//" + joinPkg(cur, "...")
		case strings.HasSuffix(s, "/...") || strings.HasSuffix(s, "/...:all") || strings.HasSuffix(s, "/...:*"):
			abs = "//" + joinPkg(cur, s)
		case strings.Contains(s, ":") && !strings.HasPrefix(s, "@"):
			// pkg:name, as in Bazel: package pkg below the current one.
			abs = "//" + joinPkg(cur, s)
		default:
			l, err := ParseLabel(s, cur)
			if err != nil {
				return Pattern{}, err
			}
			return targetPattern(l), nil
		}
	}
	rest := abs[2:]
	rest = strings.TrimSuffix(strings.TrimSuffix(rest, ":all"), ":*")
	trimmedAll := len(rest) != len(abs)-2
	if rest == "..." || strings.HasSuffix(rest, "/...") {
		pkg := strings.TrimSuffix(strings.TrimSuffix(rest, "..."), "/")
		if msg := checkPkg(pkg); msg != "" {
			return Pattern{}, &LabelError{s, msg}
		}
		return Pattern{Kind: PatternRecursive, Label: Label{Pkg: pkg}}, nil
	}
	if trimmedAll {
		if msg := checkPkg(rest); msg != "" {
			return Pattern{}, &LabelError{s, msg}
		}
		return Pattern{Kind: PatternAll, Label: Label{Pkg: rest}}, nil
	}
	l, err := ParseLabel(abs, cur)
	if err != nil {
		return Pattern{}, &LabelError{s, err.(*LabelError).Reason}
	}
	return targetPattern(l), nil
}

// targetPattern is the pattern naming l. "all" and "*" are reserved (no
// rule may be so named): //all, short for //all:all, is every target of
// package all, so that a pattern's String() always parses back to it.
func targetPattern(l Label) Pattern {
	if l.Name == "all" || l.Name == "*" {
		return Pattern{Kind: PatternAll, Label: Label{Pkg: l.Pkg}}
	}
	return Pattern{Kind: PatternTarget, Label: l}
}

func joinPkg(cur, rel string) string {
	if cur == "" {
		return rel
	}
	return cur + "/" + rel
}

// MatchesPkg reports whether package pkg is covered by a recursive or :all pattern.
func (p Pattern) MatchesPkg(pkg string) bool {
	switch p.Kind {
	case PatternAll:
		return pkg == p.Label.Pkg
	case PatternRecursive:
		return p.Label.Pkg == "" || pkg == p.Label.Pkg || strings.HasPrefix(pkg, p.Label.Pkg+"/")
	}
	return pkg == p.Label.Pkg
}
