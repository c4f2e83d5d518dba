package sandbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMaskWriter(t *testing.T) {
	tests := []struct {
		name    string
		secrets map[string]string
		in      string
		want    string
	}{
		{"no secrets", nil, "plain text", "plain text"},
		{"one secret", map[string]string{"T": "hunter2"}, "pw=hunter2;", "pw=****;"},
		{"twice and adjacent", map[string]string{"T": "hunter2"}, "hunter2hunter2 hunter2", "******** ****"},
		{"short values stay", map[string]string{"T": "abc", "U": "longer"}, "abc longer", "abc ****"},
		{"longest wins", map[string]string{"A": "abcd", "B": "abcdef"}, "abcdef abcd abcdex", "**** **** ****ex"},
		{"prefix at the end", map[string]string{"T": "secret"}, "a secr", "a secr"},
		{"secret at the very end", map[string]string{"T": "secret"}, "x secret", "x ****"},
		{"shorter secret at the end after a longer prefix", map[string]string{"A": "abcd", "B": "abcdef"}, "..abcd", "..****"},
		{"overlapping start", map[string]string{"T": "aab"}, "aaab", "aaab"},
		{"overlapping start, long enough", map[string]string{"T": "aaab"}, "aaaab aaab", "a**** ****"},
		{"multi-line secret", map[string]string{"K": "line1\nline2"}, "k=line1\nline2\n", "k=****\n"},
		{"same value twice", map[string]string{"A": "dup-value", "B": "dup-value"}, "dup-value", "****"},
		{"binary", map[string]string{"T": "\x00\xff\x01\x02"}, "a\x00\xff\x01\x02b", "a****b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every way of splitting the input in two writes, and one byte
			// per write: the result must not depend on the chunking.
			var splits [][]string
			for i := 0; i <= len(tc.in); i++ {
				splits = append(splits, []string{tc.in[:i], tc.in[i:]})
			}
			splits = append(splits, strings.Split(tc.in, ""))
			for _, chunks := range splits {
				var out bytes.Buffer
				w := newMaskWriter(&out, tc.secrets)
				for _, c := range chunks {
					n, err := w.Write([]byte(c))
					if err != nil || n != len(c) {
						t.Fatalf("Write(%q) = %d, %v", c, n, err)
					}
				}
				if m, ok := w.(*maskWriter); ok {
					if err := m.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				if out.String() != tc.want {
					t.Errorf("chunks %q: got %q, want %q", chunks, out.String(), tc.want)
				}
			}
		})
	}
}

// TestMaskWriterHoldsBack checks that a possible secret prefix is not
// written before the data that decides it arrives, and that the caller's
// buffer is not kept.
func TestMaskWriterHoldsBack(t *testing.T) {
	var out bytes.Buffer
	w := newMaskWriter(&out, map[string]string{"T": "topsecret"})
	buf := []byte("x tops")
	w.Write(buf)
	if out.String() != "x " {
		t.Fatalf("after a prefix: %q, want %q", out.String(), "x ")
	}
	copy(buf, "ZZZZZZ") // the writer must have copied what it holds
	w.Write([]byte("ecret!"))
	if out.String() != "x ****!" {
		t.Errorf("got %q, want %q", out.String(), "x ****!")
	}
}

func TestMaskWriterPassThrough(t *testing.T) {
	var out bytes.Buffer
	if w := newMaskWriter(&out, map[string]string{"T": "abc"}); w != &out {
		t.Errorf("with only short secrets the writer should be the sink itself, got %T", w)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMaskWriterError(t *testing.T) {
	w := newMaskWriter(failWriter{}, map[string]string{"T": "secret"})
	if _, err := w.Write([]byte("hello")); err == nil || err.Error() != "disk full" {
		t.Errorf("Write error = %v, want the sink's", err)
	}
}
