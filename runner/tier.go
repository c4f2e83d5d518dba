package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
)

// UntrustedTier is the shared cache's tier of untrusted builds (SPEC §4a),
// under the cache prefix: untrusted/cas/ and untrusted/ac/ in the layout of
// the trusted tier, and untrusted/runs/ for their runner jobs. Trusted builds
// never read it; the policies of package iampolicy let untrusted identities
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
	return cas.UntrustedRemote(own, trusted), nil
}
