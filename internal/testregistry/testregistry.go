// Package testregistry runs a real OCI distribution registry (the Debian
// package docker-registry) for tests, on a free loopback port with its own
// storage directory.
//
// The packaged /etc/docker/registry/config.yml listens on all interfaces and
// its htpasswd auth is broken, so Start always writes its own config. That
// registry (distribution 2.8) has no referrers API.
package testregistry

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/syncbuf"
)

// Binary is the registry executable, looked up in PATH first.
const Binary = "docker-registry"

// Registry is a running registry.
type Registry struct {
	Addr string // "127.0.0.1:PORT"
	Dir  string // storage root directory
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
}

// Start runs a fresh, empty registry and stops it when the test ends. A
// missing binary fails the test (it is skipped only under -short).
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		if _, serr := os.Stat("/usr/bin/" + Binary); serr == nil {
			bin = "/usr/bin/" + Binary
		} else {
			if testing.Short() {
				t.Skip("docker-registry not found: apt-get install docker-registry")
			}
			t.Fatal("docker-registry not found: apt-get install docker-registry")
		}
	}
	dir := t.TempDir()
	// The port is picked by binding :0 and released before the registry
	// binds it; another process may take it in between, so retry a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := start(t, bin, dir, attempt)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir string, attempt int) (*Registry, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, fmt.Sprintf("storage-%d", attempt))
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
	if err := os.WriteFile(cfg, []byte(config(addr, storage)), 0o644); err != nil {
		return nil, err
	}
	r := &Registry{Addr: addr, Dir: storage, log: &syncbuf.Buffer{}}
	r.cmd = exec.Command(bin, "serve", cfg)
	r.cmd.Env = cleanEnv()
	r.cmd.Stdout = r.log
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	stop := func() {
		r.cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err // let stop() find it
			return nil, fmt.Errorf("docker-registry exited (%v): %s", err, r.log.String())
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("docker-registry on %s did not answer GET /v2/ within 15s: %s", addr, r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && r.log.String() != "" {
			t.Logf("docker-registry log:\n%s", r.log.String())
		}
	})
	return r, nil
}

// config is the registry configuration: loopback only, filesystem storage,
// deletes allowed, quiet logs.
func config(addr, storage string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, storage, addr)
}

// cleanEnv drops REGISTRY_* variables, which would override the config.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
