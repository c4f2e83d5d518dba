package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A repository whose last run retention removed loses its mirror and
// worktree slots; a repository with a run left keeps them (a pull request's
// under its base repository), so does one a checkout is using, and
// directories that are not a repository's (a run's own work directory) are
// not touched. What a crash left aside goes.
func TestPruneRepos(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	st, err := openStore(filepath.Join(data, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	old := &Run{Trigger: TriggerPush, Repo: "acme/gone", Branch: "main", Commit: "a", CloneURL: "file:///gone.git",
		Status: StatusQueued, Created: now.Add(-10 * 24 * time.Hour)}
	pr := &Run{Trigger: TriggerPullRequest, Repo: "acme/kept", PR: 7, Commit: "b", CloneURL: "file:///fork.git",
		BaseURL: "file:///kept.git", BaseSHA: "c", Status: StatusQueued, Created: now.Add(-time.Hour)}
	for _, r := range []*Run{old, pr} {
		if err := st.createRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := st.finishRun(ctx, r.ID, StatusSuccess, "", r.Created.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	st.close()

	// repoDirs makes a repository's mirror and a slot, and returns them.
	repoDirs := func(url string) []string {
		h := urlHash(url)
		dirs := []string{filepath.Join(data, "git", h+".git"), filepath.Join(data, "work", h)}
		for _, f := range []string{filepath.Join(dirs[0], "HEAD"), filepath.Join(dirs[1], "trusted-0", "BUILD.mc")} {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dirs
	}
	gone, kept := repoDirs(old.CloneURL), repoDirs(pr.BaseURL)
	runDir := filepath.Join(data, "work", "999999")
	crashed := filepath.Join(data, "git", pruneAside+"0123456789abcdef-00")
	for _, d := range []string{runDir, crashed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	ts := startServer(t, data, nil, func(c *Config) {
		c.KeepAge = 5 * 24 * time.Hour
		c.PruneEvery = time.Hour // only the prune at start
	})
	// The prune renames a repository's directories aside, then removes
	// them and what a crash left aside: wait for the last of those.
	deadline := time.Now().Add(10 * time.Second)
	for exists(gone[0]) || exists(gone[1]) || exists(crashed) {
		if time.Now().After(deadline) {
			if exists(crashed) {
				t.Fatalf("%s, left aside by a crash, is still there", crashed)
			}
			t.Fatalf("the mirror and slots of a repository without runs are still there: %v", gone)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range append(kept, runDir) {
		if !exists(d) {
			t.Errorf("%s was removed: its repository still has a run, or it is no repository's", d)
		}
	}

	// A repository a checkout is using stays until the checkout ends.
	inUse := repoDirs("file:///busy.git")
	unuse := ts.s.useRepo(urlHash("file:///busy.git"))
	if err := ts.s.pruneRepos(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range inUse {
		if !exists(d) {
			t.Fatalf("%s was removed while a checkout used its repository", d)
		}
	}
	unuse()
	if err := ts.s.pruneRepos(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range inUse {
		if exists(d) {
			t.Errorf("%s is still there after the checkout ended", d)
		}
	}
}
