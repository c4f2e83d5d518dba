// Package wire holds the primitives of mc's small binary encodings (the
// action cache's stored results and run records in cas, the sandbox
// runner's protocol in exec): varints and length-prefixed byte strings,
// read with an error that sticks, so a decoder reads every field and checks
// once at the end.
package wire

import "encoding/binary"

// AppendString appends s with its length as a uvarint before it.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader consumes an encoding. Once a read fails (the input is truncated
// or malformed) every later read returns a zero value and Bad is true.
type Reader struct {
	p   []byte
	bad bool
}

// NewReader returns a Reader of p.
func NewReader(p []byte) *Reader { return &Reader{p: p} }

func (r *Reader) fail() {
	r.bad, r.p = true, nil
}

// Bad reports whether a read failed.
func (r *Reader) Bad() bool { return r.bad }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.p) }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.p = r.p[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.p)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.p = r.p[n:]
	return v
}

// Bytes reads the next n bytes; the result shares the input's memory.
func (r *Reader) Bytes(n uint64) []byte {
	if uint64(len(r.p)) < n {
		r.fail()
		return nil
	}
	v := r.p[:n]
	r.p = r.p[n:]
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if b := r.Bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

// Str reads a string written by AppendString.
func (r *Reader) Str() string { return string(r.Bytes(r.Uvarint())) }
