// Package s3 is the S3 second tier of mc's cache: a cas.Remote kept in an S3
// bucket, on AWS or on any S3-compatible server (MinIO, Ceph, R2...).
//
// Layout under s3://bucket/prefix (with no prefix, keys start at cas/ and
// ac/):
//
//	<prefix>/cas/<sha256 hex>         a blob, named by the SHA-256 of its
//	                                  content; immutable once written
//	<prefix>/ac/<action sha256 hex>   the result of an action, by action key:
//	                                  exactly the bytes of cas.EncodeResult
//
// The bucket is not trusted: every blob is verified against its digest on the
// way down (a mismatch wraps cas.ErrCorrupt and nothing is stored locally)
// and read through the local store's verifying reader on the way up, and an
// action result that does not decode wraps cas.ErrCorrupt.
//
// Absent objects must read as 404, which S3 answers only to credentials
// allowed s3:ListBucket on the bucket; without it every miss is a 403 and
// fails the operation. The credentials also need s3:GetObject, s3:PutObject
// and, for DeleteAction and Purge, s3:DeleteObject.
//
// The remote must fail open quickly when S3 is unreachable, since a build
// falls back to running actions: connections time out after 2 s, response
// headers after 30 s, a stalled body after 30 s of silence, and a request is
// tried at most 3 times with at most 1 s between attempts.
package s3

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/semaphore"

	"github.com/mc-build/mc/cas"
)

// Size thresholds and transfer shapes.
const (
	// multipartThreshold is the blob size from which transfers are split
	// into parallel parts (multipart upload, ranged GETs).
	multipartThreshold = 8 << 20
	// headThreshold is the blob size from which Upload asks whether the
	// object is present before sending it; below it a PUT costs about what
	// a HEAD does.
	headThreshold = 1 << 20
	// partSize and partConcurrency shape one large transfer.
	partSize        = 8 << 20
	partConcurrency = 4
	// defaultParallel bounds concurrent requests when Options.Parallel is 0.
	defaultParallel = 32
	// memBudget bounds the bytes held in memory for uploads at once: small
	// blobs are buffered whole, large ones a part per concurrent request.
	memBudget = 128 << 20
	// maxResultSize bounds what GetAction reads: real results are a few KiB,
	// anything this large is not one.
	maxResultSize = 64 << 20
	// deleteBatch is the most keys one DeleteObjects request may name.
	deleteBatch = 1000
)

// Options configure Open.
type Options struct {
	// Endpoint is an S3-compatible endpoint (MC_S3_ENDPOINT), e.g.
	// "http://127.0.0.1:9000"; "" for AWS. When set, path-style addressing
	// is used. When empty, MC_S3_ENDPOINT is looked up through Getenv.
	Endpoint string
	// Getenv looks up environment variables: MC_S3_ENDPOINT,
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
	// AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE, AWS_CONFIG_FILE,
	// AWS_SHARED_CREDENTIALS_FILE and AWS_CA_BUNDLE. nil means os.LookupEnv.
	// What these leave unset the AWS SDK's default chain still resolves its
	// own way (shared config files, the process environment, instance
	// roles), as any AWS tool would.
	Getenv func(string) (string, bool)
	// Parallel bounds concurrent requests; 0 means 32.
	Parallel int
}

// Remote is a cas.Remote in an S3 bucket, made by Open. It is safe for
// concurrent use.
type Remote struct {
	bucket string
	prefix string // "" or "a/b": no leading or trailing slash

	client *s3api.Client
	down   *manager.Downloader
	up     *manager.Uploader

	parallel int64
	reqs     *semaphore.Weighted // one unit per request in flight
	mem      *semaphore.Weighted // bytes of upload buffers

	stats *counters
}

var _ cas.Remote = (*Remote)(nil)

