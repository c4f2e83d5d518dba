package graph

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Query is a parsed query expression (SPEC §7). Parse it with ParseQuery,
// evaluate it with RunQuery.
type Query struct {
	root qexpr
}

// String returns the expression in canonical form: binary operators and
// let are parenthesized, operators spelled +, - and ^, words quoted only when
// they must be. It parses back to the same expression.
func (q *Query) String() string {
	var b strings.Builder
	q.root.format(&b)
	return b.String()
}

// qexpr is a node of the expression tree.
type qexpr interface {
	at() token // the token that starts it, for error positions
	format(b *strings.Builder)
}

// qword is a target pattern (or, as a function argument, a plain word).
type qword struct {
	tok token // tokWord or tokString
}

// qvar is a reference to a let-bound variable: $name.
type qvar struct{ tok token }

// qlet is let name = val in body.
type qlet struct {
	tok       token // "let"
	name      token
	val, body qexpr
}

// qset is set(word...).
type qset struct {
	tok   token
	words []qword
}

// qbinary is left op right; op is '+', '-' or '^'.
type qbinary struct {
	tok         token // the operator
	op          byte
	left, right qexpr
}

// qcall is a function call. Its args follow the function's signature:
// exprs are qexpr, words qword, depths qint.
type qcall struct {
	tok  token // the function name
	name string
	args []qexpr
}

// qint is an integer argument (a depth).
type qint struct {
	tok token
	n   int
}

func (e *qword) at() token   { return e.tok }
func (e *qvar) at() token    { return e.tok }
func (e *qlet) at() token    { return e.tok }
func (e *qset) at() token    { return e.tok }
func (e *qbinary) at() token { return e.tok }
func (e *qcall) at() token   { return e.tok }
func (e *qint) at() token    { return e.tok }

// keywords cannot be unquoted target patterns.
var keywords = map[string]bool{"let": true, "in": true, "set": true, "union": true, "except": true, "intersect": true}

// argKind is what a function argument must be.
type argKind int

const (
	argExpr argKind = iota // a query expression
	argWord                // a word: a regex, attribute name or revision
	argInt                 // a non-negative integer (a depth)
)

// funcSpec is a query function's signature; the last `optional` args may be left out.
type funcSpec struct {
	args     []argKind
	optional int
	usage    string
}

var queryFuncs = map[string]funcSpec{
	"deps":       {[]argKind{argExpr, argInt}, 1, "deps(x[, depth])"},
	"rdeps":      {[]argKind{argExpr, argExpr, argInt}, 1, "rdeps(universe, x[, depth])"},
	"allpaths":   {[]argKind{argExpr, argExpr}, 0, "allpaths(from, to)"},
	"somepath":   {[]argKind{argExpr, argExpr}, 0, "somepath(from, to)"},
	"kind":       {[]argKind{argWord, argExpr}, 0, "kind(regex, x)"},
	"attr":       {[]argKind{argWord, argWord, argExpr}, 0, "attr(name, regex, x)"},
	"filter":     {[]argKind{argWord, argExpr}, 0, "filter(regex, x)"},
	"tests":      {[]argKind{argExpr}, 0, "tests(x)"},
	"buildfiles": {[]argKind{argExpr}, 0, "buildfiles(x)"},
	"labels":     {[]argKind{argWord, argExpr}, 0, "labels(attr, x)"},
	"changed":    {[]argKind{argWord}, 0, `changed("REV")`},
	"affected":   {[]argKind{argWord}, 0, `affected("REV")`},
}

// functionNames lists the functions (and set) for suggestions.
func functionNames() []string {
	names := []string{"set"}
	for n := range queryFuncs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseQuery parses a query expression. Errors are *QueryError.
func ParseQuery(s string) (*Query, error) {
	toks, err := lexQuery(s)
	if err != nil {
		return nil, err
	}
	p := &qparser{toks: toks}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "expected an operator (+, -, ^, union, except, intersect) or end of expression, got %s", t.describe())
	}
	return &Query{root: e}, nil
}

type qparser struct {
	toks []token
	i    int
}

func (p *qparser) peek() token { return p.toks[p.i] }

func (p *qparser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *qparser) errorf(t token, format string, args ...any) error {
	return &QueryError{Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

// binaryOp returns the operator t spells, if any.
func binaryOp(t token) (byte, bool) {
	switch t.kind {
	case tokPlus:
		return '+', true
	case tokMinus:
		return '-', true
	case tokCaret:
		return '^', true
	case tokWord:
		switch t.text {
		case "union":
			return '+', true
		case "except":
			return '-', true
		case "intersect":
			return '^', true
		}
	}
	return 0, false
}

// expr parses primary (op primary)*: all binary operators have the same
// precedence and associate to the left, as in Bazel.
func (p *qparser) expr() (qexpr, error) {
	left, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op, ok := binaryOp(t)
		if !ok {
			return left, nil
		}
		p.next()
		right, err := p.primary()
		if err != nil {
			return nil, err
		}
		left = &qbinary{tok: t, op: op, left: left, right: right}
	}
}

func (p *qparser) primary() (qexpr, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return &qword{tok: t}, nil
	case tokVar:
		return &qvar{tok: t}, nil
	case tokLParen:
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	case tokWord:
		switch t.text {
		case "let":
			return p.let(t)
		case "set":
			return p.set(t)
		case "in", "union", "except", "intersect":
			return nil, p.errorf(t, "expected an expression, got keyword %q (quote it to name a target)", t.text)
		}
		if p.peek().kind == tokLParen {
			if _, ok := queryFuncs[t.text]; !ok {
				return nil, p.errorf(t, "unknown function %q%s", t.text, didYouMean(Closest(t.text, functionNames())))
			}
			return p.call(t)
		}
		return &qword{tok: t}, nil
	}
	return nil, p.errorf(t, "expected an expression, got %s", t.describe())
}

