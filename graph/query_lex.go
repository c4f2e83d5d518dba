package graph

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// QueryError is a mistake in a query expression: a syntax error, or a word
// that does not make sense where it stands (an unknown target, a bad
// regular expression). Line and Col (1-based, Col in bytes) point at the
// token where it was found; main prints it as query:LINE:COL: Msg.
type QueryError struct {
	Line int
	Col  int
	Msg  string
}

func (e *QueryError) Error() string { return fmt.Sprintf("query:%d:%d: %s", e.Line, e.Col, e.Msg) }

// tokKind is the kind of a query token.
type tokKind int

const (
	tokEOF    tokKind = iota
	tokWord           // an unquoted word: a target pattern, function name, keyword or number
	tokString         // a quoted word ('…' or "…"); never a keyword or function name
	tokVar            // $name
	tokLParen         // (
	tokRParen         // )
	tokComma          // ,
	tokPlus           // +
	tokMinus          // -
	tokCaret          // ^
	tokEquals         // =
)

// token is one lexeme with its position. For tokWord and tokString, text is
// the word (without quotes); for tokVar, the name without '$'.
type token struct {
	kind tokKind
	text string
	line int
	col  int
	off  int // byte offset of the token in the input
}

// describe names the token in "expected X, got Y" messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokWord:
		return fmt.Sprintf("word %q", t.text)
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	case tokVar:
		return "$" + t.text
	}
	return "'" + punct[t.kind] + "'"
}

var punct = map[tokKind]string{
	tokLParen: "(", tokRParen: ")", tokComma: ",", tokPlus: "+", tokMinus: "-", tokCaret: "^", tokEquals: "=",
}

// isWordChar reports whether c may appear in an unquoted word. As in Bazel:
// letters, digits and */@.-_:$~[] ; a word may not start with '-' or '*'
// (a leading '-' is the minus operator; '$' starts a variable).
func isWordChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("*/@.-_:$~[]", c) >= 0
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }

// lexQuery splits s into tokens, ending with one tokEOF.
func lexQuery(s string) ([]token, error) {
	var toks []token
	line, lineStart := 1, 0
	i := 0
	at := func(off int) (int, int) { return line, off - lineStart + 1 }
	errAt := func(off int, format string, args ...any) error {
		l, c := at(off)
		return &QueryError{Line: l, Col: c, Msg: fmt.Sprintf(format, args...)}
	}
	emit := func(k tokKind, text string, off int) {
		l, c := at(off)
		toks = append(toks, token{kind: k, text: text, line: l, col: c, off: off})
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			i++
			line, lineStart = line+1, i
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',' || c == '+' || c == '-' || c == '^' || c == '=':
			k := map[byte]tokKind{'(': tokLParen, ')': tokRParen, ',': tokComma, '+': tokPlus, '-': tokMinus, '^': tokCaret, '=': tokEquals}[c]
			emit(k, "", i)
			i++
		case c == '\'' || c == '"':
			// Quoted words have no escapes (as in Bazel): everything up to
			// the next quote of the same kind, on one line.
			end := strings.IndexAny(s[i+1:], string(c)+"\n")
			if end < 0 || s[i+1+end] == '\n' {
				stop := len(s)
				if end >= 0 {
					stop = i + 1 + end
				}
				return nil, errAt(stop, "expected closing %c of the string that starts at column %d, got %s", c, i-lineStart+1, endDescription(s, stop))
			}
			emit(tokString, s[i+1:i+1+end], i)
			i += end + 2
		case c == '$':
			j := i + 1
			if j >= len(s) || !isNameStart(s[j]) {
				return nil, errAt(j, "expected a variable name after '$', got %s", charDescription(s, j))
			}
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			emit(tokVar, s[i+1:j], i)
			i = j
		case c == '*':
			return nil, errAt(i, "expected an expression, got '*' (a word cannot start with '*'; quote it)")
		case isWordChar(c):
			j := i
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			emit(tokWord, s[i:j], i)
			i = j
		default:
			return nil, errAt(i, "unexpected character %s (quote words that contain it)", charDescription(s, i))
		}
	}
	emit(tokEOF, "", len(s))
	return toks, nil
}

// charDescription names the character at byte offset i of s for messages.
func charDescription(s string, i int) string {
	if i >= len(s) {
		return "end of expression"
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError || r < ' ' || r == 0x7f {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}

func endDescription(s string, i int) string {
	if i >= len(s) {
		return "end of expression"
	}
	return "end of line"
}
