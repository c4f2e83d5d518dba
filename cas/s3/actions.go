package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mc-build/mc/cas"
)

// GetAction returns the result stored under key, or nil, nil when there is
// none. A result that does not decode wraps cas.ErrCorrupt.
func (r *Remote) GetAction(ctx context.Context, key cas.Digest) (_ *cas.ActionResult, err error) {
	defer r.count(&err)
	n := name(nsAction, key)
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", n, err)
	}
	defer release()
	out, err := r.client.GetObject(ctx, &s3api.GetObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsAction, key)),
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", n, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxResultSize+1))
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", n, err)
	}
	if len(b) > maxResultSize {
		return nil, fmt.Errorf("s3 get %s: action result larger than %d bytes: %w", n, maxResultSize, cas.ErrCorrupt)
	}
	res, err := cas.DecodeResult(b)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: undecodable action result (%v): %w", n, err, cas.ErrCorrupt)
	}
	return res, nil
}

// PutAction stores res under key, replacing any earlier result.
func (r *Remote) PutAction(ctx context.Context, key cas.Digest, res *cas.ActionResult) (err error) {
	defer r.count(&err)
	n := name(nsAction, key)
	b, err := cas.EncodeResult(res)
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	if err := r.putBytes(ctx, nsAction, key, b); err != nil {
		return fmt.Errorf("s3 put %s: %w", n, err)
	}
	return nil
}

// DeleteAction removes the result of key; absent is no error.
func (r *Remote) DeleteAction(ctx context.Context, key cas.Digest) (err error) {
	defer r.count(&err)
	n := name(nsAction, key)
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return fmt.Errorf("s3 delete %s: %w", n, err)
	}
	defer release()
	_, err = r.client.DeleteObject(ctx, &s3api.DeleteObjectInput{
		Bucket: aws.String(r.bucket),
		Key:    aws.String(r.key(nsAction, key)),
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3 delete %s: %w", n, err)
	}
	return nil
}

// Purge deletes every object under the prefix and returns how many it
// deleted. Without a prefix it deletes only the cas/ and ac/ namespaces:
// the rest of the bucket is not the cache's to delete.
func (r *Remote) Purge(ctx context.Context) (deleted int, err error) {
	defer r.count(&err)
	prefixes := []string{r.prefix + "/"}
	if r.prefix == "" {
		prefixes = []string{nsBlob + "/", nsAction + "/"}
	}
	for _, p := range prefixes {
		n, err := r.purge(ctx, p)
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("s3 purge %s: %w", r, err)
		}
	}
	return deleted, nil
}

// purge deletes the objects whose keys start with prefix, a batch of keys
// at a time as the listing yields them.
func (r *Remote) purge(ctx context.Context, prefix string) (int, error) {
	deleted := 0
	batch := make([]types.ObjectIdentifier, 0, deleteBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := r.deleteObjects(ctx, batch)
		deleted += n
		batch = batch[:0]
		return err
	}
	pages := s3api.NewListObjectsV2Paginator(r.client, &s3api.ListObjectsV2Input{
		Bucket: aws.String(r.bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := r.nextPage(ctx, pages)
		if err != nil {
			return deleted, fmt.Errorf("list: %w", err)
		}
		for _, o := range page.Contents {
			batch = append(batch, types.ObjectIdentifier{Key: o.Key})
			if len(batch) == deleteBatch {
				if err := flush(); err != nil {
					return deleted, err
				}
			}
		}
	}
	return deleted, flush()
}

func (r *Remote) nextPage(ctx context.Context, p *s3api.ListObjectsV2Paginator) (*s3api.ListObjectsV2Output, error) {
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer release()
	return p.NextPage(ctx)
}

// deleteObjects deletes the objects of batch with one request and returns
// how many went.
func (r *Remote) deleteObjects(ctx context.Context, batch []types.ObjectIdentifier) (int, error) {
	release, err := r.acquire(ctx, 1)
	if err != nil {
		return 0, err
	}
	defer release()
	out, err := r.client.DeleteObjects(ctx, &s3api.DeleteObjectsInput{
		Bucket: aws.String(r.bucket),
		Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return len(batch) - len(out.Errors), fmt.Errorf("delete %s: %s: %s (and %d more failures)",
			aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
	}
	return len(batch), nil
}
