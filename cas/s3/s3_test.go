package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/cas/s3"
	"github.com/mc-build/mc/internal/testminio"
)

const (
	bucket = "mc-cache"
	prefix = "pre/fix"
	// large is over the multipart threshold (8 MiB) and not a multiple of
	// the part size.
	large  = 9<<20 + 12345
	medium = 2 << 20 // over the HEAD-before-PUT threshold
)

// fixture is a MinIO server with a bucket and a Remote on it.
type fixture struct {
	srv *testminio.Server
	r   *s3.Remote
}

func setup(t *testing.T, prefix string) *fixture {
	t.Helper()
	srv := testminio.Start(t)
	srv.MakeBucket(t, bucket)
	return &fixture{srv: srv, r: open(t, srv, prefix, 0)}
}

func open(t *testing.T, srv *testminio.Server, prefix string, parallel int) *s3.Remote {
	t.Helper()
	url := "s3://" + bucket
	if prefix != "" {
		url += "/" + prefix
	}
	r, err := s3.Open(context.Background(), url, s3.Options{Getenv: srv.Getenv, Parallel: parallel})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	return r
}

// key is where the fixture's remote keeps d in namespace ns.
func key(prefix, ns string, d cas.Digest) string {
	if prefix == "" {
		return ns + "/" + d.Hex()
	}
	return prefix + "/" + ns + "/" + d.Hex()
}

func newStore(t *testing.T) *cas.Store {
	t.Helper()
	s, err := cas.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// data is n deterministic pseudo-random bytes, different for each seed.
func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = rng.Read(b)
	return b
}

func put(t *testing.T, s *cas.Store, b []byte) cas.Digest {
	t.Helper()
	d, err := s.PutBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tempFiles lists what a store's temp directory holds.
func tempFiles(t *testing.T, s *cas.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestBlobRoundTrip(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	for i, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 1000},
		{"medium", medium},
		{"large", large},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := data(uint64(i), tc.size)
			src := newStore(t)
			d := put(t, src, want)
			k := key(prefix, "cas", d)

			before := f.r.Stats()
			if err := f.r.Upload(ctx, d, int64(tc.size), src); err != nil {
				t.Fatalf("Upload: %v", err)
			}
			after := f.r.Stats()
			if up := after.BytesUp - before.BytesUp; up < int64(tc.size) {
				t.Errorf("Stats.BytesUp grew by %d, want >= %d", up, tc.size)
			}
			if got, ok := f.srv.GetRaw(t, bucket, k); !ok || !bytes.Equal(got, want) {
				t.Fatalf("object %s: present %v, %d bytes; want the blob's %d bytes", k, ok, len(got), len(want))
			}
			etag, _ := f.srv.Head(t, bucket, k)
			if multipart := strings.Contains(etag, "-"); multipart != (tc.size >= 8<<20) {
				t.Errorf("ETag %s: multipart = %v, want %v", etag, multipart, tc.size >= 8<<20)
			}

			// A second upload of a blob worth a HEAD costs only the HEAD.
			before = f.r.Stats()
			if err := f.r.Upload(ctx, d, -1, src); err != nil {
				t.Fatalf("second Upload: %v", err)
			}
			if tc.size >= medium {
				if n := f.r.Stats().Requests - before.Requests; n != 1 {
					t.Errorf("second Upload sent %d requests, want 1 (HEAD)", n)
				}
			}

			for _, size := range []int64{int64(tc.size), -1} {
				dst := newStore(t)
				before = f.r.Stats()
				if err := f.r.Fetch(ctx, d, size, dst); err != nil {
					t.Fatalf("Fetch(size %d): %v", size, err)
				}
				got, err := dst.ReadBytes(d)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("after Fetch(size %d), ReadBytes = %d bytes, %v; want the blob", size, len(got), err)
				}
				st := f.r.Stats()
				if down := st.BytesDown - before.BytesDown; down < int64(tc.size) {
					t.Errorf("Fetch(size %d): Stats.BytesDown grew by %d, want >= %d", size, down, tc.size)
				}
				if size == large {
					if n := st.Requests - before.Requests; n < 2 {
						t.Errorf("Fetch of a large blob sent %d requests, want ranged GETs", n)
					}
				}
				if tmp := tempFiles(t, dst); len(tmp) != 0 {
					t.Errorf("Fetch left temp files %q", tmp)
				}
				// Present locally: nothing to do.
				before = f.r.Stats()
				if err := f.r.Fetch(ctx, d, size, dst); err != nil {
					t.Fatalf("Fetch of a present blob: %v", err)
				}
				if n := f.r.Stats().Requests - before.Requests; n != 0 {
					t.Errorf("Fetch of a present blob sent %d requests", n)
				}
			}
		})
	}
	if st := f.r.Stats(); st.Errors != 0 {
		t.Errorf("Stats.Errors = %d after successful operations", st.Errors)
	}
}

