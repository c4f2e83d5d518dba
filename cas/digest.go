// Package cas is mc's content-addressed store: SHA-256 digests, the local
// blob store with verify-on-read, trees for directory outputs, and the SQLite
// database holding the action cache, the stat cache and the package cache.
// It imports nothing of mc.
package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Digest is the SHA-256 of a blob. It is a comparable value type.
type Digest [sha256.Size]byte

// Zero is the zero Digest; it names nothing.
var Zero Digest

// Empty is the digest of the empty blob.
var Empty = FromBytes(nil)

// FromBytes returns the digest of b.
func FromBytes(b []byte) Digest { return Digest(sha256.Sum256(b)) }

// FromReader digests everything r yields and returns the byte count too.
func FromReader(r io.Reader) (Digest, int64, error) {
	h := sha256.New()
	// Through the store's pooled buffers: io.Copy from an *os.File would
	// allocate 32 KiB per call (File.WriteTo), which for ten thousand small
	// sources is mostly work for the collector.
	buf := getBuf()
	n, err := io.CopyBuffer(h, readerOnly{r}, buf)
	putBuf(buf)
	if err != nil {
		return Zero, n, err
	}
	return sum(h), n, nil
}

// readerOnly hides every method of a reader but Read, so that io.CopyBuffer
// uses the buffer it is given.
type readerOnly struct{ io.Reader }

func sum(h hash.Hash) Digest {
	var d Digest
	h.Sum(d[:0])
	return d
}

// Hex is the lowercase hex form without a prefix (used for blob paths and S3 keys).
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// String is the "sha256:<hex>" form shown to users.
func (d Digest) String() string { return "sha256:" + d.Hex() }

// Short is the first 12 hex digits, for humans.
func (d Digest) Short() string { return d.Hex()[:12] }

// IsZero reports whether d is the zero Digest.
func (d Digest) IsZero() bool { return d == Zero }

// ErrBadDigest is returned by Parse for malformed input.
var ErrBadDigest = errors.New("malformed digest")

// Parse accepts "sha256:<64 hex>" or bare "<64 hex>".
func Parse(s string) (Digest, error) {
	s = strings.TrimPrefix(s, "sha256:")
	var d Digest
	if len(s) != 2*len(d) {
		return Zero, fmt.Errorf("%w: %q", ErrBadDigest, s)
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return Zero, fmt.Errorf("%w: %q", ErrBadDigest, s)
	}
	return d, nil
}

// MarshalText implements encoding.TextMarshaler ("sha256:<hex>").
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Hasher is a streaming digest computation.
type Hasher struct{ h hash.Hash }

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{sha256.New()} }

func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// Sum returns the digest of everything written.
func (h *Hasher) Sum() Digest { return sum(h.h) }
