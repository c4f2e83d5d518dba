// Package ghapi is the small part of GitHub's REST API that mc serve uses:
// commit statuses, check runs (with annotations), and authentication by a
// token or as a GitHub App (an RS256 JWT exchanged for installation tokens,
// cached until shortly before they expire). Standard library only.
package ghapi

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// APIVersion is the REST API version every request asks for
// (X-GitHub-Api-Version).
const APIVersion = "2022-11-28"

// DefaultBase is github.com's API.
const DefaultBase = "https://api.github.com/"

// Options say how a Client authenticates: Token, or AppID and AppKey.
type Options struct {
	// Token is a personal access token or any token GitHub takes as a
	// Bearer credential.
	Token string
	// AppID and AppKey authenticate as a GitHub App: requests on a
	// repository use an installation token of the App's installation on it.
	AppID  int64
	AppKey *rsa.PrivateKey
	// HTTP is the client requests go through (default: one with a 30 s
	// timeout).
	HTTP *http.Client
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// RefreshBefore renews an installation token this long before it
	// expires (default 5 minutes), so that no request carries one that
	// expires on the way.
	RefreshBefore time.Duration
}

// Client calls GitHub's REST API. Safe for concurrent use.
type Client struct {
	base *url.URL
	opt  Options

	mu            sync.Mutex
	installations map[string]int64 // owner/name -> installation id
	tokens        map[int64]installationToken
}

type installationToken struct {
	token   string
	expires time.Time
}

// New returns a client of the API at base ("" is DefaultBase; GitHub
// Enterprise: https://HOST/api/v3/).
func New(base string, opt Options) (*Client, error) {
	if base == "" {
		base = DefaultBase
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ghapi: API URL %q: want http(s)://HOST/PATH", base)
	}
	switch {
	case opt.AppID != 0 && opt.AppKey == nil, opt.AppID == 0 && opt.AppKey != nil:
		return nil, errors.New("ghapi: a GitHub App needs both its id and its private key")
	case opt.AppID < 0:
		return nil, fmt.Errorf("ghapi: GitHub App id %d: must be positive", opt.AppID)
	case opt.AppID != 0 && opt.Token != "":
		return nil, errors.New("ghapi: give a token or a GitHub App, not both")
	case opt.AppID == 0 && opt.Token == "":
		return nil, errors.New("ghapi: no token and no GitHub App")
	}
	if opt.HTTP == nil {
		opt.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.RefreshBefore <= 0 {
		opt.RefreshBefore = 5 * time.Minute
	}
	return &Client{base: u, opt: opt, installations: map[string]int64{}, tokens: map[int64]installationToken{}}, nil
}

// IsApp reports whether the client authenticates as a GitHub App.
func (c *Client) IsApp() bool { return c.opt.AppID != 0 }

// Error is a reply of GitHub other than 2xx.
type Error struct {
	Method, Path string
	StatusCode   int
	Message      string // GitHub's "message", or the start of the body
	// RateLimited: a 403 or 429 because of a rate limit, not a permission.
	RateLimited bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("GitHub %s %s: %d %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// IsForbidden reports whether err is GitHub refusing the credential the
// permission (403, not a rate limit): a token without the checks
// permission, for example.
func IsForbidden(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusForbidden && !e.RateLimited
}

// IsUnauthorized reports whether GitHub refused the credential itself (401).
func IsUnauthorized(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized
}

// cred is how a request authenticates.
type cred int

const (
	credRepo cred = iota // the token, or the installation token of the repository
	credApp              // the App's JWT
)

// do sends one request (body marshalled as JSON unless nil) and decodes a
// 2xx reply's body into out (unless nil). repo ("owner/name") picks the
// installation for credRepo.
func (c *Client) do(ctx context.Context, method, path string, cr cred, repo string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("ghapi: %s %s: %w", method, path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		auth, err := c.authorization(ctx, cr, repo)
		if err != nil {
			return err
		}
		err = c.send(ctx, method, path, auth, payload, out)
		// An installation token GitHub no longer takes (revoked, or our
		// clock is behind): get a new one, once.
		if attempt == 0 && cr == credRepo && c.IsApp() && IsUnauthorized(err) {
			c.forgetToken(repo)
			continue
		}
		return err
	}
}

func (c *Client) send(ctx context.Context, method, path, auth string, payload []byte, out any) error {
	u := c.base.JoinPath(strings.Split(path, "?")[0])
	if _, q, ok := strings.Cut(path, "?"); ok {
		u.RawQuery = q
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("ghapi: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", APIVersion)
	req.Header.Set("User-Agent", "mc-serve")
	req.Header.Set("Authorization", auth)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.opt.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("ghapi: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("ghapi: %s %s: reading the reply: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Method: method, Path: path, StatusCode: resp.StatusCode}
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			e.Message = m.Message
		} else {
			e.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		e.RateLimited = resp.StatusCode == http.StatusTooManyRequests ||
			(resp.StatusCode == http.StatusForbidden && (resp.Header.Get("X-RateLimit-Remaining") == "0" ||
				resp.Header.Get("Retry-After") != "" || strings.Contains(strings.ToLower(e.Message), "rate limit")))
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("ghapi: %s %s: reading the reply: %w", method, path, err)
		}
	}
	return nil
}

// splitRepo checks "owner/name" and returns it as path segments.
func splitRepo(repo string) (string, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.ContainsAny(name, "/?#") || strings.ContainsAny(owner, "?#") {
		return "", fmt.Errorf("ghapi: repository %q: want owner/name", repo)
	}
	return url.PathEscape(owner) + "/" + url.PathEscape(name), nil
}

// Status is a commit status.
type Status struct {
	State       string `json:"state"` // error, failure, pending, success
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"` // at most 140 characters
	Context     string `json:"context,omitempty"`
}

// CreateStatus posts a commit status on sha of repo (owner/name).
func (c *Client) CreateStatus(ctx context.Context, repo, sha string, st Status) error {
	p, err := splitRepo(repo)
	if err != nil {
		return err
	}
	if len([]rune(st.Description)) > 140 {
		st.Description = string([]rune(st.Description)[:139]) + "…"
	}
	return c.do(ctx, http.MethodPost, "repos/"+p+"/statuses/"+url.PathEscape(sha), credRepo, repo, st, nil)
}
