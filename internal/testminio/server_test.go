package testminio

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	s.MakeBucket(t, "bkt")

	s.PutRaw(t, "bkt", "x/one", []byte("1"))
	s.PutRaw(t, "bkt", "x/two", []byte("22"))
	s.PutRaw(t, "bkt", "y", nil)

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"x/one", "x/two", "y"}},
		{"x/", []string{"x/one", "x/two"}},
		{"z", nil},
	} {
		t.Run("list "+tc.prefix, func(t *testing.T) {
			if got := s.List(t, "bkt", tc.prefix); !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}

	if b, ok := s.GetRaw(t, "bkt", "x/two"); !ok || string(b) != "22" {
		t.Errorf("GetRaw(x/two) = %q, %v; want \"22\", true", b, ok)
	}
	if _, ok := s.GetRaw(t, "bkt", "absent"); ok {
		t.Error("GetRaw(absent) reports it present")
	}
	if _, size := s.Head(t, "bkt", "x/two"); size != 2 {
		t.Errorf("Head(x/two) size = %d, want 2", size)
	}
	s.Delete(t, "bkt", "x/one")
	s.Delete(t, "bkt", "never-there")
	if got := s.List(t, "bkt", "x/"); !slices.Equal(got, []string{"x/two"}) {
		t.Errorf("after Delete, List = %q", got)
	}

	s.Stop(t)
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get(s.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after Stop")
	}
	s.Restart(t)
	if b, ok := s.GetRaw(t, "bkt", "x/two"); !ok || string(b) != "22" {
		t.Errorf("after Restart, GetRaw(x/two) = %q, %v; want the data kept", b, ok)
	}
}

func TestEnv(t *testing.T) {
	s := Start(t)
	env := strings.Join(s.Env(), "\n")
	for _, want := range []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=us-east-1",
		"MC_S3_ENDPOINT=http://127.0.0.1:",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %q:\n%s", want, env)
		}
	}
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{
		{"MC_S3_ENDPOINT", s.Endpoint, true},
		{"AWS_SECRET_ACCESS_KEY", s.SecretKey, true},
		{"AWS_PROFILE", "", false},
	} {
		if v, ok := s.Getenv(tc.key); v != tc.want || ok != tc.ok {
			t.Errorf("Getenv(%s) = %q, %v; want %q, %v", tc.key, v, ok, tc.want, tc.ok)
		}
	}
}
