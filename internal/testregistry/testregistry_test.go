package testregistry

import (
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	r := Start(t)
	host, _, err := net.SplitHostPort(r.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want 127.0.0.1:PORT", r.Addr)
	}
	resp, err := http.Get("http://" + r.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ = %s, want 200 (no auth)", resp.Status)
	}
	if fi, err := os.Stat(r.Dir); err != nil || !fi.IsDir() {
		t.Errorf("storage dir %s: %v", r.Dir, err)
	}
	// Two registries at once do not share anything.
	r2 := Start(t)
	if r2.Addr == r.Addr || r2.Dir == r.Dir {
		t.Errorf("second registry reuses %s / %s", r.Addr, r.Dir)
	}
}

func TestConfigListensOnLoopbackOnly(t *testing.T) {
	c := config("127.0.0.1:1234", "/tmp/x")
	for _, want := range []string{"addr: 127.0.0.1:1234", "rootdirectory: /tmp/x", "level: error", "enabled: true"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}
