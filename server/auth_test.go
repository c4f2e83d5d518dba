package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mc-build/mc/internal/oauthdouble"
)

// webClient is a browser as far as the server can tell: cookies, and an
// Origin header on POSTs (what browsers send).
type webClient struct {
	t      *testing.T
	c      *http.Client
	origin string
}

func newWebClient(t *testing.T, origin string) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, c: &http.Client{Jar: jar}, origin: origin}
}

// do sends a request and returns the final status, URL and body.
func (w *webClient) do(method, u string, form url.Values) (int, string, string) {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost && w.origin != "" {
		req.Header.Set("Origin", w.origin)
	}
	resp, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.String(), string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of the page at u.
func (w *webClient) csrf(u string) string {
	w.t.Helper()
	_, _, body := w.do(http.MethodGet, u, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		w.t.Fatalf("no CSRF token in %s", u)
	}
	return m[1]
}

// signInToken signs in with the server token through the sign-in form.
func (w *webClient) signInToken(base, token string) (int, string) {
	w.t.Helper()
	tok := w.csrf(base + "/signin")
	code, _, body := w.do(http.MethodPost, base+"/signin/token", url.Values{"csrf": {tok}, "token": {token}, "next": {"/"}})
	return code, body
}

func oauthServer(t *testing.T, opts ...serverOpt) (*testServer, *oauthdouble.Server) {
	t.Helper()
	// A double of GitHub's OAuth endpoints and GET /user (GitHub is not
	// reachable from the test machines).
	d := oauthdouble.Start("client-1", "client-secret-1")
	t.Cleanup(d.Close)
	ts := startServer(t, t.TempDir()+"/data", nil, append([]serverOpt{func(c *Config) {
		c.OAuth = OAuthConfig{ClientID: "client-1", ClientSecret: "client-secret-1", BaseURL: d.URL, APIURL: d.APIURL,
			AllowedUsers: []string{"octocat"}, AllowedOrgs: []string{"acme"}}
	}}, opts...)...)
	return ts, d
}

// Sign-in with GitHub: allowed logins and active members of an allowed
// organization get in; anyone else is refused; the state ties the
// callback to the browser that started the sign-in.
func TestGitHubSignIn(t *testing.T) {
	ts, d := oauthServer(t)
	base := ts.http.URL
	signedInAs := func(w *webClient) string {
		_, _, body := w.do(http.MethodGet, base+"/", nil)
		m := regexp.MustCompile(`signed in as <b id="user">([^<]+)</b>`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, c := range []struct{ user, want string }{
		{"octocat", "octocat"}, // --allow-user
		{"member1", "member1"}, // --allow-org acme
		{"mallory", ""},        // neither
	} {
		d.SetUser(c.user)
		if c.user == "member1" {
			d.AddMember("acme", "member1")
		}
		w := newWebClient(t, base)
		code, final, body := w.do(http.MethodGet, base+"/signin/github?next=/runs", nil)
		if got := signedInAs(w); got != c.want {
			t.Errorf("%s: signed in as %q, want %q (last page %d %s: %.200s)", c.user, got, c.want, code, final, body)
		}
		if c.want == "" && !strings.Contains(body, "mallory is not allowed") {
			t.Errorf("%s: the refusal does not say why: %.300s", c.user, body)
		}
	}

	// Login CSRF: an attacker who got a code for their own account sends
	// the victim's browser to the callback with it. The victim's browser
	// has a sign-in in progress (a state), but not the attacker's state.
	d.SetUser("octocat")
	victim := newWebClient(t, base)
	noRedirect := *victim.c
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(base + "/signin/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, _ := url.Parse(resp.Header.Get("Location"))
	victimState := authorize.Query().Get("state")
	if !strings.HasPrefix(authorize.String(), d.URL+"/login/oauth/authorize") || victimState == "" ||
		authorize.Query().Get("redirect_uri") != base+"/signin/github/callback" {
		t.Fatalf("sign-in redirected to %s", authorize)
	}
	cb := base + "/signin/github/callback"
	attackerCode := d.Code("octocat", cb, "read:org")
	code, _, body := victim.do(http.MethodGet, cb+"?code="+attackerCode+"&state=attacker-state", nil)
	if code != http.StatusForbidden || signedInAs(victim) != "" {
		t.Fatalf("callback with a foreign state: %d, signed in as %q: %s", code, signedInAs(victim), body)
	}
	// Positive control: the same code with the browser's own state signs in.
	victim2 := newWebClient(t, base)
	resp, err = (&http.Client{Jar: victim2.c.Jar, CheckRedirect: noRedirect.CheckRedirect}).Get(base + "/signin/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code2 := d.Code("octocat", cb, "read:org")
	victim2.do(http.MethodGet, cb+"?code="+code2+"&state="+url.QueryEscape(loc.Query().Get("state")), nil)
	if got := signedInAs(victim2); got != "octocat" {
		t.Fatalf("callback with the browser's own state: signed in as %q", got)
	}
	// A state is used once: replaying the callback signs in nobody new.
	victim3 := newWebClient(t, base)
	victim3.c.Jar = victim2.c.Jar
	if code, _, _ := victim3.do(http.MethodGet, cb+"?code="+d.Code("octocat", cb, "")+"&state="+url.QueryEscape(loc.Query().Get("state")), nil); code != http.StatusForbidden {
		t.Errorf("a used state was accepted again: %d", code)
	}
}

// GitHub sign-in without an allow list, or without the secret, refuses
// to start: any GitHub account is nobody's choice.
func TestGitHubSignInNeedsAllowList(t *testing.T) {
	for _, o := range []OAuthConfig{
		{ClientID: "c", ClientSecret: "s"},
		{ClientID: "c", AllowedUsers: []string{"octocat"}},
	} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), PublicURL: "http://127.0.0.1:1", OAuth: o})
		if err == nil {
			t.Errorf("%+v: the server started", o)
		}
	}
	if _, err := New(context.Background(), Config{DataDir: t.TempDir(), Private: true}); err == nil || !strings.Contains(err.Error(), "--private") {
		t.Errorf("--private without any sign-in: %v", err)
	}
}

// Cancel and rerun from a client that is not signed in are refused, with
// the right Origin or not; signed in with the token form, the same posts
// work. A rerun keeps the original's trust: a pull request's rerun builds
// untrusted (the push's rerun, the positive control, does not).
func TestActionsNeedSignIn(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, t.TempDir()+"/data", nil, gated)
	base := ts.http.URL
	sha := repo.commit("run to cancel")
	id := ts.accept("push", "a-1", pushPayloadFor(repo, "feature", sha))
	ts.waitFile("started-" + sha)

	anon := newWebClient(t, base)
	tok := anon.csrf(base + "/signin") // an anonymous session's token
	for _, path := range []string{"/cancel", "/rerun"} {
		code, _, body := anon.do(http.MethodPost, fmt.Sprintf("%s/runs/%d%s", base, id, path), url.Values{"csrf": {tok}})
		if code != http.StatusForbidden || !strings.Contains(body, "sign in") {
			t.Errorf("POST %s signed out: %d %s", path, code, body)
		}
	}
	// A wrong token for the form, and a client that sends no Origin.
	if code, _ := anon.signInToken(base, "wrong"); code != http.StatusOK || ts.run(id).Status != StatusRunning {
		t.Errorf("sign-in with a wrong token: %d", code)
	}
	if body := anon.c.Jar.Cookies(mustURL(base)); len(body) == 0 {
		t.Fatal("no session cookie")
	}
	if ts.run(id).Status != StatusRunning {
		t.Fatal("a signed-out POST cancelled the run")
	}

	user := newWebClient(t, base)
	if code, body := user.signInToken(base, testToken); code != http.StatusOK || !strings.Contains(body, `signed in as <b id="user">token</b>`) {
		t.Fatalf("sign-in with the token: %d %.300s", code, body)
	}
	noOrigin := &webClient{t: t, c: user.c}
	tok = user.csrf(base + "/")
	if code, _, body := noOrigin.do(http.MethodPost, fmt.Sprintf("%s/runs/%d/cancel", base, id), url.Values{"csrf": {tok}}); code != http.StatusForbidden || !strings.Contains(body, "no Origin") {
		t.Errorf("POST without Origin: %d %s", code, body)
	}
	if code, _, body := user.do(http.MethodPost, fmt.Sprintf("%s/runs/%d/cancel", base, id), url.Values{"csrf": {tok}}); code != http.StatusOK {
		t.Fatalf("cancel signed in: %d %s", code, body)
	}
	ts.waitRun(id, StatusCancelled)
	if r := ts.run(id); !strings.Contains(r.Reason, "cancelled by token") {
		t.Errorf("reason %q", r.Reason)
	}

	// Reruns: a pull request's stays untrusted, a push's stays trusted.
	ts.touch("gate-" + sha)
	prSHA := repo.commit("pull request")
	ts.touch("gate-" + prSHA)
	pr := ts.accept("pull_request", "a-2", prPayloadFor(repo, 7, "feature", prSHA, sha))
	ts.waitRun(pr, StatusSuccess)
	pushSHA := repo.commit("push")
	ts.touch("gate-" + pushSHA)
	push := ts.accept("push", "a-3", pushPayloadFor(repo, "feature", pushSHA))
	ts.waitRun(push, StatusSuccess)
	for _, c := range []struct {
		orig      int64
		sha       string
		untrusted bool
	}{{pr, prSHA, true}, {push, pushSHA, false}} {
		if err := removeFile(ts, "args-"+c.sha); err != nil {
			t.Fatal(err)
		}
		code, final, body := user.do(http.MethodPost, fmt.Sprintf("%s/runs/%d/rerun", base, c.orig), url.Values{"csrf": {tok}})
		var re int64
		if _, err := fmt.Sscanf(final, base+"/runs/%d", &re); err != nil || code != http.StatusOK || re == c.orig {
			t.Fatalf("rerun of %d: %d %s %.200s", c.orig, code, final, body)
		}
		r := ts.waitRun(re, StatusSuccess)
		orig := ts.run(c.orig)
		if r.RerunOf != c.orig || r.Commit != orig.Commit || r.Trigger != orig.Trigger || r.PR != orig.PR {
			t.Errorf("rerun %+v of %+v", r, orig)
		}
		ts.waitFile("args-" + c.sha)
		if args := ts.read("args-" + c.sha); strings.Contains(args, untrustedFlag) != c.untrusted {
			t.Errorf("rerun of %s run %d built with %q: untrusted should be %v", orig.Trigger, c.orig, args, c.untrusted)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func removeFile(ts *testServer, name string) error {
	if err := os.Remove(ts.fakeDir + "/" + name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
