package server

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sessionCookie names the session cookie: a random id, HttpOnly,
// SameSite=Lax, Secure when the server is reached over TLS; the session
// itself stays on the server.
const sessionCookie = "mc_session"

// Lifetimes: a signed-in session, and one that only carries a sign-in in
// progress (the OAuth state, the token form's CSRF token).
const (
	sessionTTL     = 7 * 24 * time.Hour
	anonSessionTTL = 15 * time.Minute
	maxSessions    = 10000
)

// session is what the server knows of a browser.
type session struct {
	ID      string
	CSRF    string // the token every POST of this session carries
	User    string // "" until signed in
	Via     string // "github" or "token"
	State   string // OAuth state of a sign-in in progress
	Next    string // where to go after signing in (a local path)
	Expires time.Time
}

func (ss *session) signedIn() bool { return ss != nil && ss.User != "" }

// sessions is the server-side session store (in memory: a restart signs
// everyone out, which is the safe direction).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, now: now}
}

// randomToken is 128 bits or more of crypto/rand, as text.
func randomToken() string { return rand.Text() }

// get returns a copy of the live session id names, or nil.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return nil
	}
	if s.now().After(ss.Expires) {
		delete(s.m, id)
		return nil
	}
	c := *ss
	return &c
}

// create stores a new session; signed-in sessions live longer. When the
// store is full the expired go first, then the oldest anonymous ones: a
// flood of sign-in pages cannot sign anyone out.
func (s *sessions) create(user, via string) *session {
	ttl := anonSessionTTL
	if user != "" {
		ttl = sessionTTL
	}
	ss := &session{ID: randomToken(), CSRF: randomToken(), User: user, Via: via, Expires: s.now().Add(ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		now := s.now()
		var oldest *session
		for id, o := range s.m {
			if now.After(o.Expires) {
				delete(s.m, id)
			} else if o.User == "" && (oldest == nil || o.Expires.Before(oldest.Expires)) {
				oldest = o
			}
		}
		if len(s.m) >= maxSessions && oldest != nil {
			delete(s.m, oldest.ID)
		}
	}
	c := *ss
	s.m[ss.ID] = &c
	return ss
}

// update applies f to session id (if it still exists).
func (s *sessions) update(id string, f func(*session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.m[id]; ok {
		f(ss)
	}
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// sessionOf returns the request's session, or nil.
func (s *Server) sessionOf(req *http.Request) *session {
	c, err := req.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.auth.sessions.get(c.Value)
}

// ensureSession returns the request's session, creating an anonymous one
// (and its cookie) when there is none.
func (s *Server) ensureSession(w http.ResponseWriter, req *http.Request) *session {
	if ss := s.sessionOf(req); ss != nil {
		return ss
	}
	ss := s.auth.sessions.create("", "")
	s.setSessionCookie(w, req, ss)
	return ss
}

// signIn replaces the request's session by a new signed-in one: a new id,
// so that an id planted before the sign-in (session fixation, e.g. by
// another site on the same host) signs nobody in.
func (s *Server) signIn(w http.ResponseWriter, req *http.Request, old *session, user, via string) *session {
	if old != nil {
		s.auth.sessions.delete(old.ID)
	}
	ss := s.auth.sessions.create(user, via)
	s.setSessionCookie(w, req, ss)
	s.logf("%s signed in (%s)", user, via)
	return ss
}

func (s *Server) setSessionCookie(w http.ResponseWriter, req *http.Request, ss *session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: ss.ID, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure:  req.TLS != nil || strings.HasPrefix(s.cfg.PublicURL, "https://"),
		Expires: ss.Expires,
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter, req *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: req.TLS != nil || strings.HasPrefix(s.cfg.PublicURL, "https://"), MaxAge: -1})
}

// checkPost guards every form POST of the pages: the request must come
// from this server's own pages (Origin, or Sec-Fetch-Site when the
// browser sends Origin "null"), carry a session, and carry that
// session's CSRF token. It answers 403 and returns nil otherwise.
func (s *Server) checkPost(w http.ResponseWriter, req *http.Request) *session {
	if err := s.sameOrigin(req); err != "" {
		s.refuse(w, req, err)
		return nil
	}
	ss := s.sessionOf(req)
	if ss == nil {
		s.refuse(w, req, "no session: sign in first (cookies must be enabled)")
		return nil
	}
	tok := req.PostFormValue("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(ss.CSRF)) != 1 {
		s.refuse(w, req, "missing or wrong CSRF token: reload the page and try again")
		return nil
	}
	return ss
}

// sameOrigin says why req does not come from the server's own pages ("":
// it does). Browsers send Origin with every POST; ours is "null" when the
// page's Referrer-Policy is no-referrer, and then Sec-Fetch-Site (which
// pages cannot forge) must say same-origin. A request with neither is not
// from a browser page and is refused too: scripts use the API's token.
func (s *Server) sameOrigin(req *http.Request) string {
	site := req.Header.Get("Sec-Fetch-Site")
	origin := req.Header.Get("Origin")
	if origin != "" && origin != "null" {
		if origin == s.auth.origin {
			return ""
		}
		for _, o := range s.cfg.extraOrigins {
			if origin == o {
				return ""
			}
		}
		return "cross-origin request refused: Origin " + origin + " is not this server's (" + s.auth.origin + ", set with --url)"
	}
	if site == "same-origin" {
		return ""
	}
	if site != "" {
		return "cross-site request refused (Sec-Fetch-Site: " + site + ")"
	}
	return "request refused: no Origin header (forms of this server's pages only; scripts use the API with a token)"
}

func (s *Server) refuse(w http.ResponseWriter, req *http.Request, why string) {
	s.logf("refused %s %s: %s", req.Method, req.URL.Path, why)
	securityHeaders(w)
	http.Error(w, "403 forbidden: "+why, http.StatusForbidden)
}
