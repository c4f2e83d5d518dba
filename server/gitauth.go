package server

import (
	"context"
	"encoding/base64"
	"fmt"
)

// gitAuthEnv is the environment that lets git fetch r's repositories from
// GitHub with the server's credential (an installation token of the App,
// or the token): an Authorization header scoped by git's http.<url>
// configuration to r's clone URLs on the GitHub the server reports to, and
// to nothing else. It is given to the server's git commands only, never to
// a build. No credential, or none to be had (logged): nil, and git fetches
// without (public repositories).
func (s *Server) gitAuthEnv(ctx context.Context, r *Run) []string {
	if s.gh == nil || r == nil || r.Repo == "" {
		return nil
	}
	var urls []string
	for _, u := range []string{r.CloneURL, r.BaseURL} {
		if u != "" && s.gh.api.SameHost(u) {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	tok, err := s.gh.api.RepoToken(ctx, r.Repo)
	if err != nil {
		s.logf("run %d: git fetches without a GitHub credential: %v", r.ID, err)
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok))
	env := []string{fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(urls))}
	for i, u := range urls {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=http.%s.extraheader", i, u),
			fmt.Sprintf("GIT_CONFIG_VALUE_%d=Authorization: Basic %s", i, basic))
	}
	return env
}