func TestFindMissing(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	src := newStore(t)
	var ds []cas.Digest
	for i := range 6 {
		d := put(t, src, data(uint64(100+i), 100+i))
		ds = append(ds, d)
		if i%2 == 0 {
			if err := f.r.Upload(ctx, d, -1, src); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, parallel := range []int{1, 3, 0} {
		t.Run(fmt.Sprintf("parallel=%d", parallel), func(t *testing.T) {
			r := open(t, f.srv, prefix, parallel)
			for _, tc := range []struct {
				name     string
				in, want []cas.Digest
			}{
				{"none", nil, nil},
				{"all present", []cas.Digest{ds[0], ds[2], ds[4]}, nil},
				{"mix", ds, []cas.Digest{ds[1], ds[3], ds[5]}},
				{"duplicates", []cas.Digest{ds[3], ds[0], ds[3], ds[1]}, []cas.Digest{ds[3], ds[1]}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got, err := r.FindMissing(ctx, tc.in)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, tc.want) {
						t.Errorf("FindMissing = %v, want %v", got, tc.want)
					}
				})
			}
		})
	}
}

func sampleResult(t *testing.T) *cas.ActionResult {
	t.Helper()
	return &cas.ActionResult{
		Label: "//pkg:target",
		Outputs: []cas.Output{
			{Path: "pkg/out.bin", Digest: cas.FromBytes([]byte("out")), Size: 3, Exec: true},
			{Path: "pkg/dir", Digest: cas.FromBytes([]byte("tree")), Size: 4, IsDir: true},
		},
		Log:      cas.FromBytes([]byte("log")),
		Duration: 1500 * time.Millisecond,
		Created:  time.Unix(1_700_000_000, 123),
	}
}

func TestActions(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	k := cas.FromBytes([]byte("action key"))
	res := sampleResult(t)
	want, err := cas.EncodeResult(res)
	if err != nil {
		t.Fatal(err)
	}

	if got, err := f.r.GetAction(ctx, k); got != nil || err != nil {
		t.Fatalf("GetAction before Put = %v, %v; want nil, nil", got, err)
	}
	if err := f.r.PutAction(ctx, k, res); err != nil {
		t.Fatalf("PutAction: %v", err)
	}
	if raw, ok := f.srv.GetRaw(t, bucket, key(prefix, "ac", k)); !ok || !bytes.Equal(raw, want) {
		t.Fatalf("stored object = %x (present %v), want EncodeResult bytes %x", raw, ok, want)
	}
	got, err := f.r.GetAction(ctx, k)
	if err != nil || got == nil {
		t.Fatalf("GetAction = %v, %v", got, err)
	}
	if enc, _ := cas.EncodeResult(got); !bytes.Equal(enc, want) {
		t.Errorf("GetAction = %+v, want %+v", got, res)
	}

	// Replacing is allowed.
	res.ExitCode = 0
	res.Label = "//pkg:other"
	if err := f.r.PutAction(ctx, k, res); err != nil {
		t.Fatalf("second PutAction: %v", err)
	}
	if got, err := f.r.GetAction(ctx, k); err != nil || got == nil || got.Label != "//pkg:other" {
		t.Errorf("after replacing, GetAction = %+v, %v", got, err)
	}

	for _, step := range []string{"delete", "delete again"} {
		if err := f.r.DeleteAction(ctx, k); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got, err := f.r.GetAction(ctx, k); got != nil || err != nil {
			t.Fatalf("after %s, GetAction = %v, %v; want nil, nil", step, got, err)
		}
	}
}

