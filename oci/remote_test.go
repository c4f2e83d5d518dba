package oci

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mc-build/mc/internal/testregistry"
)

// anon keeps the tests away from the machine's docker credentials.
var anon = Options{Keychain: authn.NewMultiKeychain()}

// smallImage builds an image with one file whose content is body.
func smallImage(t *testing.T, body string) (string, string) {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": body})
	return build(t, "", []File{{Dest: "/f", Src: filepath.Join(src, "f")}}, Config{Cmd: []string{"/f"}})
}

func TestPushThenGet(t *testing.T) {
	reg := testregistry.Start(t)
	layout, digest := smallImage(t, "push me")
	repo := reg.Addr + "/service/api"
	refs, err := Push(context.Background(), layout, repo, []string{"latest", "v1"}, anon)
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(digest, "sha256:")
	want := []string{repo + "@" + digest, repo + ":sha256-" + hex, repo + ":latest", repo + ":v1"}
	if !slices.Equal(refs, want) {
		t.Errorf("Push returned\n %q\nwant\n %q", refs, want)
	}
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r)
		if err != nil {
			t.Fatalf("remote.Get(%s): %v", ref, err)
		}
		if desc.Digest.String() != digest {
			t.Errorf("%s has digest %s, want %s", ref, desc.Digest, digest)
		}
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(tags); !slices.Equal(tags, []string{"latest", "sha256-" + hex, "v1"}) {
		t.Errorf("tags = %q", tags)
	}
}

func TestPushTwiceUploadsNoBlob(t *testing.T) {
	reg := testregistry.Start(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "base layer", "b": "top layer"})
	base, _ := build(t, "", []File{{Dest: "/a", Src: filepath.Join(src, "a")}}, Config{})
	layout, _ := build(t, base, []File{{Dest: "/b", Src: filepath.Join(src, "b")}}, Config{})
	repo := reg.Addr + "/twice"

	first := &countingTransport{}
	o := anon
	o.Transport = first
	if _, err := Push(context.Background(), layout, repo, []string{"latest"}, o); err != nil {
		t.Fatal(err)
	}
	// Two layers and a config, each a POST then a PUT (monolithic PATCH
	// optional), whatever the tags.
	if n := first.uploads.Load(); n < 3 {
		t.Fatalf("first push made %d upload requests, want at least 3 (2 layers + config)", n)
	}
	second := &countingTransport{}
	o.Transport = second
	if _, err := Push(context.Background(), layout, repo, []string{"latest"}, o); err != nil {
		t.Fatal(err)
	}
	if n := second.uploads.Load(); n != 0 {
		t.Errorf("second push made %d upload requests, want 0", n)
	}
	if second.all.Load() == 0 {
		t.Error("second push made no request at all; the counter is not wired")
	}
}

func TestResolve(t *testing.T) {
	reg := testregistry.Start(t)
	layout, digest := smallImage(t, "resolve me")
	repo := reg.Addr + "/res"
	if _, err := Push(context.Background(), layout, repo, []string{"stable"}, anon); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(context.Background(), repo+":stable", anon)
	if err != nil {
		t.Fatal(err)
	}
	if want := repo + "@" + digest; got != want {
		t.Errorf("Resolve(tag) = %s, want %s", got, want)
	}

	_, err = Resolve(context.Background(), repo+":missing", anon)
	var re *RegistryError
	if !errors.As(err, &re) || !re.NotFound() || re.Registry != reg.Addr {
		t.Errorf("Resolve(missing tag) = %v, want a not-found *RegistryError for %s", err, reg.Addr)
	}
}

