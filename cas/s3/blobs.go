package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
)

// Fetch downloads blob d into dst, verifying it; see cas.Remote.
func (r *Remote) Fetch(ctx context.Context, d cas.Digest, size int64, dst *cas.Store) (err error) {
	defer r.count(&err)
	if dst.Check(d) == nil {
		return nil // a corrupt local copy is removed by Check and fetched again
	}
	if size >= multipartThreshold {
		return r.fetchLarge(ctx, d, dst)
	}
	return r.fetchSmall(ctx, d, size, dst)
}

// fetchSmall streams one GET into the store, which hashes as it writes and
// keeps nothing unless the content matches d.
func (r *Remote) fetchSmall(ctx context.Context, d cas.Digest, size int64, dst *cas.Store) error {
	n := name(nsBlob, d)
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	defer release()
	out, err := r.client.GetObject(ctx, &s3api.GetObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsBlob, d)),
	})
	if err != nil {
		return opError("get", n, err)
	}
	defer out.Body.Close()
	var body io.Reader = out.Body
	if size >= 0 {
		// One byte more than expected is enough to fail the digest; a
		// tampered object cannot make us download without bound.
		body = io.LimitReader(body, size+1)
	}
	if err := dst.PutReaderExpect(body, d); err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	return nil
}

// fetchLarge downloads with parallel ranged GETs into a temporary file on
// the store's filesystem, checks its digest, then moves it into the store:
// no second copy of a large blob.
func (r *Remote) fetchLarge(ctx context.Context, d cas.Digest, dst *cas.Store) error {
	n := name(nsBlob, d)
	release, err := r.acquire(ctx, partConcurrency)
	if err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	defer release()
	f, err := os.CreateTemp(dst.TempDir(), "s3-get-*")
	if err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	tmp := f.Name()
	// After a successful adoption the file is gone from tmp and this
	// removes nothing.
	defer os.Remove(tmp)
	_, err = r.down.Download(ctx, f, &s3api.GetObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsBlob, d)),
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return opError("get", n, err)
	}
	got, err := hashFile(tmp)
	if err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	if got != d {
		return fmt.Errorf("s3 get %s: content is %s: %w", n, got.Short(), cas.ErrCorrupt)
	}
	adopted, _, err := dst.AdoptFile(tmp)
	if err != nil {
		return fmt.Errorf("s3 get %s: %w", n, err)
	}
	if adopted != d {
		// Only if the file changed between hashing and adopting; it is
		// ours alone, so this is not expected.
		return fmt.Errorf("s3 get %s: content changed to %s while being stored: %w", n, adopted.Short(), cas.ErrCorrupt)
	}
	return nil
}

func hashFile(path string) (cas.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return cas.Zero, err
	}
	defer f.Close()
	d, _, err := cas.FromReader(f)
	return d, err
}

// Upload copies the local blob d from src to the remote; see cas.Remote.
// The blob is read through src's verifying reader, so a blob corrupted on
// local disk fails the upload (wrapping cas.ErrCorrupt) instead of
// poisoning the shared cache.
func (r *Remote) Upload(ctx context.Context, d cas.Digest, size int64, src *cas.Store) (err error) {
	defer r.count(&err)
	n := name(nsBlob, d)
	if size < 0 {
		fi, err := os.Stat(src.Path(d))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("s3 put %s: local %w", n, cas.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("s3 put %s: %w", n, err)
		}
		size = fi.Size()
	}
	if size >= headThreshold {
		present, err := r.head(ctx, d, size)
		if err != nil {
			return fmt.Errorf("s3 head %s: %w", n, err)
		}
		if present {
			return nil
		}
	}
	if size >= multipartThreshold {
		return r.uploadLarge(ctx, d, src)
	}
	return r.uploadSmall(ctx, d, size, src)
}

// uploadSmall buffers the verified blob and sends it in one PUT with a
// known length (a seekable body, which SigV4 over plain HTTP needs).
func (r *Remote) uploadSmall(ctx context.Context, d cas.Digest, size int64, src *cas.Store) error {
	n := name(nsBlob, d)
	releaseMem, err := r.acquireMem(ctx, size)
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	defer releaseMem()
	rc, err := src.Open(d)
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead) // ReadFrom sees EOF without growing
	_, err = buf.ReadFrom(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	if err := r.putBytes(ctx, nsBlob, d, buf.Bytes()); err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	return nil
}

// putBytes stores b as the object of d in namespace ns with one PUT, in a
// request slot of its own.
func (r *Remote) putBytes(ctx context.Context, ns string, d cas.Digest, b []byte) error {
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return err
	}
	defer release()
	_, err = r.client.PutObject(ctx, &s3api.PutObjectInput{
		Bucket:        aws.String(r.bucket),
		Key:           aws.String(r.key(ns, d)),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
	})
	return err
}

// uploadLarge streams the blob as a multipart upload. If the local blob
// turns out corrupt the verifying reader fails the last read and the
// uploader aborts, so no object is created.
func (r *Remote) uploadLarge(ctx context.Context, d cas.Digest, src *cas.Store) error {
	n := name(nsBlob, d)
	releaseMem, err := r.acquireMem(ctx, partSize*(partConcurrency+1))
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	defer releaseMem()
	release, err := r.acquire(ctx, partConcurrency)
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	defer release()
	rc, err := src.Open(d)
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	defer rc.Close()
	_, err = r.up.Upload(ctx, &s3api.PutObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsBlob, d)),
		Body:   rc,
	})
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	return nil
}

// head reports whether blob d is present. With size >= 0 an object of
// another size counts as absent, so that Upload replaces a truncated one.
func (r *Remote) head(ctx context.Context, d cas.Digest, size int64) (bool, error) {
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return false, err
	}
	defer release()
	out, err := r.client.HeadObject(ctx, &s3api.HeadObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsBlob, d)),
	})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return size < 0 || aws.ToInt64(out.ContentLength) == size, nil
}

// FindMissing returns the digests of ds the remote lacks, in the order of
// their first appearance, checking them with parallel HEAD requests. The
// first failure cancels the rest and is returned.
func (r *Remote) FindMissing(ctx context.Context, ds []cas.Digest) (_ []cas.Digest, err error) {
	defer r.count(&err)
	uniq := make([]cas.Digest, 0, len(ds))
	seen := make(map[cas.Digest]bool, len(ds))
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	present := make([]bool, len(uniq))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(r.parallel))
	for i, d := range uniq {
		if gctx.Err() != nil {
			break // a HEAD failed: the result is an error anyway
		}
		g.Go(func() error {
			ok, err := r.head(gctx, d, -1)
			if err != nil {
				return fmt.Errorf("s3 head %s: %w", name(nsBlob, d), err)
			}
			present[i] = ok
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3 find missing: %w", err)
	}
	var missing []cas.Digest
	for i, d := range uniq {
		if !present[i] {
			missing = append(missing, d)
		}
	}
	return missing, nil
}
