package cas

import "context"

// Remote is the shared second tier of the cache (an S3 bucket): blobs by
// digest, immutable, and action results by action key. The local Store and
// DB stay the first tier; the scheduler reads through to a Remote on a local
// miss and writes to both. Implementations must be safe for concurrent use
// and must bound their own parallelism.
//
// Errors: a blob or result that is absent is ErrNotFound (GetAction returns
// nil, nil instead); content that does not match its digest wraps
// ErrCorrupt; anything else is the remote being unreachable or refusing.
type Remote interface {
	// String names the remote for messages, e.g. "s3://bucket/prefix".
	String() string
	// GetAction returns the stored result of the action key, or nil, nil.
	// A stored result that does not decode wraps ErrCorrupt.
	GetAction(ctx context.Context, key Digest) (*ActionResult, error)
	// PutAction stores r under key. Callers upload every blob r names first.
	PutAction(ctx context.Context, key Digest, r *ActionResult) error
	// DeleteAction removes the result of key; absent is no error.
	DeleteAction(ctx context.Context, key Digest) error
	// FindMissing returns the digests of ds that the remote does not hold,
	// checking them in parallel.
	FindMissing(ctx context.Context, ds []Digest) ([]Digest, error)
	// Fetch downloads blob d (of the given size, -1 if unknown) into dst,
	// verifying it: a tampered or truncated object wraps ErrCorrupt and
	// nothing is written to dst.
	Fetch(ctx context.Context, d Digest, size int64, dst *Store) error
	// Upload copies the local blob d (of the given size) from src to the
	// remote.
	Upload(ctx context.Context, d Digest, size int64, src *Store) error
	// Purge deletes every object under the remote's prefix (blobs and action
	// results) and returns how many it deleted.
	Purge(ctx context.Context) (int, error)
}

// EncodeResult is the stored form of r, the one the local DB keeps; remotes
// store the same bytes.
func EncodeResult(r *ActionResult) ([]byte, error) { return encodeResult(r) }
