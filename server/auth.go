package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// OAuthConfig is sign-in with GitHub (an OAuth app whose callback URL is
// PUBLIC_URL/signin/github/callback). Without a ClientID it is off.
type OAuthConfig struct {
	ClientID     string
	ClientSecret string
	// BaseURL serves /login/oauth/authorize and /login/oauth/access_token
	// (default https://github.com; GitHub Enterprise: https://HOST).
	BaseURL string
	// APIURL serves GET /user (default Config.GitHubAPI, else
	// https://api.github.com/).
	APIURL string
	// AllowedUsers (logins) and AllowedOrgs (active members) may sign in;
	// one of them must be set: any GitHub account is nobody's choice.
	AllowedUsers []string
	AllowedOrgs  []string
}

// authState is sign-in: sessions, the server's own origin (what a POST's
// Origin must be), and GitHub OAuth.
type authState struct {
	sessions *sessions
	origin   string
	oauth    OAuthConfig
	client   *http.Client
}

func newAuthState(cfg *Config) (*authState, error) {
	a := &authState{sessions: newSessions(cfg.Now), oauth: cfg.OAuth, client: &http.Client{Timeout: 20 * time.Second}}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		a.origin = u.Scheme + "://" + u.Host
	}
	o := &a.oauth
	if o.ClientID != "" {
		if o.ClientSecret == "" {
			return nil, errors.New("server: GitHub sign-in needs the OAuth app's client secret (MC_GITHUB_OAUTH_CLIENT_SECRET)")
		}
		if len(o.AllowedUsers) == 0 && len(o.AllowedOrgs) == 0 {
			return nil, errors.New("server: GitHub sign-in needs --allow-user or --allow-org: otherwise any GitHub account could cancel and rerun builds")
		}
		if a.origin == "" {
			return nil, errors.New("server: GitHub sign-in needs the server's public URL (--url) for the OAuth callback")
		}
		if o.BaseURL == "" {
			o.BaseURL = "https://github.com"
		}
		o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
		if o.APIURL == "" {
			o.APIURL = cfg.GitHubAPI
		}
		if o.APIURL == "" {
			o.APIURL = "https://api.github.com/"
		}
		if !strings.HasSuffix(o.APIURL, "/") {
			o.APIURL += "/"
		}
	}
	if cfg.Private && cfg.AuthToken == "" && o.ClientID == "" {
		return nil, errors.New("server: --private needs a way to sign in: an auth token (MC_AUTH_TOKEN) or GitHub OAuth")
	}
	return a, nil
}

func (s *Server) authRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /signin", s.pageSignIn)
	m.HandleFunc("POST /signin/token", s.signInToken)
	m.HandleFunc("GET /signin/github", s.signInGitHub)
	m.HandleFunc("GET /signin/github/callback", s.signInGitHubCallback)
	m.HandleFunc("POST /signout", s.signOut)
	m.HandleFunc("POST /runs/{id}/cancel", s.pageCancel)
	m.HandleFunc("POST /runs/{id}/rerun", s.pageRerun)
}

// localPath keeps next only if it is a path of this server (no open
// redirect through the sign-in).
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (s *Server) pageSignIn(w http.ResponseWriter, req *http.Request) {
	ss := s.ensureSession(w, req)
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, "signin.html", map[string]any{
		"Session": ss, "Next": localPath(req.URL.Query().Get("next")), "Error": req.URL.Query().Get("error"),
		"GitHub": s.auth.oauth.ClientID != "", "Token": s.cfg.AuthToken != "",
	})
}