// Stats are a Remote's counters since Open.
type Stats struct {
	// Requests is the number of HTTP requests sent, retries and the parts
	// of large transfers included.
	Requests int64
	// Errors is the number of operations that failed; a miss (absent blob
	// or result) and the caller's cancellation are not failures.
	Errors int64
	// BytesDown and BytesUp are HTTP body bytes received and sent.
	BytesDown, BytesUp int64
}

type counters struct {
	requests, errors, bytesDown, bytesUp atomic.Int64
}

// Open returns the Remote for url, "s3://bucket[/prefix]". It reads the AWS
// configuration (credentials, region, profile; region us-east-1 when none is
// set) but does no network I/O: a wrong endpoint or bad credentials show up
// on the first operation. A malformed url is an error whose text starts with
// it.
func Open(ctx context.Context, url string, opts Options) (*Remote, error) {
	bucket, prefix, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint, _ = getenv("MC_S3_ENDPOINT")
	}
	if err := checkEndpoint(endpoint); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = defaultParallel
	}
	r := &Remote{
		bucket:   bucket,
		prefix:   prefix,
		parallel: int64(parallel),
		reqs:     semaphore.NewWeighted(int64(parallel)),
		mem:      semaphore.NewWeighted(memBudget),
		stats:    &counters{},
	}
	client, err := newClient(ctx, getenv, endpoint, parallel, r.stats)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	r.client = client
	conc := min(partConcurrency, parallel)
	r.down = manager.NewDownloader(client, func(d *manager.Downloader) {
		d.PartSize = partSize
		d.Concurrency = conc
	})
	r.up = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = conc
		u.RequestChecksumCalculation = checksumCalc
	})
	return r, nil
}

// String is "s3://bucket/prefix" (or "s3://bucket" without a prefix).
func (r *Remote) String() string {
	if r.prefix == "" {
		return "s3://" + r.bucket
	}
	return "s3://" + r.bucket + "/" + r.prefix
}

// Stats returns the counters since Open.
func (r *Remote) Stats() Stats {
	return Stats{
		Requests:  r.stats.requests.Load(),
		Errors:    r.stats.errors.Load(),
		BytesDown: r.stats.bytesDown.Load(),
		BytesUp:   r.stats.bytesUp.Load(),
	}
}

// Namespaces under the prefix.
const (
	nsBlob   = "cas"
	nsAction = "ac"
)

// key is the object key of digest d in namespace ns.
func (r *Remote) key(ns string, d cas.Digest) string {
	if r.prefix == "" {
		return ns + "/" + d.Hex()
	}
	return r.prefix + "/" + ns + "/" + d.Hex()
}

// name is how messages refer to the object of d in ns: short, no prefix.
func name(ns string, d cas.Digest) string { return ns + "/" + d.Short() }

// acquire takes n request slots (at most Parallel) and returns the release.
// Every request passes here first, so here its goroutine's stack is grown to
// what the SDK needs, in one step (see growStack).
func (r *Remote) acquire(ctx context.Context, n int) (func(), error) {
	growStack(n)
	w := min(int64(n), r.parallel)
	if err := r.reqs.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return func() { r.reqs.Release(w) }, nil
}

// acquireMem takes n bytes of the upload buffer budget.
func (r *Remote) acquireMem(ctx context.Context, n int64) (func(), error) {
	w := min(max(n, 1), memBudget)
	if err := r.mem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return func() { r.mem.Release(w) }, nil
}

// sdkStack is about the stack an SDK request uses: its middleware chain is
// some fifty calls deep.
const sdkStack = 64 << 10

// growStack makes the calling goroutine's stack big enough for an SDK
// request at once (128 KB: the frame below plus what is already used).
// Otherwise a fresh goroutine grows it by doubling from 2 KB, five times or
// more, copying and rewalking the deepening stack each time: a tenth of mc's
// CPU in a remote-cached build. Where the stack is already big this costs a
// bounds check and clearing the array (about a microsecond). The argument
// only keeps the compiler from removing the array.
//
//go:noinline
func growStack(i int) byte {
	var b [sdkStack]byte
	return b[i&(sdkStack-1)]
}