func TestGetActionCorrupt(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	good, err := cas.EncodeResult(sampleResult(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not an action result")},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"json", []byte(`{"label":"//x:y"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := cas.FromBytes([]byte{byte(i)})
			f.srv.PutRaw(t, bucket, key(prefix, "ac", k), tc.body)
			got, err := f.r.GetAction(ctx, k)
			if !errors.Is(err, cas.ErrCorrupt) {
				t.Fatalf("GetAction = %v, %v; want an error wrapping ErrCorrupt", got, err)
			}
			if !strings.Contains(err.Error(), "ac/"+k.Short()) {
				t.Errorf("error %q does not name the object", err)
			}
		})
	}
}

func TestFetchCorrupt(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	flip := func(b []byte) []byte { b = slices.Clone(b); b[len(b)/2] ^= 1; return b }
	truncate := func(b []byte) []byte { return b[:len(b)-1] }
	extend := func(b []byte) []byte { return append(slices.Clone(b), 'x') }
	empty := func([]byte) []byte { return nil }
	for i, tc := range []struct {
		name   string
		size   int
		mutate func([]byte) []byte
	}{
		{"small tampered", 1000, flip},
		{"small truncated", 1000, truncate},
		{"small extended", 1000, extend},
		{"small emptied", 1000, empty},
		{"large tampered", large, flip},
		{"large truncated", large, truncate},
		{"large truncated to small", large, func(b []byte) []byte { return b[:100] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := data(uint64(200+i), tc.size)
			d := cas.FromBytes(blob)
			f.srv.PutRaw(t, bucket, key(prefix, "cas", d), tc.mutate(blob))
			for _, size := range []int64{int64(tc.size), -1} {
				dst := newStore(t)
				errs := f.r.Stats().Errors
				err := f.r.Fetch(ctx, d, size, dst)
				if !errors.Is(err, cas.ErrCorrupt) {
					t.Fatalf("Fetch(size %d) = %v, want an error wrapping ErrCorrupt", size, err)
				}
				if dst.Has(d) {
					t.Errorf("Fetch(size %d) stored the corrupt blob", size)
				}
				if tmp := tempFiles(t, dst); len(tmp) != 0 {
					t.Errorf("Fetch(size %d) left temp files %q", size, tmp)
				}
				if n := f.r.Stats().Errors - errs; n != 1 {
					t.Errorf("Stats.Errors grew by %d, want 1", n)
				}
			}
		})
	}
}

func TestFetchAbsent(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	d := cas.FromBytes([]byte("never uploaded"))
	for _, size := range []int64{-1, 14, large} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dst := newStore(t)
			err := f.r.Fetch(ctx, d, size, dst)
			if !errors.Is(err, cas.ErrNotFound) {
				t.Fatalf("Fetch = %v, want an error wrapping ErrNotFound", err)
			}
			if dst.Has(d) || len(tempFiles(t, dst)) != 0 {
				t.Error("Fetch of an absent blob left something in the store")
			}
		})
	}
	if st := f.r.Stats(); st.Errors != 0 {
		t.Errorf("Stats.Errors = %d; misses are not errors", st.Errors)
	}
}

