package ghapi

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParsePrivateKey reads a GitHub App's private key: the PEM file GitHub
// gives ("RSA PRIVATE KEY", PKCS #1), or PKCS #8.
func ParsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("not a PEM file (GitHub's App key begins with -----BEGIN RSA PRIVATE KEY-----)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("RSA private key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PKCS #8 private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an RSA key: GitHub Apps sign with RSA", k)
		}
		return rk, nil
	default:
		return nil, fmt.Errorf("PEM block %q: want an RSA PRIVATE KEY", block.Type)
	}
}

// JWT lifetimes: GitHub refuses an exp more than 10 minutes ahead; iat is
// set in the past to allow for clock drift between this machine and GitHub.
const (
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute // from now; exp - iat = 10 minutes
)

// AppJWT returns a JSON Web Token authenticating as the App (RS256 over
// {"iat","exp","iss"}).
func (c *Client) AppJWT() (string, error) {
	if !c.IsApp() {
		return "", errors.New("ghapi: not a GitHub App client")
	}
	return SignJWT(c.opt.AppKey, c.opt.AppID, c.opt.Now())
}

// SignJWT makes the JWT of App appID at time now.
func SignJWT(key *rsa.PrivateKey, appID int64, now time.Time) (string, error) {
	claims, err := json.Marshal(struct {
		IAT int64  `json:"iat"`
		EXP int64  `json:"exp"`
		ISS string `json:"iss"`
	}{now.Add(-jwtBackdate).Unix(), now.Add(jwtLifetime).Unix(), strconv.FormatInt(appID, 10)})
	if err != nil {
		return "", err
	}
	return signJWTClaims(key, claims)
}

// signJWTClaims signs claims (JSON) with RS256.
func signJWTClaims(key *rsa.PrivateKey, claims []byte) (string, error) {
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("ghapi: signing the App's JWT: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// App describes the authenticated App (GET /app): a cheap check that the
// id and key are right.
type App struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// GetApp returns the App the client authenticates as.
func (c *Client) GetApp(ctx context.Context) (*App, error) {
	var a App
	if err := c.do(ctx, http.MethodGet, "app", credApp, "", nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SetInstallation records the App's installation on repo (owner/name), as
// a webhook payload's installation.id says; without it the installation
// is looked up (GET /repos/{owner}/{repo}/installation).
func (c *Client) SetInstallation(repo string, id int64) {
	if id <= 0 || !c.IsApp() {
		return
	}
	c.mu.Lock()
	c.installations[repo] = id
	c.mu.Unlock()
}

// Installation returns the installation recorded for repo, if any.
func (c *Client) Installation(repo string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.installations[repo]
	return id, ok
}

// authorization is the Authorization header of a request.
func (c *Client) authorization(ctx context.Context, cr cred, repo string) (string, error) {
	if !c.IsApp() {
		return "Bearer " + c.opt.Token, nil
	}
	if cr == credApp {
		jwt, err := c.AppJWT()
		if err != nil {
			return "", err
		}
		return "Bearer " + jwt, nil
	}
	tok, err := c.installationToken(ctx, repo)
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// installationToken returns a token of the App's installation on repo,
// from the cache while it has more than RefreshBefore to live.
func (c *Client) installationToken(ctx context.Context, repo string) (string, error) {
	c.mu.Lock()
	id, known := c.installations[repo]
	c.mu.Unlock()
	if !known {
		p, err := splitRepo(repo)
		if err != nil {
			return "", err
		}
		var inst struct {
			ID int64 `json:"id"`
		}
		if err := c.do(ctx, http.MethodGet, "repos/"+p+"/installation", credApp, "", nil, &inst); err != nil {
			return "", fmt.Errorf("ghapi: the App's installation on %s: %w", repo, err)
		}
		if inst.ID <= 0 {
			return "", fmt.Errorf("ghapi: the App's installation on %s: no id in the reply", repo)
		}
		id = inst.ID
		c.SetInstallation(repo, id)
	}
	c.mu.Lock()
	t, ok := c.tokens[id]
	c.mu.Unlock()
	if ok && c.opt.Now().Add(c.opt.RefreshBefore).Before(t.expires) {
		return t.token, nil
	}
	var got struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	path := "app/installations/" + strconv.FormatInt(id, 10) + "/access_tokens"
	if err := c.do(ctx, http.MethodPost, path, credApp, "", nil, &got); err != nil {
		return "", fmt.Errorf("ghapi: an installation token for %s: %w", repo, err)
	}
	if got.Token == "" || got.ExpiresAt.IsZero() {
		return "", fmt.Errorf("ghapi: an installation token for %s: no token or expiry in the reply", repo)
	}
	c.mu.Lock()
	c.tokens[id] = installationToken{token: got.Token, expires: got.ExpiresAt}
	c.mu.Unlock()
	return got.Token, nil
}

// forgetToken drops the cached installation token of repo's installation.
func (c *Client) forgetToken(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.installations[repo]; ok {
		delete(c.tokens, id)
	}
}

// RepoToken returns the credential requests on repo use: the token, or an
// installation token of the App's installation on repo. (mc serve gives it
// to git to fetch private repositories.)
func (c *Client) RepoToken(ctx context.Context, repo string) (string, error) {
	auth, err := c.authorization(ctx, credRepo, repo)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(auth, "Bearer "), nil
}

// SameHost reports whether cloneURL is a repository of the GitHub this
// client talks to (api.github.com: github.com; GitHub Enterprise: the API's
// host), over the API's scheme: only there may its credentials go.
func (c *Client) SameHost(cloneURL string) bool {
	u, err := url.Parse(cloneURL)
	if err != nil || u.Scheme != c.base.Scheme || u.User != nil {
		return false
	}
	host := c.base.Hostname()
	if host == "api.github.com" {
		host = "github.com"
	}
	return strings.EqualFold(u.Hostname(), host)
}