// signInToken is the form that signs in with the server's token.
func (s *Server) signInToken(w http.ResponseWriter, req *http.Request) {
	ss := s.checkPost(w, req)
	if ss == nil {
		return
	}
	next := url.QueryEscape(localPath(req.PostFormValue("next")))
	switch err := s.checkToken(w, req, req.PostFormValue("token")); {
	case errors.Is(err, errGuessing):
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	case err != nil:
		http.Redirect(w, req, "/signin?error=wrong+token&next="+next, http.StatusSeeOther)
		return
	}
	s.signIn(w, req, ss, "token", "token")
	http.Redirect(w, req, localPath(req.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) signOut(w http.ResponseWriter, req *http.Request) {
	ss := s.checkPost(w, req)
	if ss == nil {
		return
	}
	s.auth.sessions.delete(ss.ID)
	s.clearSessionCookie(w, req)
	http.Redirect(w, req, "/", http.StatusSeeOther)
}

// signInGitHub sends the browser to GitHub's authorize page with a state
// bound to its session.
func (s *Server) signInGitHub(w http.ResponseWriter, req *http.Request) {
	o := s.auth.oauth
	if o.ClientID == "" {
		http.Error(w, "sign-in with GitHub is not configured on this server", http.StatusNotFound)
		return
	}
	ss := s.ensureSession(w, req)
	state := randomToken()
	next := localPath(req.URL.Query().Get("next"))
	s.auth.sessions.update(ss.ID, func(x *session) { x.State, x.Next = state, next })
	q := url.Values{}
	q.Set("client_id", o.ClientID)
	q.Set("redirect_uri", s.auth.origin+"/signin/github/callback")
	q.Set("state", state)
	if len(o.AllowedOrgs) > 0 {
		q.Set("scope", "read:org")
	}
	q.Set("allow_signup", "false")
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, req, o.BaseURL+"/login/oauth/authorize?"+q.Encode(), http.StatusFound)
}

// signInGitHubCallback is where GitHub sends the browser back: the state
// must be the one of this browser's session (else an attacker could sign
// a victim in as the attacker), used once; the code is exchanged for a
// token, the token names the user, the user must be allowed.
func (s *Server) signInGitHubCallback(w http.ResponseWriter, req *http.Request) {
	o := s.auth.oauth
	if o.ClientID == "" {
		http.Error(w, "sign-in with GitHub is not configured on this server", http.StatusNotFound)
		return
	}
	ss := s.sessionOf(req)
	q := req.URL.Query()
	if ss == nil || ss.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ss.State)) != 1 {
		s.refuse(w, req, "the sign-in's state does not match this browser's: start again from /signin")
		return
	}
	s.auth.sessions.update(ss.ID, func(x *session) { x.State = "" }) // used once
	if e := q.Get("error"); e != "" {
		http.Redirect(w, req, "/signin?error="+url.QueryEscape("GitHub: "+e), http.StatusSeeOther)
		return
	}
	login, err := s.githubUser(req.Context(), q.Get("code"))
	if err != nil {
		s.logf("GitHub sign-in: %v", err)
		http.Redirect(w, req, "/signin?error="+url.QueryEscape("GitHub sign-in failed: "+err.Error()), http.StatusSeeOther)
		return
	}
	s.signIn(w, req, ss, login, "github")
	http.Redirect(w, req, localPath(ss.Next), http.StatusSeeOther)
}

// githubUser exchanges an OAuth code for a token and returns the login of
// its user, if allowed.
func (s *Server) githubUser(ctx context.Context, code string) (string, error) {
	o := s.auth.oauth
	if code == "" {
		return "", errors.New("no code")
	}
	form := url.Values{"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "code": {code},
		"redirect_uri": {s.auth.origin + "/signin/github/callback"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := s.oauthJSON(req, &tok); err != nil {
		return "", fmt.Errorf("code exchange: %w", err)
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("code exchange: %s %s", tok.Error, tok.Description)
	}
	get := func(path string, v any) error {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, o.APIURL+path, nil)
		if err != nil {
			return err
		}
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		r.Header.Set("Accept", "application/vnd.github+json")
		return s.oauthJSON(r, v)
	}
	var user struct {
		Login string `json:"login"`
	}
	if err := get("user", &user); err != nil {
		return "", fmt.Errorf("GET /user: %w", err)
	}
	if user.Login == "" {
		return "", errors.New("GET /user: no login")
	}
	if slices.ContainsFunc(o.AllowedUsers, func(u string) bool { return strings.EqualFold(u, user.Login) }) {
		return user.Login, nil
	}
	for _, org := range o.AllowedOrgs {
		var m struct {
			State string `json:"state"`
		}
		err := get("user/memberships/orgs/"+url.PathEscape(org), &m)
		if err == nil && m.State == "active" {
			return user.Login, nil
		}
	}
	return "", fmt.Errorf("%s is not allowed to sign in here", user.Login)
}

func (s *Server) oauthJSON(req *http.Request, v any) error {
	resp, err := s.auth.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(body, v)
}

// guard makes reading require sign-in on a --private server: pages
// redirect to /signin, the API answers 401 unless it carries the token.
// Sign-in itself, the style sheet, health checks and POSTs (webhooks
// verify their signature, the API its token, forms their session) pass.
func (s *Server) guard(next http.Handler) http.Handler {
	if !s.cfg.Private {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		open := req.Method == http.MethodPost || p == "/signin" || strings.HasPrefix(p, "/signin/") ||
			strings.HasPrefix(p, "/static/") || p == "/healthz"
		if open || s.sessionOf(req).signedIn() {
			next.ServeHTTP(w, req)
			return
		}
		if tok, ok := bearer(req); ok {
			switch err := s.checkToken(w, req, tok); {
			case err == nil:
				next.ServeHTTP(w, req)
				return
			case errors.Is(err, errGuessing):
				http.Error(w, err.Error(), http.StatusTooManyRequests)
				return
			}
		}
		if strings.HasPrefix(p, "/api/") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mc"`)
			http.Error(w, "this server is private: sign in, or send Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(p, "/events") || strings.HasSuffix(p, "/log") {
			http.Error(w, "this server is private: sign in", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, req, "/signin?next="+url.QueryEscape(req.URL.RequestURI()), http.StatusSeeOther)
	})
}
