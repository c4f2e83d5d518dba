package server

import (
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mc-build/mc/internal/githubdouble"
)

// gitHTTP serves the bare repository over git's smart HTTP protocol (the
// real git http-backend) and, like GitHub for a private repository, takes
// only requests whose Basic password is a credential that the GitHub
// double (internal/githubdouble, a TEST DOUBLE of GitHub's API) takes on
// acme/mono. It returns the clone URL.
func gitHTTP(t *testing.T, d *githubdouble.Double, bare string) string {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || !d.RepoCredential(pass, "acme/mono") {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(bare)
}

// A private repository on the GitHub the server reports to (the double,
// and git over HTTP that takes its credentials): as a GitHub App, the
// server's git fetches, checks out, and reads the branch's head for the
// deploy with an installation token; the build's environment does not
// see it. The positive control: the same server without the App cannot
// fetch.
func TestServeFetchesWithInstallationToken(t *testing.T) {
	for _, withApp := range []bool{true, false} {
		t.Run(fmt.Sprintf("app %v", withApp), func(t *testing.T) {
			d, app := appDouble(t)
			repo := newTestRepo(t)
			cloneURL := gitHTTP(t, d, repo.bare)
			opts := []serverOpt{func(c *Config) { c.GitHubAPI = d.URL + "/api/v3/" }}
			if withApp {
				opts = append(opts, app)
			}
			ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, opts...)
			sha := repo.commit("private")
			p := withInstallation(pushPayloadFor(repo, "main", sha), 7)
			p["repository"].(map[string]any)["clone_url"] = cloneURL
			id := ts.accept("push", "priv-1", p)
			r := ts.waitRun(id, StatusSuccess, StatusFailure, StatusError)
			if !withApp {
				if r.Status != StatusError || !strings.Contains(r.Reason, "checkout") {
					t.Errorf("without credentials: %s %q, want a checkout error", r.Status, r.Reason)
				}
				return
			}
			if r.Status != StatusSuccess || r.DeployState != DeployDone {
				t.Fatalf("run: %s %q, deploy %s %q\n%s", r.Status, r.Reason, r.DeployState, r.DeployNote, ts.runLog(id))
			}
			env := ts.read("env-" + sha)
			if strings.Contains(env, "GIT_CONFIG") || strings.Contains(env, "ghs_") || strings.Contains(strings.ToLower(env), "authorization") {
				t.Errorf("the build's environment holds the git credential:\n%s", env)
			}
			if log := ts.runLog(id); strings.Contains(log, "ghs_") || strings.Contains(log, "Basic ") {
				t.Errorf("the run's log shows the credential:\n%s", log)
			}
		})
	}
}
