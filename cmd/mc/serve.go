package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/server"
)

// runServe is `mc serve`: the CI server and web interface (package server).
// Secrets come from the environment only (MC_WEBHOOK_SECRET,
// MC_GITHUB_TOKEN, MC_AUTH_TOKEN, MC_GITHUB_OAUTH_CLIENT_SECRET), or
// --auth-token, or a file (--github-app-key), so that they do not show in
// `ps`.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "[FLAGS]")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data-dir", "", "state directory: server.db and the runs' workspaces (default $XDG_DATA_HOME/mc/serve)")
	publicURL := fs.String("url", "", "the server's public URL, for the links in commit statuses (default http://LISTEN)")
	githubAPI := fs.String("github-api", "", "GitHub API base URL (also MC_GITHUB_API; default https://api.github.com/, Enterprise: https://HOST/api/v3/)")
	appID := fs.Int64("github-app-id", 0, "authenticate to GitHub as this GitHub App (with --github-app-key) instead of MC_GITHUB_TOKEN: check runs with annotations")
	appKeyFile := fs.String("github-app-key", "", "the GitHub App's private key (the PEM file GitHub gives), with --github-app-id")
	authToken := fs.String("auth-token", "", "token that starting and cancelling runs requires, 24 characters or more (also MC_AUTH_TOKEN); without one the API is read-only")
	parallel := fs.Int("parallel", 1, "runs that build at the same time")
	cancelOld := fs.Bool("cancel-superseded", true, "a newer commit of a branch or pull request cancels its older queued or running runs")
	// Worktrees are always kept and reused now (server/checkout.go): the
	// old flag is accepted with a warning, so that scripts keep working.
	fs.Bool("keep-workspaces", false, "")
	_ = fs.MarkDeprecated("keep-workspaces", "worktrees are always kept and reused")
	addrFile := fs.String("addr-file", "", "write the address listened on to this file once listening (with --listen HOST:0)")
	stageNet := fs.String("stage-network", "private", "the builds' --stage-network: private (stages with network = True cannot reach this server, loopback or the metadata service) or host")
	keepDays := fs.Int("keep-days", 0, "remove ended runs (their logs and work directories) older than N days, at start and hourly (0: keep)")
	keepRuns := fs.Int("keep-runs", 0, "keep only the newest N runs; older ended runs are removed with their logs and work directories (0: keep all)")
	private := fs.Bool("private", false, "reading pages, logs and the API needs sign-in (or the API token) too")
	oauthID := fs.String("github-oauth-client-id", "", "sign in with GitHub: the OAuth app's client id (also MC_GITHUB_OAUTH_CLIENT_ID; its secret: MC_GITHUB_OAUTH_CLIENT_SECRET; callback URL: URL/signin/github/callback)")
	githubURL := fs.String("github-url", "https://github.com", "GitHub's web address for OAuth sign-in (GitHub Enterprise: https://HOST)")
	var buildArgs, prEnv, allowUsers, allowOrgs, proxies []string
	fs.StringArrayVar(&proxies, "trusted-proxy", nil, "a reverse proxy in front of the server (an address or CIDR, repeatable): wrong tokens are counted against the client address it adds to X-Forwarded-For, not its own")
	fs.StringArrayVar(&allowUsers, "allow-user", nil, "a GitHub login that may sign in (repeatable)")
	fs.StringArrayVar(&allowOrgs, "allow-org", nil, "a GitHub organization whose active members may sign in (repeatable)")
	fs.StringArrayVar(&prEnv, "pr-env", nil, "a variable of the server's environment that pull-request builds may see, e.g. read-only AWS credentials (repeatable); they see only PATH, HOME, locale, cache locations and MC_CACHE/MC_S3_ENDPOINT/MC_REGISTRY otherwise")
	fs.StringArrayVar(&buildArgs, "build-arg", nil, "an extra flag for every build, e.g. --build-arg=-j2 (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected arguments %q", fs.Args())
	}
	getenv := func(k string) string { v, _ := e.getenv(k); return v }
	if *dataDir == "" {
		d, err := server.DefaultDataDir(getenv)
		if err != nil {
			return err
		}
		*dataDir = d
	}
	*dataDir = resolveDir(e.dir, *dataDir)
	if *githubAPI == "" {
		*githubAPI = getenv("MC_GITHUB_API")
	}
	if *authToken == "" {
		*authToken = getenv("MC_AUTH_TOKEN")
	}
	if *parallel < 1 {
		return usagef("serve: --parallel must be at least 1")
	}
	ghToken := getenv("MC_GITHUB_TOKEN")
	appKey, err := server.GitHubAppKey(*appID, resolveDir(e.dir, *appKeyFile), *appKeyFile != "", ghToken != "")
	if err != nil {
		return err
	}
	if *keepDays < 0 || *keepRuns < 0 {
		return usagef("serve: --keep-days and --keep-runs must not be negative")
	}
	if *oauthID == "" {
		*oauthID = getenv("MC_GITHUB_OAUTH_CLIENT_ID")
	}
	oauth := server.OAuthConfig{ClientID: *oauthID, ClientSecret: getenv("MC_GITHUB_OAUTH_CLIENT_SECRET"),
		BaseURL: *githubURL, AllowedUsers: allowUsers, AllowedOrgs: allowOrgs}
	if err := oauth.CheckSignIn(*private, *authToken != ""); err != nil {
		return err
	}
	if err := server.CheckToken(*authToken); err != nil {
		return errkind.Usagef("serve: %v", err)
	}
	trusted, err := server.ParseProxies(proxies)
	if err != nil {
		return err
	}
	privateNet, err := sandbox.ParseStageNetwork(*stageNet)
	if err != nil {
		return usagef("serve: %v", err)
	}
	// Pull requests are others' code: never without the sandbox (exit 3).
	if err := sandbox.CheckSandbox(ctx, privateNet); err != nil {
		return &infraError{fmt.Errorf("serve: %w", err)}
	}
	buildArgs = append([]string{"--stage-network=" + *stageNet}, buildArgs...)
	exe, err := os.Executable()
	if err != nil {
		return &infraError{fmt.Errorf("serve: finding the mc binary: %w", err)}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return &infraError{fmt.Errorf("serve: %w", err)}
	}
	defer ln.Close()
	if *publicURL == "" {
		*publicURL = "http://" + ln.Addr().String()
	}
	secret := getenv("MC_WEBHOOK_SECRET")
	if secret == "" {
		fmt.Fprintln(e.stderr, "mc serve: warning: MC_WEBHOOK_SECRET is not set: every webhook delivery is refused")
	}
	srv, err := server.New(ctx, server.Config{
		DataDir: *dataDir, PublicURL: *publicURL, WebhookSecret: secret, GitHubToken: ghToken,
		GitHubAppID: *appID, GitHubAppKey: appKey, GitHubAPI: *githubAPI, AuthToken: *authToken, TrustedProxies: trusted, Parallel: *parallel, CancelSuperseded: *cancelOld,
		Exe: exe, BuildArgs: buildArgs, PREnv: prEnv, Log: e.stderr,
		OAuth: oauth, Private: *private, KeepAge: time.Duration(*keepDays) * 24 * time.Hour, KeepRuns: *keepRuns,
	})
	if err != nil {
		return &infraError{err}
	}
	defer srv.Close()
	if appKey != nil {
		// A wrong id or key shows now, not at the first run's check.
		if err := srv.CheckGitHub(ctx); err != nil {
			return usagef("serve: %v", err)
		}
	}
	err = server.Serve(ctx, srv, ln, func() error {
		if *addrFile != "" {
			if err := os.WriteFile(resolveDir(e.dir, *addrFile), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
				return &infraError{fmt.Errorf("serve: %w", err)}
			}
		}
		fmt.Fprintf(e.stderr, "mc serve: listening on %s (data in %s)\n", *publicURL, *dataDir)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "mc serve: stopped")
	return nil
}
