package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mc-build/mc/internal/oauthdouble"
)

// js evaluates expr in the page.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return run(t, ctx, expr, chromedp.Evaluate[T](expr))
}

// navigate opens u and waits until the page shown is u (or, with
// redirects, the page where cond holds): a live run page left behind
// reloads itself 300 ms after its run ended, and that reload may win over
// a navigation started just before it.
func navigate(t *testing.T, ctx context.Context, u string, cond ...string) {
	t.Helper()
	want := fmt.Sprintf(`location.href === %q`, u)
	if len(cond) > 0 {
		want = cond[0]
	}
	for try := 0; ; try++ {
		run(t, ctx, "navigate to "+u, chromedp.Navigate(u))
		time.Sleep(400 * time.Millisecond)
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](`document.readyState === 'complete' && (`+want+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if try == 3 {
			t.Fatalf("navigating to %s: %v, not %s", u, err, want)
		}
	}
}

// follow clicks the element sel (a link or a form's button) and waits
// for the next page, on which cond holds.
func follow(t *testing.T, ctx context.Context, sel, cond string) {
	t.Helper()
	if !js[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
		window.mcOldPage = true; setTimeout(() => e.click(), 0); return true })()`, sel)) {
		t.Fatalf("no %s on %s", sel, js[string](t, ctx, `location.href`))
	}
	eventually(t, ctx, "after clicking "+sel, `!window.mcOldPage && document.readyState === 'complete' && (`+cond+`)`)
}

// rowIDs are the run ids the list page shows, in order.
func rowIDs(t *testing.T, ctx context.Context) []int64 {
	t.Helper()
	var out []int64
	for _, s := range js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run')].map(r => r.dataset.id)`) {
		var id int64
		fmt.Sscan(s, &id)
		out = append(out, id)
	}
	return out
}