func (p *qparser) expect(k tokKind, what string) error {
	if t := p.peek(); t.kind != k {
		return p.errorf(t, "expected %s, got %s", what, t.describe())
	}
	p.next()
	return nil
}

func (p *qparser) let(kw token) (qexpr, error) {
	name := p.next()
	if name.kind != tokWord || !validVarName(name.text) || keywords[name.text] {
		return nil, p.errorf(name, "expected a variable name after let, got %s", name.describe())
	}
	if err := p.expect(tokEquals, "'='"); err != nil {
		return nil, err
	}
	val, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokWord || t.text != "in" {
		return nil, p.errorf(t, "expected 'in', got %s", t.describe())
	}
	p.next()
	body, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &qlet{tok: kw, name: name, val: val, body: body}, nil
}

func validVarName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func (p *qparser) set(kw token) (qexpr, error) {
	if err := p.expect(tokLParen, "'(' after set"); err != nil {
		return nil, err
	}
	s := &qset{tok: kw}
	for {
		t := p.next()
		switch t.kind {
		case tokRParen:
			return s, nil
		case tokWord, tokString:
			s.words = append(s.words, qword{tok: t})
		default:
			return nil, p.errorf(t, "expected a target pattern or ')' in set(...), got %s", t.describe())
		}
	}
}

func (p *qparser) call(name token) (qexpr, error) {
	spec := queryFuncs[name.text]
	p.next() // (
	c := &qcall{tok: name, name: name.text}
	required := len(spec.args) - spec.optional
	for i, k := range spec.args {
		if i > 0 {
			t := p.peek()
			if t.kind == tokRParen && i >= required {
				break
			}
			if t.kind != tokComma {
				want := "','"
				if i >= required {
					want = "',' or ')'"
				}
				return nil, p.errorf(t, "expected %s, got %s (%s)", want, t.describe(), spec.usage)
			}
			p.next()
		}
		arg, err := p.arg(k, spec)
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, arg)
	}
	if t := p.peek(); t.kind != tokRParen {
		return nil, p.errorf(t, "expected ')', got %s (%s)", t.describe(), spec.usage)
	}
	p.next()
	return c, nil
}

func (p *qparser) arg(k argKind, spec funcSpec) (qexpr, error) {
	switch k {
	case argWord:
		t := p.next()
		if t.kind != tokWord && t.kind != tokString {
			return nil, p.errorf(t, "expected a word or quoted string, got %s (%s)", t.describe(), spec.usage)
		}
		return &qword{tok: t}, nil
	case argInt:
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tokWord || err != nil || n < 0 || strings.TrimLeft(t.text, "0123456789") != "" {
			return nil, p.errorf(t, "expected a non-negative integer depth, got %s (%s)", t.describe(), spec.usage)
		}
		return &qint{tok: t, n: n}, nil
	}
	return p.expr()
}

// --- canonical form ---

func (e *qword) format(b *strings.Builder) { b.WriteString(quoteWord(e.tok.text)) }
func (e *qvar) format(b *strings.Builder)  { b.WriteString("$" + e.tok.text) }
func (e *qint) format(b *strings.Builder)  { b.WriteString(strconv.Itoa(e.n)) }

func (e *qlet) format(b *strings.Builder) {
	b.WriteString("(let " + e.name.text + " = ")
	e.val.format(b)
	b.WriteString(" in ")
	e.body.format(b)
	b.WriteString(")")
}

func (e *qset) format(b *strings.Builder) {
	b.WriteString("set(")
	for i, w := range e.words {
		if i > 0 {
			b.WriteByte(' ')
		}
		w.format(b)
	}
	b.WriteString(")")
}

func (e *qbinary) format(b *strings.Builder) {
	b.WriteString("(")
	e.left.format(b)
	b.WriteString(" " + string(e.op) + " ")
	e.right.format(b)
	b.WriteString(")")
}

func (e *qcall) format(b *strings.Builder) {
	b.WriteString(e.name + "(")
	for i, a := range e.args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.format(b)
	}
	b.WriteString(")")
}

// quoteWord writes w unquoted when the lexer would read it back as the
// same plain word, else in quotes. A lexed string never holds both quote
// characters, so one of them always works.
func quoteWord(w string) string {
	plain := w != "" && !keywords[w] && w[0] != '-' && w[0] != '*' && w[0] != '$'
	for i := 0; plain && i < len(w); i++ {
		plain = isWordChar(w[i])
	}
	switch {
	case plain:
		return w
	case strings.Contains(w, `"`):
		return "'" + w + "'"
	}
	return `"` + w + `"`
}
