package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas/s3"
)

// noEnv is an empty environment: Open must not need the process's.
func noEnv(string) (string, bool) { return "", false }

func TestOpenURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // String() of the Remote; "" when Open must fail
	}{
		{"s3://b", "s3://b"},
		{"s3://b/", "s3://b"},
		{"s3://b/p", "s3://b/p"},
		{"s3://b/p/q/", "s3://b/p/q"},
		{"s3://my-bucket.example/ci/cache-v2", "s3://my-bucket.example/ci/cache-v2"},
		{"http://x", ""},
		{"s3://", ""},
		{"s3:///p", ""},
		{"S3://b", ""},
		{"s3:/b", ""},
		{"s3://b//p", ""},
		{"s3://b/p//", ""},
		{"s3://b/../p", ""},
		{"s3://b/p?versionId=1", ""},
		{"s3://b/p#frag", ""},
		{"s3://b c/p", ""},
		{"s3://b/p%2Fq", ""},
	} {
		t.Run(tc.url, func(t *testing.T) {
			r, err := s3.Open(context.Background(), tc.url, s3.Options{Getenv: noEnv})
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Open(%q) = %v, want an error", tc.url, r)
				}
				if !strings.HasPrefix(err.Error(), tc.url) {
					t.Errorf("Open(%q) error %q does not start with the URL", tc.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			if got := r.String(); got != tc.want {
				t.Errorf("Open(%q).String() = %q, want %q", tc.url, got, tc.want)
			}
			if st := r.Stats(); st != (s3.Stats{}) {
				t.Errorf("Open did I/O: Stats = %+v", st)
			}
		})
	}
}

func TestOpenHidesSecrets(t *testing.T) {
	const secret = "s3cr3tKEYdoNotPrint"
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": secret,
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name, url, endpoint string
		ok                  bool
	}{
		{"credentials in url", "s3://user:" + secret + "@b/p", "", false},
		{"credentials in endpoint", "s3://b/p", "http://user:" + secret + "@127.0.0.1:1", false},
		{"endpoint without scheme", "s3://b/p", "127.0.0.1:9000", false},
		{"endpoint with ftp scheme", "s3://b/p", "ftp://127.0.0.1:9000", false},
		{"good", "s3://b/p", "http://127.0.0.1:1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s3.Open(context.Background(), tc.url, s3.Options{Endpoint: tc.endpoint, Getenv: getenv})
			if tc.ok {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if strings.Contains(r.String(), secret) {
					t.Errorf("String() = %q shows the secret", r.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("Open(%q, endpoint %q) succeeded, want an error", tc.url, tc.endpoint)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}
