package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/mc-build/mc/errkind"
)

// mc serve's sign-in settings: each inconsistent combination is refused as
// a usage error (exit 2) naming what is missing; consistent ones pass.
func TestCheckSignIn(t *testing.T) {
	cases := []struct {
		name         string
		o            OAuthConfig
		private, tok bool
		want         string // "" = accepted
	}{
		{"nothing", OAuthConfig{}, false, false, ""},
		{"private with token", OAuthConfig{}, true, true, ""},
		{"oauth with users", OAuthConfig{ClientID: "id", ClientSecret: "s", AllowedUsers: []string{"a"}}, true, false, ""},
		{"oauth with orgs", OAuthConfig{ClientID: "id", ClientSecret: "s", AllowedOrgs: []string{"o"}}, false, false, ""},
		{"allow list without oauth", OAuthConfig{AllowedUsers: []string{"a"}}, false, false, "need GitHub sign-in"},
		{"oauth without secret", OAuthConfig{ClientID: "id", AllowedUsers: []string{"a"}}, false, false, "needs MC_GITHUB_OAUTH_CLIENT_SECRET"},
		{"oauth without allow list", OAuthConfig{ClientID: "id", ClientSecret: "s"}, false, false, "any GitHub account"},
		{"private without a way in", OAuthConfig{}, true, false, "--private needs a way to sign in"},
	}
	for _, c := range cases {
		err := c.o.CheckSignIn(c.private, c.tok)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want accepted", c.name, err)
			}
			continue
		}
		var ue *errkind.UsageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error with %q", c.name, err, c.want)
		}
	}
}

func TestDefaultDataDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if d, err := DefaultDataDir(env(map[string]string{"XDG_DATA_HOME": "/x", "HOME": "/h"})); err != nil || d != "/x/mc/serve" {
		t.Errorf("XDG_DATA_HOME: %q, %v", d, err)
	}
	if d, err := DefaultDataDir(env(map[string]string{"HOME": "/h"})); err != nil || d != "/h/.local/share/mc/serve" {
		t.Errorf("HOME: %q, %v", d, err)
	}
	var ue *errkind.UsageError
	if _, err := DefaultDataDir(env(nil)); !errors.As(err, &ue) {
		t.Errorf("no HOME: %v, want a usage error", err)
	}
}
