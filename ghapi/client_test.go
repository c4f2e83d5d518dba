package ghapi_test

// These tests talk to internal/githubdouble, a TEST DOUBLE of GitHub's REST
// API (GitHub itself is not reachable from the test machine).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mc-build/mc/ghapi"
	"github.com/mc-build/mc/internal/githubdouble"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

// clock is a settable clock shared by the client and the double.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	keyOnce sync.Once
	appKey  *rsa.PrivateKey
	keyErr  error
)

func testKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() { appKey, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return appKey
}

// appSetup is the double with App 42 installed (installation 7) on
// acme/mono, and a client authenticating as the App.
func appSetup(t *testing.T, clk *clock) (*githubdouble.Double, *ghapi.Client) {
	t.Helper()
	key := testKey(t)
	d := githubdouble.New(githubdouble.Options{AppID: 42, AppKey: &key.PublicKey,
		Installations: map[string]int64{"acme/mono": 7}, Now: clk.Now})
	t.Cleanup(d.Close)
	c, err := ghapi.New(d.URL, ghapi.Options{AppID: 42, AppKey: key, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func paths(d *githubdouble.Double) []string {
	var out []string
	for _, r := range d.Requests() {
		out = append(out, fmt.Sprintf("%s %s %s %d", r.Method, r.Path, r.Auth, r.Code))
	}
	return out
}

// Test double of GitHub (githubdouble): a token posts commit statuses; a
// wrong token is refused (401), which the client reports as such.
func TestStatusWithToken(t *testing.T) {
	d := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"pat": false}})
	defer d.Close()
	c, err := ghapi.New(d.URL+"/api/v3", ghapi.Options{Token: "pat"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200)
	if err := c.CreateStatus(context.Background(), "acme/mono", sha, ghapi.Status{State: "success", Context: "mc",
		TargetURL: "http://ci/runs/1", Description: long}); err != nil {
		t.Fatal(err)
	}
	sts := d.Statuses()
	if len(sts) != 1 || sts[0].Repo != "acme/mono" || sts[0].SHA != sha || sts[0].State != "success" ||
		sts[0].Context != "mc" || sts[0].Auth != "Bearer pat" || len([]rune(sts[0].Description)) != 140 {
		t.Fatalf("statuses: %+v", sts)
	}
	bad, _ := ghapi.New(d.URL, ghapi.Options{Token: "stolen"})
	err = bad.CreateStatus(context.Background(), "acme/mono", sha, ghapi.Status{State: "success"})
	if !ghapi.IsUnauthorized(err) {
		t.Fatalf("a wrong token: %v, want 401", err)
	}
	// A personal access token may not write check runs: 403, not a rate limit.
	_, err = c.CreateCheckRun(context.Background(), "acme/mono", ghapi.CheckRun{Name: "mc", HeadSHA: sha})
	if !ghapi.IsForbidden(err) {
		t.Fatalf("check run with a PAT: %v, want 403", err)
	}
}

// Test double of GitHub (githubdouble): the headers GitHub requires are
// checked by the double (a request without them is refused), and the
// client sends them.
func TestHeadersChecked(t *testing.T) {
	d := githubdouble.New(githubdouble.Options{Tokens: map[string]bool{"pat": true}})
	defer d.Close()
	body := `{"state":"success"}`
	for _, tc := range []struct {
		name            string
		accept, version string
		want            int
	}{
		{"no Accept", "", ghapi.APIVersion, http.StatusUnsupportedMediaType},
		{"no API version", "application/vnd.github+json", "", http.StatusBadRequest},
		{"positive control: both", "application/vnd.github+json", ghapi.APIVersion, http.StatusCreated},
	} {
		req, _ := http.NewRequest(http.MethodPost, d.URL+"/repos/acme/mono/statuses/"+sha, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer pat")
		req.Header.Set("Content-Type", "application/json")
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		if tc.version != "" {
			req.Header.Set("X-GitHub-Api-Version", tc.version)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}

// Test double of GitHub (githubdouble): the App flow. The client signs a
// JWT, finds the installation on the repository (GET .../installation),
// gets an installation token, and creates and completes a check run with
// it; 120 annotations go over three updates of at most 50, the completion
// with the last.
func TestAppCheckRun(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	d, c := appSetup(t, clk)
	ctx := context.Background()
	id, err := c.CreateCheckRun(ctx, "acme/mono", ghapi.CheckRun{Name: "mc", HeadSHA: sha, Status: "in_progress",
		ExternalID: "5", DetailsURL: "http://ci/runs/5"})
	if err != nil {
		t.Fatal(err)
	}
	var anns []ghapi.Annotation
	for i := range 120 {
		anns = append(anns, ghapi.Annotation{Path: "a/BUILD.mc", StartLine: i + 1, EndLine: i + 1, Level: "failure", Message: fmt.Sprint("m", i)})
	}
	now := clk.Now()
	err = c.UpdateCheckRun(ctx, "acme/mono", id, ghapi.CheckRun{Status: "completed", Conclusion: "failure", CompletedAt: &now,
		Output: &ghapi.Output{Title: "1 failed", Summary: "sum", Annotations: anns}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /repos/acme/mono/installation jwt 200",
		"POST /app/installations/7/access_tokens jwt 201",
		"POST /repos/acme/mono/check-runs installation:7 201",
		"PATCH /repos/acme/mono/check-runs/" + fmt.Sprint(id) + " installation:7 200",
		"PATCH /repos/acme/mono/check-runs/" + fmt.Sprint(id) + " installation:7 200",
		"PATCH /repos/acme/mono/check-runs/" + fmt.Sprint(id) + " installation:7 200",
	}
	if got := paths(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reqs := d.Requests()
	for i, r := range reqs[3:] {
		n := len(r.Body["output"].(map[string]any)["annotations"].([]any))
		_, hasStatus := r.Body["status"]
		if n != []int{50, 50, 20}[i] || hasStatus != (i == 2) {
			t.Errorf("update %d: %d annotations, status sent %v", i, n, hasStatus)
		}
	}
	runs := d.CheckRuns()
	if len(runs) != 1 || len(runs[0].Annotations) != 120 || runs[0].Fields["status"] != "completed" ||
		runs[0].Fields["conclusion"] != "failure" || runs[0].Fields["external_id"] != "5" {
		t.Fatalf("check run: %+v", runs)
	}
	// The double enforces GitHub's limit: 51 annotations in one request
	// are refused (the positive control of the batching above).
	tok := installationTokenOf(t, d, c)
	body := `{"output":{"title":"t","summary":"s","annotations":[` + strings.Repeat(`{"path":"a","start_line":1,"end_line":1,"annotation_level":"notice","message":"m"},`, 50) +
		`{"path":"a","start_line":1,"end_line":1,"annotation_level":"notice","message":"m"}]}}`
	if code := raw(t, d, http.MethodPatch, fmt.Sprintf("/repos/acme/mono/check-runs/%d", id), tok, body); code != http.StatusUnprocessableEntity {
		t.Errorf("51 annotations in one request: %d, want 422", code)
	}
	// A webhook's installation id spares the lookup.
	d2, c2 := appSetup(t, clk)
	c2.SetInstallation("acme/mono", 7)
	if _, err := c2.CreateCheckRun(ctx, "acme/mono", ghapi.CheckRun{Name: "mc", HeadSHA: sha}); err != nil {
		t.Fatal(err)
	}
	if got := paths(d2); len(got) != 2 || !strings.HasPrefix(got[0], "POST /app/installations/7/access_tokens jwt") {
		t.Errorf("with the installation known: %v", got)
	}
}

// installationTokenOf returns the installation token the client last
// used, by asking the double for a fresh one the same way (the test needs
// a valid one for raw requests).
func installationTokenOf(t *testing.T, d *githubdouble.Double, c *ghapi.Client) string {
	t.Helper()
	jwt, err := c.AppJWT()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.URL+"/app/installations/7/access_tokens", nil)
	setHeaders(req, jwt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Token string }
	if err := jsonDecode(resp, &got); err != nil || got.Token == "" {
		t.Fatalf("access token: %v", err)
	}
	return got.Token
}

func setHeaders(req *http.Request, cred string) {
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", ghapi.APIVersion)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
}

func raw(t *testing.T, d *githubdouble.Double, method, path, cred, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, d.URL+path, strings.NewReader(body))
	setHeaders(req, cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Test double of GitHub (githubdouble): installation tokens expire (1 h)
// and the client renews them before they do. On a shared clock moved past
// the expiry, the old token is refused by the double (so renewing was
// needed) and the client's request goes through with a new one.
func TestInstallationTokenRefresh(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	d, c := appSetup(t, clk)
	ctx := context.Background()
	create := func() {
		t.Helper()
		if _, err := c.CreateCheckRun(ctx, "acme/mono", ghapi.CheckRun{Name: "mc", HeadSHA: sha}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := func() int {
		n := 0
		for _, r := range d.Requests() {
			if strings.HasSuffix(r.Path, "/access_tokens") {
				n++
			}
		}
		return n
	}
	create()
	old := installationTokenOf(t, d, c) // minted at the same time as the client's
	clk.Add(30 * time.Minute)
	create()
	if n := tokens(); n != 2 { // the client's first, and installationTokenOf's
		t.Fatalf("token requests after 30 min: %d, want the cached token reused", n)
	}
	clk.Add(26 * time.Minute) // 4 minutes left: within the refresh margin
	create()
	if n := tokens(); n != 3 {
		t.Fatalf("token requests with 4 minutes left: %d, want a renewal", n)
	}
	clk.Add(5 * time.Minute) // the first tokens have expired
	if code := raw(t, d, http.MethodPost, "/repos/acme/mono/check-runs", old, `{"name":"mc","head_sha":"`+sha+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("an expired installation token: %d, want 401", code)
	}
	create()
	if n := tokens(); n != 3 {
		t.Errorf("token requests: %d, the renewed token is still valid", n)
	}
}

// Test double of GitHub (githubdouble): the double verifies the App's JWT.
// A forged one (signed with another key), an expired one, one valid for
// more than 10 minutes, one issued in the future and one of another App
// are refused; the positive control, the client's own, is taken.
func TestJWTVerified(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	d, c := appSetup(t, clk)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key *rsa.PrivateKey, claims string) string {
		s, err := ghapi.SignJWTClaims(key, []byte(claims))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := clk.Now().Unix()
	good, err := c.AppJWT()
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := ghapi.SignJWT(other, 42, clk.Now())
	expired, _ := ghapi.SignJWT(testKey(t), 42, clk.Now().Add(-11*time.Minute))
	for _, tc := range []struct {
		name, jwt string
		want      int
	}{
		{"forged: another key", forged, http.StatusUnauthorized},
		{"expired", expired, http.StatusUnauthorized},
		{"exp 11 minutes after iat", sign(testKey(t), fmt.Sprintf(`{"iat":%d,"exp":%d,"iss":"42"}`, now-60, now+600)), http.StatusUnauthorized},
		{"iat in the future", sign(testKey(t), fmt.Sprintf(`{"iat":%d,"exp":%d,"iss":"42"}`, now+300, now+500)), http.StatusUnauthorized},
		{"another App", sign(testKey(t), fmt.Sprintf(`{"iat":%d,"exp":%d,"iss":"43"}`, now-60, now+500)), http.StatusUnauthorized},
		{"tampered claims", tamper(good), http.StatusUnauthorized},
		{"positive control: the client's JWT", good, http.StatusOK},
	} {
		if code := raw(t, d, http.MethodGet, "/app", tc.jwt, ""); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	// The JWT authenticates the App, never a repository request.
	if code := raw(t, d, http.MethodPost, "/repos/acme/mono/check-runs", good, `{"name":"mc","head_sha":"`+sha+`"}`); code != http.StatusForbidden {
		t.Errorf("a check run with the App's JWT: %d, want 403", code)
	}
	if a, err := c.GetApp(context.Background()); err != nil || a.ID != 42 {
		t.Errorf("GetApp: %+v %v", a, err)
	}
	// The client with another key (a wrong key file) is refused.
	wrong, _ := ghapi.New(d.URL, ghapi.Options{AppID: 42, AppKey: other, Now: clk.Now})
	if _, err := wrong.GetApp(context.Background()); !ghapi.IsUnauthorized(err) {
		t.Errorf("GetApp with a wrong key: %v, want 401", err)
	}
}

// tamper changes the claims of a JWT (iss 42 -> 43) and keeps its signature.
func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	claims, _ := b64.DecodeString(parts[1])
	parts[1] = b64.EncodeToString(bytes.Replace(claims, []byte(`"42"`), []byte(`"43"`), 1))
	return strings.Join(parts, ".")
}

func TestParsePrivateKey(t *testing.T) {
	key := testKey(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecb, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, ok := range [][]byte{pkcs1, pkcs8} {
		if k, err := ghapi.ParsePrivateKey(ok); err != nil || !k.Equal(key) {
			t.Errorf("ParsePrivateKey: %v", err)
		}
	}
	for name, bad := range map[string][]byte{
		"not PEM":     []byte("hello"),
		"EC key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecb}),
		"public key":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}),
		"garbage RSA": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("x")}),
	} {
		if _, err := ghapi.ParsePrivateKey(bad); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	for _, o := range []ghapi.Options{{}, {AppID: 1}, {AppKey: key}, {Token: "t", AppID: 1, AppKey: key}} {
		if _, err := ghapi.New("", o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	if _, err := ghapi.New("ftp://x", ghapi.Options{Token: "t"}); err == nil {
		t.Error("an ftp API URL was taken")
	}
}

// The client's credential may go to git only for repositories of the same
// GitHub, over the API's scheme.
func TestSameHost(t *testing.T) {
	gh, _ := ghapi.New("", ghapi.Options{Token: "t"})
	ghes, _ := ghapi.New("https://git.corp.example/api/v3/", ghapi.Options{Token: "t"})
	for _, tc := range []struct {
		c    *ghapi.Client
		url  string
		want bool
	}{
		{gh, "https://github.com/acme/mono.git", true},
		{gh, "https://GitHub.com/acme/mono.git", true},
		{gh, "http://github.com/acme/mono.git", false},
		{gh, "https://github.com.evil.example/acme/mono.git", false},
		{gh, "https://evil.example/acme/mono.git", false},
		{gh, "https://user@github.com/acme/mono.git", false},
		{gh, "file:///tmp/mono.git", false},
		{ghes, "https://git.corp.example/acme/mono.git", true},
		{ghes, "https://github.com/acme/mono.git", false},
	} {
		if got := tc.c.SameHost(tc.url); got != tc.want {
			t.Errorf("SameHost(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}
