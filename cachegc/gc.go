package cachegc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mc-build/mc/cas"
)

// GCOptions say how far GC trims the local tier.
type GCOptions struct {
	// MaxSize is how many bytes of blobs the store may hold afterwards. 0
	// empties it: every result and blob goes. Negative: no limit, GC
	// removes only the blobs no result needs.
	MaxSize int64
	// Now is when GC runs, to judge temp files by (zero: time.Now()).
	Now time.Time
}

// GCReport is what GC found and removed. Byte counts are blob file sizes.
type GCReport struct {
	BlobsBefore      int   `json:"blobs_before"`
	BytesBefore      int64 `json:"bytes_before"`
	BlobsAfter       int   `json:"blobs_after"`
	BytesAfter       int64 `json:"bytes_after"`
	BlobsRemoved     int   `json:"blobs_removed"`
	BytesRemoved     int64 `json:"bytes_removed"`
	ResultsBefore    int   `json:"results_before"`
	ResultsRemoved   int   `json:"results_removed"`
	TempFilesRemoved int   `json:"temp_files_removed"`
	TempBytesRemoved int64 `json:"temp_bytes_removed"`
}

// gcResult is one action result as GC weighs it.
type gcResult struct {
	key   cas.Digest
	last  int64        // unix nanoseconds of its last use, or of its creation
	needs []cas.Digest // the blobs restoring it reads
	trees []cas.Digest // the tree blobs among needs (directory outputs)
}

// GC trims the local tier (store and action cache) to opts.MaxSize bytes of
// blobs, least recently used results first, without breaking a result it
// keeps:
//
//  1. Blobs no result needs (source snapshots, outputs of forgotten
//     results) go first, oldest first, until the store fits.
//  2. If it still does not fit, results are kept from the most recently
//     used (TouchActions; a result never hit counts from its creation) as
//     long as the blobs they need fit; a result that does not fit is
//     dropped, and older, smaller ones may still be kept. A result needs
//     its outputs, its log and, for a directory output, the tree blob and
//     every file of the tree. Then every blob only dropped results need
//     goes too; a blob a kept result needs never does.
//
// Temp files of crashed writers (older than an hour) go as well.
//
// Deletion is crash-safe: the dropped results are deleted from the
// database in one transaction before any blob is removed, so a crash leaves
// at worst blobs nothing needs, never a result naming a removed blob.
// GC must not run while a build writes to the same cache: a build stores
// blobs before it records the results naming them, and GC would take those
// blobs for garbage. Callers hold the cache's gc lock exclusively (builds
// hold it shared, LockShared).
func GC(ctx context.Context, s *cas.Store, db *cas.DB, opts GCOptions) (*GCReport, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	rep := &GCReport{}
	var err error
	if rep.TempFilesRemoved, rep.TempBytesRemoved, err = removeTemps(s, now.Add(-staleTemp)); err != nil {
		return nil, fmt.Errorf("cas: gc: %w", err)
	}
	blobs := map[cas.Digest]blobFile{}
	err = walkBlobs(ctx, s, func(b blobFile) {
		blobs[b.d] = b
		rep.BlobsBefore++
		rep.BytesBefore += b.size
	})
	if err != nil {
		return nil, fmt.Errorf("cas: gc: %w", err)
	}
	results, err := gcResults(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("cas: gc: %w", err)
	}
	rep.ResultsBefore = len(results)
	trees := map[cas.Digest][]cas.Digest{}
	needed := map[cas.Digest]bool{}
	for i := range results {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cas: gc: %w", context.Cause(ctx))
		}
		withTreeFiles(s, &results[i], blobs, trees)
		for _, d := range results[i].needs {
			needed[d] = true
		}
	}

	// Plan first, delete after: the database rows go before any blob.
	total := rep.BytesBefore
	// Nothing fits in 0, which empties the store, empty blobs included;
	// with no limit, no amount of garbage fits.
	fits := func() bool { return opts.MaxSize > 0 && total <= opts.MaxSize }
	var garbage []blobFile
	for _, b := range blobs {
		if !needed[b.d] {
			garbage = append(garbage, b)
		}
	}
	slices.SortFunc(garbage, func(a, b blobFile) int {
		return cmp.Or(a.mtime.Compare(b.mtime), compareDigests(a.d, b.d))
	})
	var remove []blobFile
	for _, b := range garbage {
		if fits() {
			break
		}
		remove = append(remove, b)
		total -= b.size
	}
	var drop []cas.Digest
	if opts.MaxSize >= 0 && !fits() {
		// Every unneeded blob is planned for removal; now the results.
		slices.SortFunc(results, func(a, b gcResult) int {
			return cmp.Or(cmp.Compare(b.last, a.last), compareDigests(a.key, b.key))
		})
		kept := map[cas.Digest]bool{}
		var keptBytes int64
		for _, r := range results {
			var cost int64
			counted := map[cas.Digest]bool{} // a result may name a blob twice
			for _, d := range r.needs {
				if b, ok := blobs[d]; ok && !kept[d] && !counted[d] {
					counted[d] = true
					cost += b.size
				}
			}
			if opts.MaxSize == 0 || keptBytes+cost > opts.MaxSize {
				drop = append(drop, r.key)
				continue
			}
			keptBytes += cost
			for _, d := range r.needs {
				kept[d] = true
			}
		}
		for d := range needed {
			if b, ok := blobs[d]; ok && !kept[d] {
				remove = append(remove, b)
			}
		}
	}

	if rep.ResultsRemoved, err = DeleteActions(ctx, db, drop); err != nil {
		return nil, fmt.Errorf("cas: gc: %w", err)
	}
	var errs []error
	for _, b := range remove {
		if err := ctx.Err(); err != nil {
			errs = append(errs, context.Cause(ctx))
			break
		}
		if err := s.Remove(b.d); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.BlobsRemoved++
		rep.BytesRemoved += b.size
	}
	rep.BlobsAfter = rep.BlobsBefore - rep.BlobsRemoved
	rep.BytesAfter = rep.BytesBefore - rep.BytesRemoved
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("cas: gc: %w", err)
	}
	return rep, nil
}