func TestResolveDigestWithoutNetwork(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	o := anon
	o.Transport = failingTransport{t}
	for ref, want := range map[string]string{
		"127.0.0.1:5000/x@" + d:       "127.0.0.1:5000/x@" + d,
		"127.0.0.1:5000/x:tag@" + d:   "127.0.0.1:5000/x@" + d,
		"alpine@" + d:                 "index.docker.io/library/alpine@" + d,
		"registry.example.com/a@" + d: "registry.example.com/a@" + d,
	} {
		got, err := Resolve(context.Background(), ref, o)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
	return nil, errors.New("no network in this test")
}

func TestPullByDigestAndTag(t *testing.T) {
	reg := testregistry.Start(t)
	layout, digest := smallImage(t, "pull me")
	repo := reg.Addr + "/pull"
	if _, err := Push(context.Background(), layout, repo, []string{"latest"}, anon); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{repo + "@" + digest, repo + ":latest"} {
		out := filepath.Join(t.TempDir(), "pulled.oci")
		if err := Pull(context.Background(), ref, out, anon); err != nil {
			t.Fatalf("Pull(%s): %v", ref, err)
		}
		if got, err := ReadDigest(out); err != nil || got != digest {
			t.Errorf("ReadDigest after Pull(%s) = %q, %v; want %s", ref, got, err, digest)
		}
	}
	// A pulled image unpacks like a built one.
	out := filepath.Join(t.TempDir(), "pulled.oci")
	if err := Pull(context.Background(), repo+"@"+digest, out, anon); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(context.Background(), out, filepath.Join(t.TempDir(), "rootfs")); err != nil {
		t.Fatal(err)
	}
}

func TestPullIndexChoosesPlatform(t *testing.T) {
	reg := testregistry.Start(t)
	amd, amdDigest := smallImage(t, "amd64")
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "arm64"})
	arm, armDigest := build(t, "", []File{{Dest: "/f", Src: filepath.Join(src, "f")}}, Config{Platform: "linux/arm64"})
	var idx v1.ImageIndex = empty.Index
	for _, l := range []string{arm, amd} {
		img, err := readImage(l, "")
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cf.Platform()}})
	}
	ref, err := name.ParseReference(reg.Addr + "/multi:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	resolved, err := Resolve(context.Background(), ref.String(), anon)
	if err != nil || resolved != reg.Addr+"/multi@"+idxDigest.String() {
		t.Fatalf("Resolve(index tag) = %q, %v; want the index digest %s", resolved, err, idxDigest)
	}
	for platform, want := range map[string]string{"": amdDigest, "linux/arm64": armDigest} {
		out := filepath.Join(t.TempDir(), "pulled.oci")
		o := anon
		o.Platform = platform
		if err := Pull(context.Background(), resolved, out, o); err != nil {
			t.Fatalf("Pull(%s) for %q: %v", resolved, platform, err)
		}
		if got, _ := ReadDigest(out); got != want {
			t.Errorf("platform %q: pulled %s, want %s", platform, got, want)
		}
	}
}

func TestUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	layout, digest := smallImage(t, "nowhere")
	pullDir := filepath.Join(t.TempDir(), "o")
	ops := map[string]func() error{
		"Resolve": func() error { _, err := Resolve(context.Background(), addr+"/x:latest", anon); return err },
		"Pull": func() error {
			return Pull(context.Background(), addr+"/x@"+digest, pullDir, anon)
		},
		"Push": func() error { _, err := Push(context.Background(), layout, addr+"/x", nil, anon); return err },
	}
	for op, f := range ops {
		t.Run(op, func(t *testing.T) {
			t.Parallel() // each waits out its retries
			start := time.Now()
			err := f()
			var re *RegistryError
			if !errors.As(err, &re) || re.Registry != addr {
				t.Fatalf("%s error = %v (%T), want a *RegistryError naming %s", op, err, err, addr)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("message %q does not name %s", err, addr)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("%s took %v to give up, want a few seconds", op, d)
			}
		})
	}
}

func TestRetriesZeroMeansThree(t *testing.T) {
	for _, tc := range []struct{ retries, attempts int }{{0, 4}, {1, 2}, {-1, 1}} {
		if got := (Options{Retries: tc.retries}).retryBackoff().Steps; got != tc.attempts {
			t.Errorf("Retries %d: %d attempts, want %d", tc.retries, got, tc.attempts)
		}
	}
}

func TestPushBadTag(t *testing.T) {
	layout, _ := smallImage(t, "x")
	o := anon
	o.Transport = failingTransport{t}
	_, err := Push(context.Background(), layout, "127.0.0.1:5000/x", []string{"bad tag!"}, o)
	var re *ReferenceError
	if !errors.As(err, &re) {
		t.Fatalf("Push with a bad tag: %v, want a *ReferenceError before any request", err)
	}
}
