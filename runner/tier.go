package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
)

// UntrustedTier is the shared cache's tier of untrusted builds (SPEC §4a),
// under the cache prefix: untrusted/cas/ and untrusted/ac/ in the layout of
// the trusted tier, and untrusted/runs/ for their runner jobs. Trusted builds
// never read it; the policies in docs/policies/ let untrusted identities
// write nothing else.
const UntrustedTier = "untrusted"

// TierURL is the cache URL of the untrusted tier of cacheURL
// ("s3://bucket/v1" → "s3://bucket/v1/untrusted").
func TierURL(cacheURL string) string {
	return strings.TrimRight(cacheURL, "/") + "/" + UntrustedTier
}

// tierObjects are the objects under prefix (UntrustedTier + "/") of an
// Objects: an untrusted run's runs/ directories, with the protocol's keys.
type tierObjects struct {
	o      Objects
	prefix string
}

func untrustedObjects(o Objects) Objects { return tierObjects{o: o, prefix: UntrustedTier + "/"} }

func (t tierObjects) Put(ctx context.Context, key string, b []byte) error {
	return t.o.Put(ctx, t.prefix+key, b)
}
func (t tierObjects) Get(ctx context.Context, key string) ([]byte, error) {
	return t.o.Get(ctx, t.prefix+key)
}
func (t tierObjects) Delete(ctx context.Context, key string) error {
	return t.o.Delete(ctx, t.prefix+key)
}
func (t tierObjects) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	objs, err := t.o.List(ctx, t.prefix+prefix)
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, t.prefix)
	}
	return objs, err
}
func (t tierObjects) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return t.o.PresignGet(ctx, t.prefix+key, ttl)
}

// tierRemote is the shared cache as an untrusted runner uses it: blobs are
// read from its own tier, else the trusted one (every blob is verified
// against its digest on the way down, whichever tier it comes from), and
// written to its own tier only. Results are never read from or written to
// the trusted tier through it.
type tierRemote struct {
	own, trusted cas.Remote
}

var _ cas.Remote = tierRemote{}

func (r tierRemote) String() string { return r.own.String() }

func (r tierRemote) GetAction(ctx context.Context, key cas.Digest) (*cas.ActionResult, error) {
	return r.own.GetAction(ctx, key)
}
func (r tierRemote) PutAction(ctx context.Context, key cas.Digest, res *cas.ActionResult) error {
	return r.own.PutAction(ctx, key, res)
}
func (r tierRemote) DeleteAction(ctx context.Context, key cas.Digest) error {
	return r.own.DeleteAction(ctx, key)
}

// FindMissing returns what neither tier holds.
func (r tierRemote) FindMissing(ctx context.Context, ds []cas.Digest) ([]cas.Digest, error) {
	missing, err := r.own.FindMissing(ctx, ds)
	if err != nil || len(missing) == 0 {
		return missing, err
	}
	return r.trusted.FindMissing(ctx, missing)
}

func (r tierRemote) Fetch(ctx context.Context, d cas.Digest, size int64, dst *cas.Store) error {
	err := r.own.Fetch(ctx, d, size, dst)
	if errors.Is(err, cas.ErrNotFound) || errors.Is(err, cas.ErrCorrupt) {
		return r.trusted.Fetch(ctx, d, size, dst)
	}
	return err
}

func (r tierRemote) Upload(ctx context.Context, d cas.Digest, size int64, src *cas.Store) error {
	return r.own.Upload(ctx, d, size, src)
}

func (r tierRemote) Purge(ctx context.Context) (int, error) { return r.own.Purge(ctx) }

// openAgentRemote opens the shared cache for an agent: the cache itself for
// a trusted build's runner, the untrusted tier over it for an untrusted one.
func openAgentRemote(ctx context.Context, o AgentOptions) (cas.Remote, error) {
	opts := s3.Options{Endpoint: o.Endpoint, Getenv: o.Getenv}
	trusted, err := s3.Open(ctx, o.CacheURL, opts)
	if err != nil || !o.Untrusted {
		return trusted, err
	}
	own, err := s3.Open(ctx, TierURL(o.CacheURL), opts)
	if err != nil {
		return nil, fmt.Errorf("the untrusted tier: %w", err)
	}
	return tierRemote{own: own, trusted: trusted}, nil
}
