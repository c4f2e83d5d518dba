package cachegc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mc-build/mc/cas"
)

// StoreUsage is what the local blob store holds on disk. Sizes are file
// sizes (what the blobs hold), not allocated blocks.
type StoreUsage struct {
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	TempFiles int   `json:"temp_files"`
	TempBytes int64 `json:"temp_bytes"`
}

// blobFile is one blob found on disk.
type blobFile struct {
	d     cas.Digest
	size  int64
	mtime time.Time
}

// Usage walks the store and counts its blobs and temporary files.
func Usage(ctx context.Context, s *cas.Store) (StoreUsage, error) {
	var u StoreUsage
	err := walkBlobs(ctx, s, func(b blobFile) {
		u.Blobs++
		u.Bytes += b.size
	})
	if err != nil {
		return StoreUsage{}, err
	}
	ents, err := os.ReadDir(s.TempDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return StoreUsage{}, fmt.Errorf("cas: usage: %w", err)
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			u.TempFiles++
			u.TempBytes += info.Size()
		}
	}
	return u, nil
}

// walkBlobs calls fn for every blob file of the store: a regular file named
// by its 64-digit hex digest in the shard directory of its first two
// digits. Anything else (the temp directory, strays) is not a blob.
func walkBlobs(ctx context.Context, s *cas.Store, fn func(blobFile)) error {
	shards, err := os.ReadDir(s.Dir())
	if err != nil {
		return fmt.Errorf("cas: walk store: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 || !isHex(sh.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cas: walk store: %w", context.Cause(ctx))
		}
		ents, err := os.ReadDir(filepath.Join(s.Dir(), sh.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("cas: walk store: %w", err)
		}
		for _, e := range ents {
			var d cas.Digest
			name := e.Name()
			if !e.Type().IsRegular() || len(name) != 2*len(d) || name[:2] != sh.Name() {
				continue
			}
			if _, err := hex.Decode(d[:], []byte(name)); err != nil || d.Hex() != name {
				continue // not lowercase hex: not a name the store writes
			}
			info, err := e.Info()
			if err != nil {
				continue // removed concurrently
			}
			fn(blobFile{d: d, size: info.Size(), mtime: info.ModTime()})
		}
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CountActions returns how many action results the database holds.
func CountActions(ctx context.Context, db *cas.DB) (int, error) {
	var n int
	if err := db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM actions").Scan(&n); err != nil {
		return 0, fmt.Errorf("cas: count actions: %w", err)
	}
	return n, nil
}

// Size is the size of the database's pages (its main file; the write-ahead
// log comes on top until the next checkpoint).
func DBSize(ctx context.Context, db *cas.DB) (int64, error) {
	var n int64
	err := db.SQL().QueryRowContext(ctx,
		"SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cas: database size: %w", err)
	}
	return n, nil
}
