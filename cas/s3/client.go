package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Timeouts and retries: the build falls back to local work when S3 is down,
// so a dead endpoint must cost seconds, not minutes.
const (
	dialTimeout   = 2 * time.Second
	headerTimeout = 30 * time.Second
	// readTimeout is the longest silence tolerated while reading a response.
	readTimeout = 30 * time.Second
	maxAttempts = 3
	maxBackoff  = time.Second
	// defaultRegion applies when neither the environment nor the shared
	// config names one; S3-compatible servers mostly ignore it.
	defaultRegion = "us-east-1"
)

// checksumCalc: blobs are verified by their SHA-256 end to end, so the
// SDK's extra CRC checksums buy nothing and some S3-compatible servers
// reject them; only operations that require one (DeleteObjects) get one.
const checksumCalc = aws.RequestChecksumCalculationWhenRequired

// newClient builds the S3 client: AWS configuration from getenv, the
// timeouts and retries above, and request counting into st.
func newClient(ctx context.Context, getenv func(string) (string, bool), endpoint string, parallel int, st *counters) (*s3api.Client, error) {
	base := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = headerTimeout
			t.MaxIdleConnsPerHost = parallel
		}).
		WithReadTimeout(readTimeout)

	lookup := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := getenv(k); ok && v != "" {
				return v
			}
		}
		return ""
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(base),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = maxBackoff
			})
		}),
		config.WithRequestChecksumCalculation(checksumCalc),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithDefaultRegion(defaultRegion),
	}
	if region := lookup("AWS_REGION", "AWS_DEFAULT_REGION"); region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if id, secret := lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, lookup("AWS_SESSION_TOKEN"))))
	}
	if profile := lookup("AWS_PROFILE"); profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if f := lookup("AWS_CONFIG_FILE"); f != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{f}))
	}
	if f := lookup("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{f}))
	}
	if f := lookup("AWS_CA_BUNDLE"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
		}
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	// The config has built the transport (timeouts, CA bundle); wrap it
	// last so that counting sees exactly the S3 client's traffic.
	hc := &countingClient{next: cfg.HTTPClient, st: st}
	return s3api.NewFromConfig(cfg, func(o *s3api.Options) {
		o.HTTPClient = hc
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// countingClient counts requests and body bytes for Stats.
type countingClient struct {
	next aws.HTTPClient
	st   *counters
}

func (c *countingClient) Do(req *http.Request) (*http.Response, error) {
	c.st.requests.Add(1)
	resp, err := c.next.Do(req)
	if err != nil {
		return resp, err
	}
	if req.ContentLength > 0 {
		c.st.bytesUp.Add(req.ContentLength)
	}
	if resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.st.bytesDown}
	}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n interface{ Add(int64) int64 }
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