// A blob corrupted on local disk must not reach the shared cache.
func TestUploadCorruptLocal(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	for i, size := range []int{1000, medium, large} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			src := newStore(t)
			blob := data(uint64(300+i), size)
			d := put(t, src, blob)
			p := src.Path(d)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			blob[0] ^= 1
			if err := os.WriteFile(p, blob, 0o644); err != nil {
				t.Fatal(err)
			}
			err := f.r.Upload(ctx, d, int64(size), src)
			if !errors.Is(err, cas.ErrCorrupt) {
				t.Fatalf("Upload = %v, want an error wrapping ErrCorrupt", err)
			}
			if _, ok := f.srv.GetRaw(t, bucket, key(prefix, "cas", d)); ok {
				t.Error("the corrupt blob was uploaded")
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		err := f.r.Upload(ctx, cas.FromBytes([]byte("nope")), -1, newStore(t))
		if !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("Upload of a blob not in the store = %v, want ErrNotFound", err)
		}
	})
}

func TestPurge(t *testing.T) {
	for _, pfx := range []string{prefix, ""} {
		t.Run("prefix="+pfx, func(t *testing.T) {
			f := setup(t, pfx)
			ctx := context.Background()
			src := newStore(t)
			for i := range 3 {
				d := put(t, src, data(uint64(400+i), 10))
				if err := f.r.Upload(ctx, d, -1, src); err != nil {
					t.Fatal(err)
				}
				if err := f.r.PutAction(ctx, d, sampleResult(t)); err != nil {
					t.Fatal(err)
				}
			}
			// Not the cache's: a sibling with the same leading characters,
			// and other data in the bucket.
			keep := []string{"other/x", prefix + "ture/x"}
			for _, k := range keep {
				f.srv.PutRaw(t, bucket, k, []byte("keep"))
			}
			n, err := f.r.Purge(ctx)
			if err != nil || n != 6 {
				t.Fatalf("Purge = %d, %v; want 6, nil", n, err)
			}
			if got := f.srv.List(t, bucket, ""); !slices.Equal(got, keep) {
				t.Errorf("after Purge the bucket holds %q, want %q", got, keep)
			}
			if n, err := f.r.Purge(ctx); err != nil || n != 0 {
				t.Errorf("second Purge = %d, %v; want 0, nil", n, err)
			}
		})
	}
	t.Run("more than one batch", func(t *testing.T) {
		f := setup(t, prefix)
		const n = 1003
		g := new(errgroup.Group)
		g.SetLimit(16)
		for i := range n {
			g.Go(func() error {
				_, err := f.srv.Client().PutObject(context.Background(), &s3api.PutObjectInput{
					Bucket: aws.String(bucket),
					Key:    aws.String(fmt.Sprintf("%s/cas/%04d", prefix, i)),
					Body:   bytes.NewReader(nil),
				})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		got, err := f.r.Purge(context.Background())
		if err != nil || got != n {
			t.Fatalf("Purge = %d, %v; want %d, nil", got, err, n)
		}
		if left := f.srv.List(t, bucket, ""); len(left) != 0 {
			t.Errorf("after Purge %d objects are left", len(left))
		}
	})
}

// When S3 goes away every operation must fail (not report a miss) within
// seconds, so that the build falls back to local work.
func TestServerDown(t *testing.T) {
	f := setup(t, prefix)
	ctx := context.Background()
	src := newStore(t)
	present := put(t, src, data(500, 1000))
	if err := f.r.Upload(ctx, present, -1, src); err != nil {
		t.Fatal(err)
	}
	small := put(t, src, data(501, 1000))
	mid := put(t, src, data(502, medium))
	key := cas.FromBytes([]byte("key"))

	f.srv.Stop(t)
	const limit = 15 * time.Second
	t.Run("stopped", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			op   func() error
		}{
			{"FindMissing", func() error { _, err := f.r.FindMissing(ctx, []cas.Digest{present, small, mid}); return err }},
			{"Fetch", func() error { return f.r.Fetch(ctx, present, 1000, newStore(t)) }},
			{"Fetch large", func() error { return f.r.Fetch(ctx, present, large, newStore(t)) }},
			{"Upload", func() error { return f.r.Upload(ctx, small, -1, src) }},
			{"Upload medium", func() error { return f.r.Upload(ctx, mid, -1, src) }},
			{"GetAction", func() error {
				r, err := f.r.GetAction(ctx, key)
				if err == nil {
					return fmt.Errorf("GetAction = %v, nil", r)
				}
				return err
			}},
			{"PutAction", func() error { return f.r.PutAction(ctx, key, sampleResult(t)) }},
			{"DeleteAction", func() error { return f.r.DeleteAction(ctx, key) }},
			{"Purge", func() error { _, err := f.r.Purge(ctx); return err }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				err := tc.op()
				if elapsed := time.Since(start); elapsed > limit {
					t.Errorf("took %s, want < %s", elapsed, limit)
				}
				if err == nil || errors.Is(err, cas.ErrNotFound) {
					t.Fatalf("error = %v, want a failure that is not ErrNotFound", err)
				}
				if strings.Contains(err.Error(), f.srv.SecretKey) {
					t.Errorf("error shows the secret key: %v", err)
				}
			})
		}
	})

	f.srv.Restart(t)
	if missing, err := f.r.FindMissing(ctx, []cas.Digest{present, small}); err != nil || !slices.Equal(missing, []cas.Digest{small}) {
		t.Errorf("after Restart, FindMissing = %v, %v; want [%v]", missing, err, small)
	}
	if err := f.r.Upload(ctx, small, -1, src); err != nil {
		t.Errorf("after Restart, Upload: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	srv := testminio.Start(t)
	srv.MakeBucket(t, bucket)
	const wrong = "wrong-secret-do-not-print"
	getenv := func(k string) (string, bool) {
		if k == "AWS_SECRET_ACCESS_KEY" {
			return wrong, true
		}
		return srv.Getenv(k)
	}
	r, err := s3.Open(context.Background(), "s3://"+bucket+"/"+prefix, s3.Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := newStore(t)
	d := put(t, src, []byte("blob"))
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"GetAction", func() error {
			res, err := r.GetAction(ctx, d)
			if err == nil {
				return fmt.Errorf("GetAction = %v, nil", res)
			}
			return err
		}},
		{"FindMissing", func() error { _, err := r.FindMissing(ctx, []cas.Digest{d}); return err }},
		{"Fetch", func() error { return r.Fetch(ctx, d, 4, newStore(t)) }},
		{"Upload", func() error { return r.Upload(ctx, d, 4, src) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if err == nil || errors.Is(err, cas.ErrNotFound) {
				t.Fatalf("error = %v, want a refusal that is not ErrNotFound", err)
			}
			if strings.Contains(err.Error(), wrong) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	if st := r.Stats(); st.Errors != 4 {
		t.Errorf("Stats.Errors = %d, want 4", st.Errors)
	}
}

// The AWS configuration comes from Getenv: a profile in shared files it
// names, and us-east-1 (MinIO's region) when no region is set.
func TestEnvConfig(t *testing.T) {
	srv := testminio.Start(t)
	srv.MakeBucket(t, bucket)
	// Keep the test's own environment out of the SDK's default chain.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	creds := dir + "/credentials"
	profile := fmt.Sprintf("[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
	if err := os.WriteFile(creds, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		fails bool
	}{
		// The server checks the region (so that "no region" below shows
		// the default is us-east-1).
		{"wrong region", map[string]string{
			"AWS_ACCESS_KEY_ID":     srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY": srv.SecretKey,
			"AWS_REGION":            "eu-west-1",
		}, true},
		{"keys, no region", map[string]string{
			"AWS_ACCESS_KEY_ID":     srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		}, false},
		{"AWS_DEFAULT_REGION", map[string]string{
			"AWS_ACCESS_KEY_ID":     srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY": srv.SecretKey,
			"AWS_DEFAULT_REGION":    "us-east-1",
		}, false},
		{"profile", map[string]string{
			"AWS_PROFILE":                 "ci",
			"AWS_SHARED_CREDENTIALS_FILE": creds,
			"AWS_CONFIG_FILE":             dir + "/no-config",
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["MC_S3_ENDPOINT"] = srv.Endpoint
			getenv := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			r, err := s3.Open(context.Background(), "s3://"+bucket+"/"+prefix, s3.Options{Getenv: getenv})
			if err != nil {
				t.Fatal(err)
			}
			k := cas.FromBytes([]byte(tc.name))
			err = r.PutAction(context.Background(), k, sampleResult(t))
			if tc.fails {
				if err == nil {
					t.Fatal("PutAction succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("PutAction: %v", err)
			}
			if res, err := r.GetAction(context.Background(), k); err != nil || res == nil {
				t.Fatalf("GetAction = %v, %v", res, err)
			}
		})
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testminio.Start(t)
	r, err := s3.Open(context.Background(), "s3://no-such-bucket", s3.Options{Getenv: srv.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := r.GetAction(ctx, cas.FromBytes(nil)); err == nil {
		t.Errorf("GetAction in a missing bucket = %v, nil; want an error", res)
	}
	src := newStore(t)
	d := put(t, src, []byte("blob"))
	if err := r.Upload(ctx, d, -1, src); err == nil {
		t.Error("Upload to a missing bucket succeeded")
	}
}

func TestCanceled(t *testing.T) {
	// Nothing listens on the endpoint: a canceled operation must not get
	// as far as dialing.
	r, err := s3.Open(context.Background(), "s3://b/p", s3.Options{Endpoint: "http://127.0.0.1:9", Getenv: noEnv, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src := newStore(t)
	d := put(t, src, []byte("blob"))
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"FindMissing", func() error { _, err := r.FindMissing(ctx, []cas.Digest{d}); return err }},
		{"Fetch", func() error { return r.Fetch(ctx, cas.FromBytes(nil), 0, newStore(t)) }},
		{"Upload", func() error { return r.Upload(ctx, d, -1, src) }},
		{"GetAction", func() error { _, err := r.GetAction(ctx, d); return err }},
		{"PutAction", func() error { return r.PutAction(ctx, d, sampleResult(t)) }},
		{"Purge", func() error { _, err := r.Purge(ctx); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
		})
	}
	if st := r.Stats(); st.Requests != 0 || st.Errors != 0 {
		t.Errorf("Stats = %+v, want no requests and no errors", st)
	}
}

func TestConcurrent(t *testing.T) {
	f := setup(t, prefix)
	r := open(t, f.srv, prefix, 4)
	ctx := context.Background()
	src := newStore(t)
	var ds []cas.Digest
	var sizes []int64
	for i := range 40 {
		n := (i * 7919) % (64 << 10)
		if i == 0 {
			n = large
		}
		ds = append(ds, put(t, src, data(uint64(600+i), n)))
		sizes = append(sizes, int64(n))
	}
	each := func(op func(i int) error) error {
		var g errgroup.Group
		for i := range ds {
			g.Go(func() error { return op(i) })
		}
		return g.Wait()
	}
	if err := each(func(i int) error { return r.Upload(ctx, ds[i], sizes[i], src) }); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if missing, err := r.FindMissing(ctx, ds); err != nil || len(missing) != 0 {
		t.Fatalf("FindMissing = %v, %v; want none", missing, err)
	}
	dst := newStore(t)
	var mu sync.Mutex
	fetched := 0
	err := each(func(i int) error {
		if err := r.Fetch(ctx, ds[i], sizes[i], dst); err != nil {
			return err
		}
		mu.Lock()
		fetched++
		mu.Unlock()
		return dst.Verify(ds[i])
	})
	if err != nil || fetched != len(ds) {
		t.Fatalf("Fetch: %d of %d, %v", fetched, len(ds), err)
	}
}
