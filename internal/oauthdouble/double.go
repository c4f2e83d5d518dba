// Package oauthdouble is a test double of GitHub's OAuth web flow and of
// the two API calls mc serve's sign-in makes, on 127.0.0.1 (GitHub itself
// is not reachable from the test machines):
//
//   - GET /login/oauth/authorize: checks client_id, redirect_uri and state,
//     and, as if the user had approved, redirects to redirect_uri with a
//     one-time code and the state. The user is the double's current one
//     (SetUser), as if signed in to GitHub in that browser.
//   - POST /login/oauth/access_token: checks the client id and secret, the
//     code (used once, within 10 minutes) and its redirect_uri; answers
//     JSON {access_token, token_type, scope} or GitHub's error JSON.
//   - GET /api/v3/user: the token's user {login, id}.
//   - GET /api/v3/user/memberships/orgs/ORG: {state: active} for members,
//     404 otherwise; like GitHub, only for tokens with the read:org scope.
//
// Anything else is 404. It is a double of those endpoints only: no consent
// page, no scopes beyond read:org.
package oauthdouble

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Server is a running double.
type Server struct {
	// URL is the web base (OAuth endpoints); APIURL the API base
	// (URL + "/api/v3/").
	URL, APIURL string

	clientID, secret string
	srv              *httptest.Server

	mu        sync.Mutex
	user      string
	orgs      map[string][]string // org → member logins
	codes     map[string]grant
	tokens    map[string]grant
	exchanges int // successful code exchanges
}

type grant struct {
	user, redirect, scope string
	issued                time.Time
}

// Start starts a double that knows one OAuth app.
func Start(clientID, clientSecret string) *Server {
	d := &Server{clientID: clientID, secret: clientSecret, orgs: map[string][]string{},
		codes: map[string]grant{}, tokens: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", d.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", d.accessToken)
	mux.HandleFunc("GET /api/v3/user", d.apiUser)
	mux.HandleFunc("GET /api/v3/user/memberships/orgs/{org}", d.membership)
	d.srv = httptest.NewServer(mux)
	d.URL = d.srv.URL
	d.APIURL = d.srv.URL + "/api/v3/"
	return d
}

// Close stops the double.
func (d *Server) Close() { d.srv.Close() }

// SetUser sets who is signed in to the double's "GitHub".
func (d *Server) SetUser(login string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.user = login
}

// AddMember makes login a member of org.
func (d *Server) AddMember(org, login string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.orgs[org] = append(d.orgs[org], login)
}

// Exchanges counts the codes exchanged for tokens.
func (d *Server) Exchanges() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exchanges
}

// Code issues a code for login as authorize would (for tests that play an
// attacker who got a code for their own account).
func (d *Server) Code(login, redirectURI, scope string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := rand.Text()
	d.codes[c] = grant{user: login, redirect: redirectURI, scope: scope, issued: time.Now()}
	return c
}

func (d *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != d.clientID {
		http.Error(w, "double: unknown client_id", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || redirect.Host == "" {
		http.Error(w, "double: redirect_uri must be an absolute URL", http.StatusBadRequest)
		return
	}
	if q.Get("state") == "" {
		http.Error(w, "double: no state (GitHub allows it; mc must always send one)", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	user := d.user
	d.mu.Unlock()
	rq := redirect.Query()
	if user == "" {
		rq.Set("error", "access_denied")
	} else {
		rq.Set("code", d.Code(user, redirect.String(), q.Get("scope")))
	}
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (d *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fail := func(code, desc string) {
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		http.Error(w, "double: send Accept: application/json (GitHub answers form-encoded otherwise)", http.StatusNotAcceptable)
		return
	}
	if r.PostFormValue("client_id") != d.clientID || r.PostFormValue("client_secret") != d.secret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	code := r.PostFormValue("code")
	g, ok := d.codes[code]
	delete(d.codes, code) // used once, right or wrong
	if !ok || time.Since(g.issued) > 10*time.Minute {
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	}
	if ru := r.PostFormValue("redirect_uri"); ru != "" && ru != g.redirect {
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	tok := "gho_" + rand.Text()
	d.tokens[tok] = g
	d.exchanges++
	json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": g.scope})
}

// grantOf returns the grant of the request's bearer token.
func (d *Server) grantOf(w http.ResponseWriter, r *http.Request) (grant, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	d.mu.Lock()
	g, known := d.tokens[tok]
	d.mu.Unlock()
	if !ok || !known {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Bad credentials"}`)
		return g, false
	}
	return g, true
}

func (d *Server) apiUser(w http.ResponseWriter, r *http.Request) {
	g, ok := d.grantOf(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"login": g.user, "id": len(g.user) * 1000, "type": "User"})
}

func (d *Server) membership(w http.ResponseWriter, r *http.Request) {
	g, ok := d.grantOf(w, r)
	if !ok {
		return
	}
	org := r.PathValue("org")
	d.mu.Lock()
	member := false
	for _, m := range d.orgs[org] {
		member = member || m == g.user
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !strings.Contains(g.scope, "read:org") {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"You need at least read:org scope or user scope to list your organization memberships."}`)
		return
	}
	if !member {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"state": "active", "role": "member", "organization": map[string]string{"login": org}})
}
