package testminio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// opTimeout bounds each helper's request, so that a helper used on a
// stopped server fails the test instead of hanging it.
const opTimeout = 30 * time.Second

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// MakeBucket creates the bucket name.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	for {
		_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		// The readiness probe can answer before the object layer is up: a
		// loaded machine then sees "not initialized" for a while.
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "XMinioServerNotInitialized" && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("testminio: create bucket %s: %v", name, err)
		}
		return
	}
}

// PutRaw writes body as the object key, replacing whatever was there: the
// way tests plant tampered or truncated objects.
func (s *Server) PutRaw(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		t.Fatalf("testminio: put %s/%s: %v", bucket, key, err)
	}
}

// GetRaw returns the content of the object key and whether it exists.
func (s *Server) GetRaw(t testing.TB, bucket, key string) ([]byte, bool) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("testminio: get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("testminio: get %s/%s: %v", bucket, key, err)
	}
	return b, true
}

// Head returns the ETag and size of the object key; a multipart upload's
// ETag ends in "-<parts>".
func (s *Server) Head(t testing.TB, bucket, key string) (etag string, size int64) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	out, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("testminio: head %s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag), aws.ToInt64(out.ContentLength)
}

// List returns the sorted keys of the bucket's objects that start with
// prefix ("" for all).
func (s *Server) List(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("testminio: list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

// Delete removes the object key (absent is no error).
func (s *Server) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	if _, err := s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("testminio: delete %s/%s: %v", bucket, key, err)
	}
}
