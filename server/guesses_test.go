package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The attack: guessing the server token, through each door that takes it
// (the API's bearer token, the sign-in form, a private server's pages),
// from one address. After defaultGuessLimit wrong guesses even the right
// token is refused (429, not compared, nothing done), until the window has
// passed; another address is not affected. The control, the same guesses
// with no limit (TokenGuesses < 0), ends with the right token accepted: the
// probe would see a guess succeed.
func TestTokenGuessing(t *testing.T) {
	doors := []struct {
		name string
		// try sends tok through the door from ts's test client and reports
		// whether it was let in, and the status.
		try func(t *testing.T, ts *testServer, tok string) (in bool, code int)
	}{
		{"api", func(t *testing.T, ts *testServer, tok string) (bool, int) {
			req, _ := http.NewRequest(http.MethodPost, ts.http.URL+"/api/runs", strings.NewReader(`{"command":"build //...","commit":"abc","branch":"dev"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusCreated, resp.StatusCode
		}},
		{"sign-in form", func(t *testing.T, ts *testServer, tok string) (bool, int) {
			w := newWebClient(t, ts.http.URL)
			code, body := w.signInToken(ts.http.URL, tok)
			return code == http.StatusOK && strings.Contains(body, `signed in as <b id="user">token</b>`), code
		}},
		{"private page", func(t *testing.T, ts *testServer, tok string) (bool, int) {
			req, _ := http.NewRequest(http.MethodGet, ts.http.URL+"/api/runs", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.StatusCode
		}},
	}
	for _, door := range doors {
		for _, limited := range []bool{true, false} {
			name := door.name + "/limited"
			if !limited {
				name = door.name + "/control"
			}
			t.Run(name, func(t *testing.T) {
				clock := &testClock{} // retention_test.go
				ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) {
					c.Now = clock.now
					c.Private = door.name == "private page"
					if !limited {
						c.TokenGuesses = -1
					}
				})
				for i := range defaultGuessLimit {
					if in, code := door.try(t, ts, fmt.Sprintf("guess-%d-%s", i, testToken)); in || code == http.StatusTooManyRequests {
						t.Fatalf("wrong guess %d: let in %v, status %d", i+1, in, code)
					}
				}
				in, code := door.try(t, ts, testToken)
				if !limited {
					if !in {
						t.Fatalf("control: the right token after %d wrong ones was refused (%d): the probe cannot tell", defaultGuessLimit, code)
					}
					return
				}
				if in || code != http.StatusTooManyRequests {
					t.Fatalf("the right token after %d wrong ones: let in %v, status %d; want refused with 429", defaultGuessLimit, in, code)
				}
				if door.name == "api" {
					resp, err := http.Get(ts.http.URL + "/api/runs/1")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusNotFound {
						t.Fatalf("GET /api/runs/1 after the refused request: %d, want 404 (no run started)", resp.StatusCode)
					}
				}
				// Another address still gets in.
				req := httptest.NewRequest(http.MethodPost, "/api/runs", strings.NewReader(`{"command":"build //..."}`))
				req.RemoteAddr = "192.0.2.7:40000"
				req.Header.Set("Authorization", "Bearer "+testToken)
				rec := httptest.NewRecorder()
				ts.s.Handler().ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					t.Errorf("another address with the right token: %d %s", rec.Code, rec.Body)
				}
				// Once the window has passed, the guesser's address may try again.
				clock.advance(guessWindow)
				if in, code := door.try(t, ts, testToken); !in {
					t.Errorf("the right token after the window: %d", code)
				}
			})
		}
	}
}

func TestGuessesWindow(t *testing.T) {
	clock := &testClock{}
	g := newGuesses(3, clock.now)
	try := func(addr, tok string) error {
		_, err := g.check(addr, tok, "right-token")
		return err
	}
	for i := range 3 {
		if err := try("192.0.2.1", "wrong"); err == nil || errors.Is(err, errGuessing) {
			t.Fatalf("wrong %d: %v", i, err)
		}
		clock.advance(time.Minute)
	}
	if err := try("192.0.2.1", "right-token"); !errors.Is(err, errGuessing) {
		t.Fatalf("after 3 wrong: %v, want refused", err)
	}
	// The window slides: the first failure ages out after guessWindow.
	clock.advance(guessWindow - 3*time.Minute)
	if err := try("192.0.2.1", "right-token"); err != nil {
		t.Fatalf("after the first failure aged out: %v", err)
	}
	if err := try("192.0.2.1", "wrong"); err == nil || errors.Is(err, errGuessing) {
		t.Fatalf("one more wrong: %v", err)
	}
	if err := try("192.0.2.1", "right-token"); !errors.Is(err, errGuessing) {
		t.Fatalf("3 wrong within the window again: %v, want refused", err)
	}
	// No token is no guess: a client without one does not lock itself out.
	for range 10 {
		if err := try("192.0.2.2", ""); err == nil || errors.Is(err, errGuessing) {
			t.Fatalf("no token: %v", err)
		}
	}
	if err := try("192.0.2.2", "right-token"); err != nil {
		t.Fatalf("after requests without a token: %v", err)
	}
	// An IPv6 host counts as its /64.
	for _, a := range []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = a
		if err := try(clientAddr(req, nil), "wrong"); errors.Is(err, errGuessing) {
			t.Fatalf("%s: refused early", a)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "[2001:db8::ffff]:1"
	if err := try(clientAddr(req, nil), "right-token"); !errors.Is(err, errGuessing) {
		t.Fatalf("a fourth address of the same /64: %v, want refused", err)
	}
}

// A token short enough to guess is refused when the server starts.
func TestShortTokenRefused(t *testing.T) {
	for _, tok := range []string{"tok", strings.Repeat("x", MinTokenLen-1)} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), AuthToken: tok})
		if err == nil || !strings.Contains(err.Error(), "openssl rand") {
			t.Errorf("token of %d characters: %v, want refused", len(tok), err)
		}
	}
	s, err := New(context.Background(), Config{DataDir: t.TempDir(), AuthToken: testToken})
	if err != nil {
		t.Fatalf("a token of %d characters: %v", len(testToken), err)
	}
	s.Close()
}

// Behind a reverse proxy: with the proxy trusted (--trusted-proxy), wrong
// tokens count against the client address it adds to X-Forwarded-For, so a
// guesser behind it does not lock out the others; what a client writes in
// X-Forwarded-For itself (directly, or through the proxy, which appends the
// real address) does not choose its count. The control, the proxy not
// trusted, locks everyone behind it out: the probe tells the difference.
func TestTrustedProxyGuessing(t *testing.T) {
	const proxy = "127.0.0.1:5000"
	for _, trusted := range []bool{true, false} {
		name := "trusted"
		if !trusted {
			name = "control"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, func(c *Config) {
				if trusted {
					c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
				}
			})
			post := func(remote, xff, tok string) int {
				req := httptest.NewRequest(http.MethodPost, "/api/runs", strings.NewReader(`{"command":"build //..."}`))
				req.RemoteAddr = remote
				if xff != "" {
					req.Header.Set("X-Forwarded-For", xff)
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				ts.s.Handler().ServeHTTP(rec, req)
				return rec.Code
			}
			// The guesser, through the proxy, claiming a new address each time.
			for i := range defaultGuessLimit {
				if code := post(proxy, fmt.Sprintf("198.51.100.%d, 203.0.113.9", i), fmt.Sprintf("guess-%d", i)); code != http.StatusUnauthorized {
					t.Fatalf("guess %d: %d", i+1, code)
				}
			}
			if code := post(proxy, "198.51.100.200, 203.0.113.9", testToken); code != http.StatusTooManyRequests {
				t.Errorf("the guesser's right token: %d, want 429", code)
			}
			code := post(proxy, "192.0.2.44", testToken)
			if trusted && code != http.StatusCreated {
				t.Errorf("another client behind the trusted proxy: %d, want 201", code)
			}
			if !trusted && code != http.StatusTooManyRequests {
				t.Errorf("control: another client behind the untrusted proxy: %d, want 429 (one count for the proxy)", code)
			}
			// Directly, a header of the client's own choosing counts for nothing.
			for i := range defaultGuessLimit {
				post("203.0.113.66:1", fmt.Sprintf("198.51.101.%d", i), fmt.Sprintf("guess-%d", i))
			}
			if code := post("203.0.113.66:1", "198.51.101.200", testToken); code != http.StatusTooManyRequests {
				t.Errorf("a direct client naming itself another address: %d, want 429", code)
			}
		})
	}
}

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies([]string{"10.0.0.1", "192.168.0.0/16", "::1", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1/32", "192.168.0.0/16", "::1/128", "10.0.0.0/8"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("%d: %s, want %s", i, p, want[i])
		}
	}
	if _, err := ParseProxies([]string{"proxy.example.com"}); err == nil {
		t.Error("a host name was taken")
	}
}
