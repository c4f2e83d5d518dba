package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// ErrNotFound is returned by Objects.Get for an absent object.
var ErrNotFound = errors.New("object not found")

// ObjectInfo is one listed object.
type ObjectInfo struct {
	Key      string // relative to the cache prefix
	ETag     string
	Size     int64
	Modified time.Time
}

// Objects is the small part of S3 the runner protocol needs, with keys
// relative to the shared cache's prefix.
type Objects interface {
	Put(ctx context.Context, key string, b []byte) error
	// Get returns ErrNotFound (wrapped) for an absent object.
	Get(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// PresignGet returns a URL that GETs key without credentials until ttl
	// has passed.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// S3Objects is Objects in the bucket and prefix of an s3:// cache URL.
type S3Objects struct {
	bucket, prefix string
	client         *s3api.Client
}

// maxObject bounds what Get reads: protocol objects are small.
const maxObject = 64 << 20

// OpenObjects returns the Objects of url ("s3://bucket[/prefix]"), configured
// like the shared cache (cas/s3): endpoint (MC_S3_ENDPOINT, path-style),
// credentials and region from getenv, else the SDK's default chain (on EC2:
// the instance role).
func OpenObjects(ctx context.Context, url, endpoint string, getenv func(string) (string, bool)) (*S3Objects, error) {
	rest, ok := strings.CutPrefix(url, "s3://")
	if !ok {
		return nil, fmt.Errorf("%s: not an s3:// URL", url)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" {
		return nil, fmt.Errorf("%s: no bucket", url)
	}
	if getenv == nil {
		getenv = os.LookupEnv
	}
	lookup := func(k string) string { v, _ := getenv(k); return v }
	if endpoint == "" {
		endpoint = lookup("MC_S3_ENDPOINT")
	}
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 2 * time.Second }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = 30 * time.Second })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 3; o.MaxBackoff = time.Second })
		}),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithDefaultRegion("us-east-1"),
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if v := lookup(k); v != "" {
			opts = append(opts, config.WithRegion(v))
			break
		}
	}
	if id, secret := lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, lookup("AWS_SESSION_TOKEN"))))
	}
	if f := lookup("AWS_CONFIG_FILE"); f != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{f}))
	}
	if f := lookup("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{f}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	client := s3api.NewFromConfig(cfg, func(o *s3api.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	return &S3Objects{bucket: bucket, prefix: prefix, client: client}, nil
}

func (o *S3Objects) key(k string) string {
	if o.prefix == "" {
		return k
	}
	return o.prefix + "/" + k
}

// Put writes b under key.
func (o *S3Objects) Put(ctx context.Context, key string, b []byte) error {
	_, err := o.client.PutObject(ctx, &s3api.PutObjectInput{
		Bucket: aws.String(o.bucket), Key: aws.String(o.key(key)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
	})
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", key, err)
	}
	return nil
}

// Get reads key.
func (o *S3Objects) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := o.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key(key))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3 get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxObject))
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	return b, nil
}

// Delete removes key; absent is no error.
func (o *S3Objects) Delete(ctx context.Context, key string) error {
	_, err := o.client.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key(key))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3 delete %s: %w", key, err)
	}
	return nil
}

// List returns the objects under prefix.
func (o *S3Objects) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	p := s3api.NewListObjectsV2Paginator(o.client, &s3api.ListObjectsV2Input{
		Bucket: aws.String(o.bucket), Prefix: aws.String(o.key(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, err)
		}
		for _, c := range page.Contents {
			k := aws.ToString(c.Key)
			if o.prefix != "" {
				k = strings.TrimPrefix(k, o.prefix+"/")
			}
			out = append(out, ObjectInfo{Key: k, ETag: aws.ToString(c.ETag), Size: aws.ToInt64(c.Size), Modified: aws.ToTime(c.LastModified)})
		}
	}
	return out, nil
}

// PresignGet returns a presigned GET URL for key.
func (o *S3Objects) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := s3api.NewPresignClient(o.client).PresignGetObject(ctx,
		&s3api.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key(key))},
		s3api.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presigning %s: %w", key, err)
	}
	return req.URL, nil
}

func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