// gcResults reads every stored result with the blobs it names directly
// (outputs and log). A row that does not decode (a damaged page, a format
// of a newer mc) needs nothing and is weighed like the others.
func gcResults(ctx context.Context, db *cas.DB) ([]gcResult, error) {
	rows, err := db.SQL().QueryContext(ctx, "SELECT key, result, max(used, created) FROM actions")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []gcResult
	for rows.Next() {
		var (
			k, b []byte
			r    gcResult
		)
		if err := rows.Scan(&k, &b, &r.last); err != nil {
			return nil, err
		}
		if len(k) != len(r.key) {
			continue
		}
		copy(r.key[:], k)
		if res, err := cas.DecodeResult(b); err == nil {
			for _, o := range res.Outputs {
				r.needs = append(r.needs, o.Digest)
				if o.IsDir {
					r.trees = append(r.trees, o.Digest)
				}
			}
			if !res.Log.IsZero() {
				r.needs = append(r.needs, res.Log)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// withTreeFiles adds to r.needs the files of r's directory outputs, read
// from their tree blobs (cached in trees). A tree blob that is missing or
// does not decode adds nothing: the result is broken already.
func withTreeFiles(s *cas.Store, r *gcResult, blobs map[cas.Digest]blobFile, trees map[cas.Digest][]cas.Digest) {
	for _, d := range r.trees {
		files, ok := trees[d]
		if !ok {
			if _, present := blobs[d]; present {
				if t, err := s.GetTree(d); err == nil {
					for _, e := range t.Entries {
						if !e.Digest.IsZero() {
							files = append(files, e.Digest)
						}
					}
				}
			}
			trees[d] = files
		}
		r.needs = append(r.needs, files...)
	}
}

// removeTemps removes the store's temp files last modified before cutoff
// and returns how many it removed and their size.
func removeTemps(s *cas.Store, cutoff time.Time) (int, int64, error) {
	ents, err := os.ReadDir(s.TempDir())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	n, size := 0, int64(0)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue // removed concurrently, or maybe still being written
		}
		if err := os.RemoveAll(filepath.Join(s.TempDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, size, err
		}
		n++
		size += info.Size()
	}
	return n, size, nil
}

// staleTemp is how old a temp file of the store must be before gc takes
// it for a crashed writer's (as cas.OpenStore does).
const staleTemp = time.Hour