// The runs list in Chromium, on 200 runs: its columns, filters that keep
// each other, and pages that cover every run once.
func TestRunsListBrowser(t *testing.T) {
	ctx := browser(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	ids := seedRuns(t, ts.s.st, 200, time.Now())
	newest := slices.Clone(ids)
	slices.Reverse(newest)

	navigate(t, ctx, ts.http.URL+"/")
	heads := js[[]string](t, ctx, `[...document.querySelectorAll('#runs thead th')].map(h => h.textContent)`)
	for _, h := range []string{"repository", "branch / pull request", "commit", "trigger", "started", "duration", "cache hits", "status"} {
		if !slices.Contains(heads, h) {
			t.Errorf("no column %q in %q", h, heads)
		}
	}
	if got := rowIDs(t, ctx); !slices.Equal(got, newest[:runsPerPage]) {
		t.Fatalf("first page: %v, want the newest %d", got, runsPerPage)
	}
	cell := func(id int64, col string) string {
		return js[string](t, ctx, fmt.Sprintf(`document.querySelector('#runs tr.run[data-id="%d"] td.%s').textContent.trim().replace(/\s+/g, ' ')`, id, col))
	}
	byIndex := func(i int) int64 { return ids[i] }
	if got, want := cell(byIndex(199), "commit"), fmt.Sprintf("%s change number 199 dev4", fmt.Sprintf("%040x", 200)[:10]); got != want {
		t.Errorf("commit cell %q, want %q", got, want)
	}
	if got := cell(byIndex(193), "branch"); got != "#293 Add feature 193 main" {
		t.Errorf("pull request cell %q", got)
	}
	if got := cell(byIndex(193), "trigger"); got != "pull request" {
		t.Errorf("pull request trigger %q", got)
	}
	if got := cell(byIndex(197), "trigger"); got != "CLI report" {
		t.Errorf("CLI trigger %q", got)
	}
	if got := cell(byIndex(195), "trigger"); got != fmt.Sprintf("manual rerun of #%d", byIndex(194)) {
		t.Errorf("rerun trigger %q", got)
	}
	if got := cell(byIndex(199), "repo"); got != "acme/web" {
		t.Errorf("repository %q", got)
	}
	if got := cell(byIndex(199), "hits"); got != "75%" {
		t.Errorf("cache hits %q", got)
	}
	if got := cell(byIndex(199), "duration"); got == "" || got == "–" || got == "0s" {
		t.Errorf("duration %q", got)
	}
	// Started 7 minutes (less a second) ago: relative, with the time in
	// the title.
	if got := cell(byIndex(199), "started"); got != "6 minutes ago" && got != "7 minutes ago" { // seeding takes a while
		t.Errorf("relative start %q, want 6 minutes ago", got)
	}
	title := js[string](t, ctx, fmt.Sprintf(`document.querySelector('#runs tr.run[data-id="%d"] td.started time').title`, byIndex(199)))
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`).MatchString(title) {
		t.Errorf("start time title %q", title)
	}
	if got := cell(byIndex(150), "started"); !strings.HasSuffix(got, "hours ago") {
		t.Errorf("a run 5 hours old: %q", got)
	}

	// Every page once, older then newer.
	var all [][]int64
	for page := 0; ; page++ {
		all = append(all, rowIDs(t, ctx))
		if page > 0 != js[bool](t, ctx, `!!document.getElementById('newer')`) {
			t.Errorf("page %d: a newer link is %v", page, page == 0)
		}
		if !js[bool](t, ctx, `!!document.getElementById('older')`) {
			break
		}
		follow(t, ctx, "#older", "true")
	}
	if got := slices.Concat(all...); !slices.Equal(got, newest) || len(all) != 4 {
		t.Fatalf("pages %d, runs %d, want every run once in 4 pages", len(all), len(got))
	}
	follow(t, ctx, "#newer", "true")
	if got := rowIDs(t, ctx); !slices.Equal(got, all[len(all)-2]) {
		t.Errorf("newer from the last page: %v, want %v", got, all[len(all)-2])
	}

	// Filters: a repository (a link in the table), then a status (the
	// badge); each keeps the other, and the pages keep both.
	navigate(t, ctx, ts.http.URL+"/")
	follow(t, ctx, fmt.Sprintf(`#runs tr.run[data-id="%d"] td.repo a`, byIndex(199)), `location.search === '?repo=acme%2Fweb'`)
	repos := js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run td.repo')].map(c => c.textContent)`)
	if len(repos) != runsPerPage || slices.ContainsFunc(repos, func(r string) bool { return r != "acme/web" }) {
		t.Fatalf("repo filter: %d rows, repos %q", len(repos), repos)
	}
	follow(t, ctx, "#older", `location.search.includes('repo=acme%2Fweb') && location.search.includes('before=')`)
	more := js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run td.repo')].map(c => c.textContent)`)
	// acme/web runs: i%3 == 1 of 0..199 but the CLI reports (no
	// repository): the rest are on page 2.
	var webRuns int
	for i := range 200 {
		if i%3 == 1 && i%10 != 7 {
			webRuns++
		}
	}
	if len(more) != webRuns-runsPerPage || slices.ContainsFunc(more, func(r string) bool { return r != "acme/web" }) {
		t.Fatalf("page 2 of acme/web: %d rows (want %d), repos %q", len(more), webRuns-runsPerPage, more)
	}
	follow(t, ctx, `#runs tr.run td.status a.st-failure`, `location.search.includes('repo=acme%2Fweb') && location.search.includes('status=failure') && !location.search.includes('before')`)
	rows := js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run')].map(r => r.querySelector('td.repo').textContent + ' ' + r.querySelector('td.status').textContent)`)
	if len(rows) == 0 || slices.ContainsFunc(rows, func(r string) bool { return r != "acme/web failure" }) {
		t.Fatalf("repo+status filter rows: %q", rows)
	}
	// The form keeps what is set and adds a branch.
	js[bool](t, ctx, `document.querySelector('#filters select[name=branch]').value = 'fix-y'; true`)
	follow(t, ctx, `#filters button[type=submit]`, `location.search.includes('branch=fix-y')`)
	rows = js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run')].map(r => r.querySelector('td.repo').textContent + ' ' + r.querySelector('td.branch').textContent.trim().split(/\s+/).pop() + ' ' + r.querySelector('td.status').textContent)`)
	if len(rows) == 0 || slices.ContainsFunc(rows, func(r string) bool { return r != "acme/web fix-y failure" }) {
		t.Fatalf("repo+branch+status filter rows: %q", rows)
	}
	// Dropping the repository keeps the branch and the status.
	follow(t, ctx, `#filters a.chip[data-filter=repository]`, `!location.search.includes('repo=') && location.search.includes('branch=fix-y') && location.search.includes('status=failure')`)
	rows = js[[]string](t, ctx, `[...document.querySelectorAll('#runs tr.run')].map(r => r.querySelector('td.repo').textContent)`)
	if len(slices.Compact(slices.Sorted(slices.Values(rows)))) < 2 {
		t.Errorf("without the repository filter, the rows are of %q", rows)
	}
	if resp, err := http.Get(ts.http.URL + "/?status=nonsense"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad status filter: %v %v", resp.Status, err)
	}
}

// Cancel and rerun in Chromium: no buttons and no effect signed out;
// signed in with the token form, the buttons on the list and on the run
// page work.
func TestActionsBrowser(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
	doneSHA := repo.commit("finished")
	ts.touch("gate-" + doneSHA)
	done := ts.accept("push", "ab-1", pushPayloadFor(repo, "feature-b", doneSHA))
	ts.waitRun(done, StatusSuccess)
	git(t, repo.work, "checkout", "-q", "-b", "feature-a")
	sha := repo.commit("running")
	running := ts.accept("push", "ab-2", pushPayloadFor(repo, "feature-a", sha))
	ts.waitFile("started-" + sha)
	buttons := `document.querySelectorAll('.run-actions button').length`

	// Signed out: no buttons, on the list or the run page, and a POST
	// from the page itself (its own origin) is refused.
	navigate(t, ctx, ts.http.URL+"/")
	if n := js[int](t, ctx, buttons); n != 0 {
		t.Fatalf("signed out, the list shows %d buttons", n)
	}
	navigate(t, ctx, fmt.Sprintf("%s/runs/%d", ts.http.URL, running))
	if n := js[int](t, ctx, buttons); n != 0 {
		t.Fatalf("signed out, the run page shows %d buttons", n)
	}
	status := run(t, ctx, "direct POST", chromedp.Evaluate[int](fmt.Sprintf(`fetch('/runs/%d/cancel', {method: 'POST', body: new URLSearchParams({csrf: 'guess'})}).then(r => r.status)`, running), chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden || ts.run(running).Status != StatusRunning {
		t.Fatalf("a signed-out POST: %d, run %s", status, ts.run(running).Status)
	}

	// Sign in with the token.
	navigate(t, ctx, ts.http.URL+"/")
	follow(t, ctx, "#signin", `location.pathname === '/signin'`)
	js[bool](t, ctx, `document.querySelector('#token-form input[name=token]').value = '`+testToken+`'; true`)
	follow(t, ctx, `#token-form button`, `location.pathname === '/' && !!document.getElementById('user')`)
	if u := js[string](t, ctx, `document.getElementById('user').textContent`); u != "token" {
		t.Errorf("signed in as %q", u)
	}
	if js[bool](t, ctx, `document.cookie.includes('mc_session')`) {
		t.Error("the session cookie is readable by scripts (not HttpOnly)")
	}
	// The list: cancel on the running run only, rerun on the finished one.
	has := func(id int64, cls string) bool {
		return js[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('#runs tr.run[data-id="%d"] .run-actions button.%s')`, id, cls))
	}
	if !has(running, "cancel") || has(running, "rerun") || !has(done, "rerun") || has(done, "cancel") {
		t.Fatalf("buttons: running cancel=%v rerun=%v, finished cancel=%v rerun=%v", has(running, "cancel"), has(running, "rerun"), has(done, "cancel"), has(done, "rerun"))
	}
	// Cancel from the run page's header.
	navigate(t, ctx, fmt.Sprintf("%s/runs/%d", ts.http.URL, running))
	follow(t, ctx, `#run .run-actions button.cancel`, fmt.Sprintf(`location.pathname === '/runs/%d'`, running))
	ts.waitRun(running, StatusCancelled)
	// The live page reloads once its run ended: wait for that.
	eventually(t, ctx, "the cancelled run's page", `document.getElementById('run-status').textContent === 'cancelled'`)
	// Rerun from the list: the new run's page, linked to the original.
	navigate(t, ctx, ts.http.URL+"/")
	follow(t, ctx, fmt.Sprintf(`#runs tr.run[data-id="%d"] button.rerun`, done), fmt.Sprintf(`location.pathname !== '/' && location.pathname !== '/runs/%d'`, done))
	var re int64
	if _, err := fmt.Sscanf(js[string](t, ctx, `location.pathname`), "/runs/%d", &re); err != nil {
		t.Fatal(err)
	}
	r := ts.waitRun(re, StatusSuccess)
	eventually(t, ctx, "the rerun's page", `document.getElementById('run-status').textContent === 'success'`)
	if r.RerunOf != done || r.Commit != doneSHA || r.Branch != "feature-b" {
		t.Errorf("rerun: %+v", r)
	}
	navigate(t, ctx, ts.http.URL+"/")
	if got := js[string](t, ctx, fmt.Sprintf(`document.querySelector('#runs tr.run[data-id="%d"] td.trigger').textContent.trim()`, re)); got != fmt.Sprintf("manual rerun of #%d", done) {
		t.Errorf("the rerun's trigger cell: %q", got)
	}
}

// attackerSite serves a page that posts a form to target as soon as it
// loads: another origin on the same host (same-site, so the browser sends
// the victim's SameSite=Lax cookie along).
func attackerSite(t *testing.T) (*httptest.Server, func(target, csrf string) string) {
	var page string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv, func(target, csrf string) string {
		field := ""
		if csrf != "" {
			field = `<input type="hidden" name="csrf" value="` + csrf + `">`
		}
		page = `<!doctype html><title>win a prize</title><form id="f" method="post" action="` + target + `">` + field +
			`</form><script>document.getElementById('f').submit()</script>`
		return srv.URL + "/"
	}
}

// Cross-site request forgery, in Chromium. The victim is signed in; a page
// on another origin of the same host submits a cancel form to the server.
// Without the CSRF token it is refused although the cookie came along
// (the token alone stops it: that page's origin is let through here); with
// the victim's token it works (the positive control). On a server that
// does not let that origin through, even the token does not help: the
// Origin check refuses it.
func TestCSRFBrowser(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	evil, attack := attackerSite(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated, func(c *Config) { c.extraOrigins = []string{evil.URL} })
	ts2 := startServer(t, filepath.Join(t.TempDir(), "data2"), nil, gated)

	signIn := func(base string) string {
		navigate(t, ctx, base+"/signin", `!!document.querySelector('#token-form input[name=token]')`)
		js[bool](t, ctx, `document.querySelector('#token-form input[name=token]').value = '`+testToken+`'; true`)
		follow(t, ctx, `#token-form button`, `!!document.getElementById('user')`)
		return js[string](t, ctx, `document.querySelector('#userbar input[name=csrf]').value`)
	}
	start := func(ts *testServer, delivery string) (int64, string) {
		sha := repo.commit("victim " + delivery)
		id := ts.accept("push", delivery, pushPayloadFor(repo, "feature-"+delivery, sha))
		ts.waitFile("started-" + sha)
		return id, sha
	}
	attackPage := func(target, csrf string) string {
		run(t, ctx, "attacker page", chromedp.Navigate(attack(target, csrf)))
		eventually(t, ctx, "the forged post", `location.href.startsWith('`+strings.Split(target, "/runs")[0]+`') && document.readyState === 'complete'`)
		return js[string](t, ctx, `document.body.innerText`)
	}

	token := signIn(ts.http.URL)
	id, sha := start(ts, "c1")
	body := attackPage(fmt.Sprintf("%s/runs/%d/cancel", ts.http.URL, id), "")
	if !strings.Contains(body, "CSRF token") {
		t.Fatalf("the forged POST without a token: %q (want a refusal for the token: the cookie came along)", body)
	}
	time.Sleep(200 * time.Millisecond)
	if st := ts.run(id).Status; st != StatusRunning {
		t.Fatalf("the forged POST without a token cancelled the run: %s", st)
	}
	// Positive control: the same forged POST with the victim's token.
	attackPage(fmt.Sprintf("%s/runs/%d/cancel", ts.http.URL, id), token)
	ts.waitRun(id, StatusCancelled)
	ts.touch("gate-" + sha)

	// The Origin check, with the right token.
	token2 := signIn(ts2.http.URL)
	id2, sha2 := start(ts2, "c2")
	body = attackPage(fmt.Sprintf("%s/runs/%d/cancel", ts2.http.URL, id2), token2)
	if !strings.Contains(body, "cross-origin request refused") {
		t.Fatalf("a forged POST from another origin, with the token: %q", body)
	}
	time.Sleep(200 * time.Millisecond)
	if st := ts2.run(id2).Status; st != StatusRunning {
		t.Fatalf("a forged POST from another origin cancelled the run: %s", st)
	}
	ts2.touch("gate-" + sha2)
}

// --private in Chromium: signed out, pages lead to the sign-in and the
// API and logs answer 401; signed in, the page asked for opens. The same
// requests to a server without --private are answered (positive control).
func TestPrivateBrowser(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) { c.Private = true })
	open := startServer(t, filepath.Join(t.TempDir(), "data2"), nil)
	sha := repo.commit("private")
	ts.touch("gate-" + sha)
	id := ts.accept("push", "p-1", pushPayloadFor(repo, "feature", sha))
	if openID := open.accept("push", "p-1", pushPayloadFor(repo, "feature", sha)); openID != id {
		t.Fatalf("run ids %d and %d", id, openID)
	}
	open.waitRun(id, StatusSuccess)
	// ts.waitRun needs the API: with the token.
	waitFor(t, "the private run", func() bool {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/runs/%d", ts.http.URL, id), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var buf [4096]byte
		n, _ := resp.Body.Read(buf[:])
		return resp.StatusCode == 200 && strings.Contains(string(buf[:n]), `"status": "success"`)
	})
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/runs", http.StatusUnauthorized},
		{fmt.Sprintf("/api/runs/%d", id), http.StatusUnauthorized},
		{fmt.Sprintf("/runs/%d/log?stage=//b:b", id), http.StatusUnauthorized},
		{fmt.Sprintf("/runs/%d/events", id), http.StatusUnauthorized},
	} {
		resp, err := http.Get(ts.http.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("private GET %s: %d, want %d", c.path, resp.StatusCode, c.want)
		}
		resp, err = http.Get(open.http.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("positive control: GET %s of a server without --private: %d", c.path, resp.StatusCode)
		}
	}
	for _, base := range []string{ts.http.URL, open.http.URL} {
		navigate(t, ctx, fmt.Sprintf("%s/runs/%d", base, id), `location.pathname === '/signin' || location.pathname === '/runs/1'`)
		eventually(t, ctx, "page", `document.readyState === 'complete'`)
		path := js[string](t, ctx, `location.pathname`)
		text := js[string](t, ctx, `document.body.innerText`)
		if base == ts.http.URL && (path != "/signin" || strings.Contains(text, "//b:b")) {
			t.Errorf("private run page signed out: at %s showing %.200q", path, text)
		}
		if base == open.http.URL && (path != fmt.Sprintf("/runs/%d", id) || !strings.Contains(text, "//b:b")) {
			t.Errorf("positive control: the run page of a server without --private: at %s", path)
		}
	}
	// Sign in: back to the run page asked for.
	navigate(t, ctx, fmt.Sprintf("%s/runs/%d", ts.http.URL, id), `location.pathname === '/signin'`)
	eventually(t, ctx, "sign-in page", `location.pathname === '/signin' && !!document.querySelector('#token-form')`)
	js[bool](t, ctx, `document.querySelector('#token-form input[name=token]').value = '`+testToken+`'; true`)
	follow(t, ctx, `#token-form button`, fmt.Sprintf(`location.pathname === '/runs/%d'`, id))
	if text := js[string](t, ctx, `document.body.innerText`); !strings.Contains(text, "//b:b") {
		t.Errorf("signed in, the run page shows %.200q", text)
	}
	if got := run(t, ctx, "API from the signed-in page", chromedp.Evaluate[string](`fetch('/api/runs').then(r => r.status + ' ' + r.statusText)`, chromedp.EvalAwaitPromise)); got != "200 OK" {
		t.Errorf("signed in, GET /api/runs from %s: %s", js[string](t, ctx, `location.href`), got)
	}
}

// Sign-in with GitHub in Chromium, through the OAuth double: the button,
// GitHub's authorize page (the double approves at once), the callback,
// signed in as the double's user, with the buttons.
func TestGitHubSignInBrowser(t *testing.T) {
	ctx := browser(t)
	d := oauthdouble.Start("client-1", "client-secret-1") // a double of GitHub's OAuth endpoints
	t.Cleanup(d.Close)
	d.SetUser("octocat")
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) {
		c.OAuth = OAuthConfig{ClientID: "client-1", ClientSecret: "client-secret-1", BaseURL: d.URL, APIURL: d.APIURL,
			AllowedUsers: []string{"octocat"}}
	})
	seedRuns(t, ts.s.st, 3, time.Now())
	navigate(t, ctx, ts.http.URL+"/")
	follow(t, ctx, "#signin", `location.pathname === '/signin'`)
	follow(t, ctx, "#github", `location.pathname === '/' && !!document.getElementById('user')`)
	if u := js[string](t, ctx, `document.getElementById('user').textContent`); u != "octocat" {
		t.Errorf("signed in as %q", u)
	}
	if d.Exchanges() != 1 {
		t.Errorf("%d code exchanges, want 1", d.Exchanges())
	}
	if n := js[int](t, ctx, `document.querySelectorAll('.run-actions button.rerun').length`); n == 0 {
		t.Error("signed in with GitHub, no rerun buttons")
	}
	// Sign out: the buttons go.
	follow(t, ctx, "#userbar button", `!document.getElementById('user')`)
	if n := js[int](t, ctx, `document.querySelectorAll('.run-actions button').length`); n != 0 {
		t.Errorf("signed out, %d buttons", n)
	}
}
