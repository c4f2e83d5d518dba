package wire

import (
	"encoding/binary"
	"testing"
)

func TestRoundTripAndStickyError(t *testing.T) {
	b := AppendString(nil, "héllo")
	b = binary.AppendVarint(b, -42)
	b = binary.AppendUvarint(b, 300)
	b = append(b, 7)
	r := NewReader(b)
	if s, v, u, c := r.Str(), r.Varint(), r.Uvarint(), r.Byte(); s != "héllo" || v != -42 || u != 300 || c != 7 || r.Bad() || r.Len() != 0 {
		t.Fatalf("read %q %d %d %d, bad %v, %d left", s, v, u, c, r.Bad(), r.Len())
	}
	// A length past the end fails, and every read after it.
	r = NewReader(binary.AppendUvarint(nil, 10))
	if s := r.Str(); s != "" || !r.Bad() {
		t.Fatalf("truncated string read as %q, bad %v", s, r.Bad())
	}
	if r.Byte() != 0 || r.Uvarint() != 0 || r.Varint() != 0 || r.Bytes(0) != nil || !r.Bad() {
		t.Error("reads after a failure did not return zero values")
	}
	if r := NewReader([]byte{0x80}); r.Uvarint() != 0 || !r.Bad() {
		t.Error("a truncated varint did not fail")
	}
}
