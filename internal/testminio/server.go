// Package testminio runs a real MinIO server for tests of code that talks to
// S3: one process per Start, on free loopback ports, with its data in a
// test's temporary directory and fresh random credentials. Tests need the
// `minio` binary (go install github.com/minio/minio@latest); without it they
// fail, except under -short where they are skipped.
//
// MinIO keeps small objects inline in its metadata files, so tests tamper with
// objects through the S3 API (PutRaw) rather than on disk.
package testminio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mc-build/mc/internal/syncbuf"
)

// readyTimeout bounds how long Start waits for a new server to be ready.
const readyTimeout = 15 * time.Second

// installHint is the failure message when the binary is missing.
const installHint = "minio not found: install it with `go install github.com/minio/minio@latest`"

// Server is a running (or stopped) MinIO process.
type Server struct {
	// Endpoint is the S3 API's base URL, e.g. "http://127.0.0.1:41234".
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Dir holds the server's data; it survives Stop and Restart.
	Dir string

	bin         string
	addr        string // API host:port
	consoleAddr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *syncbuf.Buffer

	clientOnce sync.Once
	client     *s3.Client
}

// Start starts a MinIO server for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findBinary()
	if bin == "" {
		if testing.Short() {
			t.Skip(installHint)
		}
		t.Fatal(installHint)
	}
	ports := freePorts(t, 2)
	s := &Server{
		AccessKey:   "mc" + randomHex(t, 8),
		SecretKey:   randomHex(t, 20),
		Dir:         t.TempDir(),
		bin:         bin,
		addr:        fmt.Sprintf("127.0.0.1:%d", ports[0]),
		consoleAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	s.Endpoint = "http://" + s.addr
	t.Cleanup(s.kill)
	s.start(t)
	return s
}

// Stop terminates the server (as a crash would: SIGKILL) and waits for it to
// exit. Requests to Endpoint fail from then on, until Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.kill()
}

// Restart starts a stopped server again on the same ports, data directory
// and credentials.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	s.start(t)
}

// Env is the environment a client needs to reach the server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=us-east-1",
		"MC_S3_ENDPOINT=" + s.Endpoint,
	}
}

// Getenv looks up a variable in Env, for code that takes an environment
// lookup function instead of reading the process's environment.
func (s *Server) Getenv(key string) (string, bool) {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// start launches the process and waits until it is ready.
func (s *Server) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.bin, "server", "--quiet",
		"--address", s.addr, "--console-address", s.consoleAddr, s.Dir)
	cmd.Env = append(environWithout("MINIO_"),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on", // no root-drive checks on a test machine
		// Like AWS, reject requests signed for another region.
		"MINIO_SITE_REGION=us-east-1",
	)
	log := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testminio: start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed server says nothing
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, log
	s.mu.Unlock()

	if err := s.waitReady(exited); err != nil {
		s.kill()
		t.Fatalf("testminio: %v\nminio output:\n%s", err, log.String())
	}
}

// waitReady polls until the server answers (see probe).
func (s *Server) waitReady(exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("minio on %s exited before it was ready", s.addr)
		default:
		}
		err := s.probe(hc)
		if err == nil {
			err = s.regionEnforced()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio on %s not ready after %s (last error: %v)", s.addr, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe reports whether the server answers both its readiness endpoint and
// the S3 API. MinIO says ready before its object layer is up: right after a
// restart, S3 requests can still get 503 "Server not initialized" for a
// moment, so an anonymous request must get an S3 answer other than 503.
func (s *Server) probe(hc *http.Client) error {
	for _, path := range []string{"/minio/health/ready", "/"} {
		resp, err := hc.Get(s.Endpoint + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if path == "/minio/health/ready" && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
	}
	return nil
}

// regionEnforced reports whether the server already refuses a request
// signed for another region. Under load a new server answers S3 requests
// before it applies MINIO_SITE_REGION, and for that moment accepts any
// region (seen: cas/s3's TestEnvConfig, whose wrong-region write passed).
func (s *Server) regionEnforced() error {
	c := s3.New(s3.Options{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A bucket request (MinIO checks no region on ListBuckets) to a bucket
	// that does not exist: "no such bucket" means the region was accepted.
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("mc-region-probe"), Key: aws.String("x")})
	switch {
	case err == nil || strings.Contains(err.Error(), "NoSuchBucket"):
		return fmt.Errorf("a request signed for eu-west-1 was accepted: the site region is not applied yet")
	case !strings.Contains(err.Error(), "region"):
		return fmt.Errorf("probing the site region: %w", err)
	}
	return nil
}

// kill stops the process if it runs and waits for it to exit.
func (s *Server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // fails only if it already exited
	<-exited
}

// Client is an S3 client for the server with its root credentials.
func (s *Server) Client() *s3.Client {
	s.clientOnce.Do(func() {
		s.client = s3.New(s3.Options{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
			BaseEndpoint: aws.String(s.Endpoint),
			UsePathStyle: true,
			// Tests write exactly the bytes they mean to; no checksum
			// headers the code under test might not expect.
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
	})
	return s.client
}

// findBinary looks for minio in PATH, then in the Go bin directories.
func findBinary() string {
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if gp := strings.TrimSpace(string(out)); gp != "" {
			dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The listeners
// are all open at once so that the ports differ; another process may still
// take one before the server binds it, which Start reports as a failure.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testminio: free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// environWithout is the process environment minus variables with prefix, so
// that a developer's MinIO settings do not leak into the test server.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testminio: random: %v", err)
	}
	return hex.EncodeToString(b)
}
