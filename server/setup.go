package server

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/ghapi"
)

// mc serve's settings as its flags and environment give them, checked
// before the server starts: a mistake is a usage error (exit 2) naming the
// flag, never a server that quietly reports to nobody or lets anyone in.

// DefaultDataDir is the state directory without --data-dir:
// $XDG_DATA_HOME/mc/serve, else $HOME/.local/share/mc/serve.
func DefaultDataDir(getenv func(string) string) (string, error) {
	base := getenv("XDG_DATA_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errkind.Usagef("serve: no --data-dir and no $HOME")
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "mc", "serve"), nil
}

// GitHubAppKey reads the GitHub App's private key (--github-app-key) for App
// id (--github-app-id); nil, nil when neither is given. A key that is
// missing, unreadable or not an RSA private key stops mc serve with the
// reason (exit 2): reporting to GitHub never quietly degrades to nothing.
func GitHubAppKey(id int64, keyFile string, haveKey, haveToken bool) (*rsa.PrivateKey, error) {
	switch {
	case id == 0 && !haveKey:
		return nil, nil
	case id <= 0:
		return nil, errkind.Usagef("serve: --github-app-key needs --github-app-id (the App's numeric id, on its settings page)")
	case !haveKey:
		return nil, errkind.Usagef("serve: --github-app-id needs --github-app-key FILE (the App's private key, a .pem file)")
	case haveToken:
		return nil, errkind.Usagef("serve: MC_GITHUB_TOKEN and --github-app-id both set: give one way to authenticate to GitHub")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, errkind.Usagef("serve: --github-app-key: %v", err)
	}
	key, err := ghapi.ParsePrivateKey(b)
	if err != nil {
		return nil, errkind.Usagef("serve: --github-app-key %s: %v", keyFile, err)
	}
	return key, nil
}

// CheckSignIn checks GitHub sign-in (o) against the other ways in: an
// allow list needs sign-in, sign-in needs its secret and an allow list, and
// a private server (private) needs a way to sign in (o, or an API token).
func (o OAuthConfig) CheckSignIn(private, haveAuthToken bool) error {
	allow := len(o.AllowedUsers) > 0 || len(o.AllowedOrgs) > 0
	if o.ClientID == "" && allow {
		return errkind.Usagef("serve: --allow-user and --allow-org need GitHub sign-in (--github-oauth-client-id)")
	}
	if o.ClientID != "" && o.ClientSecret == "" {
		return errkind.Usagef("serve: --github-oauth-client-id needs MC_GITHUB_OAUTH_CLIENT_SECRET")
	}
	if o.ClientID != "" && !allow {
		return errkind.Usagef("serve: GitHub sign-in needs --allow-user or --allow-org (otherwise any GitHub account could cancel and rerun)")
	}
	if private && !haveAuthToken && o.ClientID == "" {
		return errkind.Usagef("serve: --private needs a way to sign in: MC_AUTH_TOKEN (--auth-token) or GitHub OAuth")
	}
	return nil
}

// Serve serves s's pages and API on ln and runs its queue until ctx ends
// (nil) or serving fails. ready is called once both are under way (mc serve
// writes --addr-file and says where it listens); its error ends Serve.
// When ctx ends, the running builds are interrupted and recorded before
// Serve returns.
func Serve(ctx context.Context, s *Server, ln net.Listener, ready func() error) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = s.Run(runCtx)
	}()
	if err := ready(); err != nil {
		return err
	}
	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	stopRun()
	<-runDone // running builds are interrupted and recorded so
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errkind.Infra(fmt.Errorf("serve: %w", err))
	}
	return nil
}
