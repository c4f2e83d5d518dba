package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/testregistry"
)

// exampleChecks are the per-example assertions on top of the common ones:
// what the built outputs must do. They run after the example was built
// and tested, with its cache.
var exampleChecks = map[string]func(t *testing.T, dir string){
	"monorepo": func(t *testing.T, dir string) {
		out := func(p string) string { return filepath.Join(dir, "mc-out", filepath.FromSlash(p)) }
		// The types generated from one schema, for both languages.
		for f, want := range map[string]string{"schema/orders.go": "type Order struct", "schema/orders.py": "class Order:"} {
			if b, err := os.ReadFile(out(f)); err != nil || !strings.Contains(string(b), want) {
				t.Errorf("%s: %v; want it to hold %q", f, err, want)
			}
		}
		checkOrdersServesBundle(t, out("services/orders/out/orders"), out("web/out/app.js"))

		// One library changes (code that ends up in no binary): its stage,
		// its tests and its dependents' run again; nothing else does.
		pricing := filepath.Join(dir, "lib", "pricing", "pricing.go")
		src, err := os.ReadFile(pricing)
		if err != nil {
			t.Fatal(err)
		}
		extra := "\n// Rate returns the VAT rate in percent.\nfunc Rate() int { return VATPercent }\n"
		if err := os.WriteFile(pricing, append(src, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		started := runMC(t, dir, "test", "--output=json", "//...").labels("stage_started")
		checkRan(t, "a new function in lib/pricing", started, 5, "//lib/pricing:pricing.compile", "//lib/pricing:pricing.vet", "//lib/pricing:test",
			"//services/orders:orders", "//services/orders:test", "//services/orders:image", "//services/orders:integration")

		// The README's quick start: a function body of lib/money changes
		// (not inlined), so money's export data is the same and pricing's
		// compile and vet stay cached while the tests and links run.
		money := filepath.Join(dir, "lib", "money", "money.go")
		src, err = os.ReadFile(money)
		if err != nil {
			t.Fatal(err)
		}
		const from, to = "cannot add %s to %s", "cannot add %s to an amount in %s" // the README's sed
		if !bytes.Contains(src, []byte(from)) {
			t.Fatalf("lib/money/money.go no longer holds %q, which the README's quick start edits", from)
		}
		if err := os.WriteFile(money, bytes.Replace(src, []byte(from), []byte(to), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		started = runMC(t, dir, "test", "--output=json", "//...").labels("stage_started")
		checkRan(t, "a body change in lib/money", started, 8, "//lib/money:money.compile", "//lib/money:money.vet", "//lib/money:test", "//lib/pricing:test",
			"//services/orders:test", "//services/ledger:test", "//services/orders:orders", "//services/ledger:ledger",
			"//services/orders:image", "//services/ledger:image", "//services/orders:integration")

		checkMonorepoDeploy(t, dir)
	},
}

// checkRan checks that, after change, the stages that started are among
// mayRun and include its first mustRun (the rest may be cut off by an
// identical output).
func checkRan(t *testing.T, change string, started []string, mustRun int, mayRun ...string) {
	t.Helper()
	for _, l := range started {
		if !slices.Contains(mayRun, l) {
			t.Errorf("after %s, %s ran; only these may: %v", change, l, mayRun)
		}
	}
	for _, l := range mayRun[:mustRun] {
		if !slices.Contains(started, l) {
			t.Errorf("after %s, %s did not run (ran: %v)", change, l, started)
		}
	}
}

// checkOrdersServesBundle runs the orders service built by mc and checks
// that it serves the bundle //web:bundle made, embedded.
func checkOrdersServesBundle(t *testing.T, bin, bundle string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-addr="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var body []byte
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/app.js")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if i == 100 {
			t.Fatalf("the orders service did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) || !bytes.Contains(body, []byte("function formatCents")) {
		t.Errorf("GET /app.js served %d bytes, want the %d of %s", len(body), len(want), bundle)
	}
}

// checkMonorepoDeploy runs the example's deploy as CI would: a real
// registry (docker-registry, started here) and a release endpoint (an HTTP
// server of this test standing in for the team's chat or release tracker),
// with the token as a secret from the environment.
func checkMonorepoDeploy(t *testing.T, dir string) {
	t.Helper()
	reg := testregistry.Start(t)
	const token = "s3cr3t-release-token"
	type note struct {
		Release, Note string
		Images        map[string]string
	}
	var (
		mu    sync.Mutex
		notes []note
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var n note
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	// Without the secret the deploy stage fails: the token is required.
	t.Setenv("RELEASE_URL", srv.URL+"/releases")
	t.Setenv("RELEASE_TOKEN", "wrong")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-C", dir, "build", "--deploy", "--registry=" + reg.Addr, "//deploy:release"}, &stdout, &stderr); code != 1 {
		t.Fatalf("deploy with a wrong token: exit %d, want 1 (the endpoint refuses it)\n%s", code, &stderr)
	}

	t.Setenv("RELEASE_TOKEN", token)
	stdout.Reset()
	stderr.Reset()
	if code := Main([]string{"-C", dir, "build", "--deploy", "--registry=" + reg.Addr, "//deploy:release"}, &stdout, &stderr); code != 0 {
		t.Fatalf("mc build --deploy //deploy:release: exit %d\n%s", code, &stderr)
	}
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Errorf("the release token appears in mc's output:\n%s", &stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 1 {
		t.Fatalf("the endpoint received %d release notes, want 1", len(notes))
	}
	n := notes[0]
	if n.Release != "release" || !strings.Contains(n.Note, "orders 1.5.0") {
		t.Errorf("release note = %+v", n)
	}
	for label, repo := range map[string]string{"//services/orders:image": "monorepo/orders", "//services/ledger:image": "monorepo/ledger"} {
		pkg := strings.TrimSuffix(strings.TrimPrefix(label, "//"), ":image")
		want, err := os.ReadFile(filepath.Join(dir, "mc-out", pkg, "image.digest"))
		if err != nil {
			t.Fatal(err)
		}
		digest := strings.TrimSpace(string(want))
		if n.Images[label] != digest {
			t.Errorf("the note gives %s as %q, want the built image %s", label, n.Images[label], digest)
		}
		// The image the note names is in the registry.
		req, _ := http.NewRequest(http.MethodHead, "http://"+reg.Addr+"/v2/"+repo+"/manifests/"+digest, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("registry: %s@%s: %s, want it pushed", repo, digest, resp.Status)
		}
	}
}

// TestExamples builds and tests every workspace under examples/ as a user
// would (mc build //..., mc test //...), each twice on a fresh cache: the
// first run must succeed, the second must start nothing.
func TestExamples(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required by the examples: apt-get install bubblewrap")
	}
	workspaces, err := filepath.Glob("../../examples/*/WORKSPACE.mc")
	if err != nil {
		t.Fatal(err)
	}
	if len(workspaces) == 0 {
		t.Fatal("no examples/*/WORKSPACE.mc found")
	}
	for _, ws := range workspaces {
		src := filepath.Dir(ws)
		name := filepath.Base(src)
		t.Run(name, func(t *testing.T) {
			// A copy, so that mc-out/ is not written into the repository.
			dir := t.TempDir()
			copyTree(t, src, dir)
			t.Setenv("XDG_CACHE_HOME", t.TempDir())

			first := runMC(t, dir, "build", "--output=json", "//...")
			if len(first.labels("stage_started")) == 0 {
				t.Errorf("first mc build on an empty cache started no stage")
			}
			again := runMC(t, dir, "build", "--output=json", "//...")
			again.assertNullBuild(t)

			runMC(t, dir, "test", "--output=json", "//...")
			again = runMC(t, dir, "test", "--output=json", "//...")
			again.assertNullBuild(t)

			if check := exampleChecks[name]; check != nil {
				check(t, dir)
			}
		})
	}
	for name := range exampleChecks {
		if _, err := os.Stat(filepath.Join("../../examples", name, "WORKSPACE.mc")); err != nil {
			t.Errorf("exampleChecks has %q, which is not an example: %v", name, err)
		}
	}
}

// jsonEvent is the part of a JSON build event these tests look at.
type jsonEvent struct {
	Type  string `json:"type"`
	Label string `json:"label"`
	Total int    `json:"total"`
}

type events []jsonEvent

func (evs events) labels(typ string) []string {
	var ls []string
	for _, e := range evs {
		if e.Type == typ {
			ls = append(ls, e.Label)
		}
	}
	return ls
}

// assertNullBuild checks that nothing started and every stage of the graph
// was a cache hit.
func (evs events) assertNullBuild(t *testing.T) {
	t.Helper()
	if started := evs.labels("stage_started"); len(started) > 0 {
		t.Errorf("a repeated run started %v, want nothing", started)
	}
	total := -1
	for _, e := range evs {
		if e.Type == "build_started" {
			total = e.Total
		}
	}
	if cached := evs.labels("stage_cached"); len(cached) != total {
		t.Errorf("a repeated run had %d cache hits (%v), want all %d stages", len(cached), cached, total)
	}
}

// runMC runs mc in-process in dir and returns its events; it fails the test
// unless mc exits 0.
func runMC(t *testing.T, dir string, args ...string) events {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"-C", dir}, args...), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("mc %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), code, &stderr, &stdout)
	}
	var evs events
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("mc %s: not a JSON event: %v: %s", strings.Join(args, " "), err, sc.Bytes())
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// copyTree copies the regular files, directories and symlinks of src into
// dst, leaving out mc-out/ (a previous build's outputs).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && rel == "mc-out":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}
