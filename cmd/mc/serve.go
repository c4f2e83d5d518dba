package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mc-build/mc/sandbox"
	"github.com/mc-build/mc/server"
)

// runServe is `mc serve`: the CI server and web interface (package server).
// Secrets come from the environment only (MC_WEBHOOK_SECRET,
// MC_GITHUB_TOKEN, MC_AUTH_TOKEN), or --auth-token, so that they do not
// show in `ps`.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "[FLAGS]")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data-dir", "", "state directory: server.db and the runs' workspaces (default $XDG_DATA_HOME/mc/serve)")
	publicURL := fs.String("url", "", "the server's public URL, for the links in commit statuses (default http://LISTEN)")
	githubAPI := fs.String("github-api", "", "GitHub API base URL (also MC_GITHUB_API; default https://api.github.com/, Enterprise: https://HOST/api/v3/)")
	authToken := fs.String("auth-token", "", "token that starting and cancelling runs requires (also MC_AUTH_TOKEN); without one the API is read-only")
	parallel := fs.Int("parallel", 1, "runs that build at the same time")
	cancelOld := fs.Bool("cancel-superseded", true, "a newer commit of a branch or pull request cancels its older queued or running runs")
	keep := fs.Bool("keep-workspaces", false, "keep each run's checkout under DATA-DIR/work")
	addrFile := fs.String("addr-file", "", "write the address listened on to this file once listening (with --listen HOST:0)")
	stageNet := fs.String("stage-network", "private", "the builds' --stage-network: private (stages with network = True cannot reach this server, loopback or the metadata service) or host")
	var buildArgs, prEnv []string
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
		base := getenv("XDG_DATA_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				return usagef("serve: no --data-dir and no $HOME")
			}
			base = filepath.Join(home, ".local", "share")
		}
		*dataDir = filepath.Join(base, "mc", "serve")
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
		DataDir: *dataDir, PublicURL: *publicURL, WebhookSecret: secret, GitHubToken: getenv("MC_GITHUB_TOKEN"),
		GitHubAPI: *githubAPI, AuthToken: *authToken, Parallel: *parallel, CancelSuperseded: *cancelOld,
		KeepWorkspaces: *keep, Exe: exe, BuildArgs: buildArgs, PREnv: prEnv, Log: e.stderr,
	})
	if err != nil {
		return &infraError{err}
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = srv.Run(runCtx)
	}()
	if *addrFile != "" {
		if err := os.WriteFile(resolveDir(e.dir, *addrFile), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return &infraError{fmt.Errorf("serve: %w", err)}
		}
	}
	fmt.Fprintf(e.stderr, "mc serve: listening on %s (data in %s)\n", *publicURL, *dataDir)
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
		return &infraError{fmt.Errorf("serve: %w", err)}
	}
	fmt.Fprintln(e.stderr, "mc serve: stopped")
	return nil
}
