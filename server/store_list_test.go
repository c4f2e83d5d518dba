package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/event"
)

// A database written by a server before the runs list's migration (schema
// 2) opens: its runs read with empty message and author, the new columns
// take values, and user_version counts every step.
func TestStoreOpensOldSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	old := storeMigrations()[:2]
	for _, step := range old {
		if _, err := db.Exec(step); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("PRAGMA user_version = 2"); err != nil {
		t.Fatal(err)
	}
	// A run as the old server wrote it (its own column list).
	if _, err := db.Exec(`INSERT INTO runs (trigger, repo, commit_sha, branch, status, created, started, finished, built, cached)
		VALUES ('push', 'acme/old', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'main', 'success', ?, ?, ?, 1, 3)`,
		time.Now().Add(-time.Hour).UnixNano(), time.Now().Add(-time.Hour).UnixNano(), time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st, err := openStore(path)
	if err != nil {
		t.Fatalf("opening a schema-2 database: %v", err)
	}
	defer st.close()
	var v int
	if err := st.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(storeMigrations()) {
		t.Fatalf("user_version %d (%v), want %d", v, err, len(storeMigrations()))
	}
	r, err := st.getRun(context.Background(), 1)
	if err != nil || r == nil {
		t.Fatalf("the old run: %v %v", r, err)
	}
	if r.Repo != "acme/old" || r.Status != StatusSuccess || r.Message != "" || r.Author != "" || r.RerunOf != 0 || r.CacheHitPercent() != 75 {
		t.Errorf("old run read as %+v", r)
	}
	n := &Run{Trigger: TriggerPush, Repo: "acme/old", Commit: "b", Status: StatusQueued, Created: time.Now(),
		Message: "fix the build", Author: "Ada", PRTitle: "", RerunOf: 1}
	if err := st.createRun(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got, _ := st.getRun(context.Background(), n.ID)
	if got.Message != "fix the build" || got.Author != "Ada" || got.RerunOf != 1 {
		t.Errorf("new run read as %+v", got)
	}
	// Opening again applies nothing twice.
	st.close()
	if st, err = openStore(path); err != nil {
		t.Fatalf("reopening: %v", err)
	}
}

// seedRuns stores n ended runs, oldest first, run i created (n-i)*7
// minutes before now: repository i%3 of acme/mono, acme/web, acme/tools;
// branch (i/2)%4 of main, feature-x, fix-y, docs; status i%4 of success,
// failure, cancelled, error; i%10 == 3 a pull request (number 100+i,
// titled "Add feature i"), 5 a rerun of the run before, 7 a CLI report
// (no repository). It returns their ids.
func seedRuns(t *testing.T, st *store, n int, now time.Time) []int64 {
	t.Helper()
	ctx := context.Background()
	repos := []string{"acme/mono", "acme/web", "acme/tools"}
	branches := []string{"main", "feature-x", "fix-y", "docs"}
	statuses := []string{StatusSuccess, StatusFailure, StatusCancelled, StatusError}
	var ids []int64
	for i := range n {
		created := now.Add(-time.Duration(n-i) * 7 * time.Minute)
		r := &Run{Trigger: TriggerPush, Repo: repos[i%3], Branch: branches[(i/2)%4], Commit: fmt.Sprintf("%040x", i+1),
			CloneURL: "file:///nonexistent.git", Status: StatusQueued, Created: created, Started: created.Add(time.Second),
			Message: fmt.Sprintf("change number %d", i), Author: fmt.Sprintf("dev%d", i%5)}
		switch i % 10 {
		case 3:
			r.Trigger, r.PR, r.PRTitle, r.Message = TriggerPullRequest, 100+i, fmt.Sprintf("Add feature %d", i), ""
		case 5:
			r.RerunOf = ids[len(ids)-1]
		case 7:
			r.Trigger, r.Repo, r.CloneURL = TriggerCLI, "", ""
		}
		if err := st.createRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := st.appendEvents(ctx, r.ID, []event.Event{
			{Type: event.Log, Time: created, Line: "a line of run " + fmt.Sprint(r.ID)},
			{Type: event.BuildFinished, Time: created, Summary: &event.Summary{Built: 1, Cached: 3}},
		}, false); err != nil {
			t.Fatal(err)
		}
		if err := st.finishRun(ctx, r.ID, statuses[i%4], "", created.Add(90*time.Second)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// Keyset pages cover every run once, in order, both ways, with the
// filters; a bad filter is an error.
func TestRunsPages(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	ctx := context.Background()
	ids := seedRuns(t, st, 123, time.Now())
	walk := func(f runFilter) []int64 {
		var seen []int64
		f.Limit = 20
		for pages := 0; ; pages++ {
			p, err := st.listRunsPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Runs {
				if f.Repo != "" && r.Repo != f.Repo || f.Status != "" && r.Status != f.Status || f.Branch != "" && r.Branch != f.Branch {
					t.Fatalf("filter %+v listed run %d (%s %s %s)", f, r.ID, r.Repo, r.Branch, r.Status)
				}
				seen = append(seen, r.ID)
			}
			if pages > 0 != p.Newer {
				t.Fatalf("page %d: newer = %v", pages, p.Newer)
			}
			if !p.Older {
				return seen
			}
			f.Before = p.Runs[len(p.Runs)-1].ID
		}
	}
	all := walk(runFilter{})
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(all, want) {
		t.Fatalf("pages listed %d runs %v…, want %d newest first", len(all), all[:min(5, len(all))], len(want))
	}
	mono := walk(runFilter{Repo: "acme/mono", Status: StatusSuccess})
	var wantMono []int64
	for _, id := range want {
		r, _ := st.getRun(ctx, id)
		if r.Repo == "acme/mono" && r.Status == StatusSuccess {
			wantMono = append(wantMono, id)
		}
	}
	if len(wantMono) == 0 || !slices.Equal(mono, wantMono) {
		t.Fatalf("repo+status pages: %v, want %v", mono, wantMono)
	}
	// Back from the second page with after=: the first page again.
	p1, _ := st.listRunsPage(ctx, runFilter{Limit: 20})
	p2, _ := st.listRunsPage(ctx, runFilter{Limit: 20, Before: p1.Runs[19].ID})
	back, _ := st.listRunsPage(ctx, runFilter{Limit: 20, After: p2.Runs[0].ID})
	if back.Runs[0].ID != p1.Runs[0].ID || back.Runs[19].ID != p1.Runs[19].ID || back.Newer || !back.Older {
		t.Errorf("newer from page 2: %d..%d newer=%v, want page 1 %d..%d", back.Runs[0].ID, back.Runs[19].ID, back.Newer, p1.Runs[0].ID, p1.Runs[19].ID)
	}
	for _, q := range []string{"status=nonsense", "before=x", "after=-1", "before=3&after=5"} {
		v, _ := url.ParseQuery(q)
		if _, err := parseRunFilter(v); err == nil {
			t.Errorf("filter %q accepted", q)
		}
	}
}

func TestAnnotateRun(t *testing.T) {
	r := &Run{}
	annotateRun(r, "push", []byte(`{"head_commit":{"message":"Fix the parser\n\nLong text","author":{"name":"Ada L","username":"ada"}},"sender":{"login":"bob"}}`))
	if r.Message != "Fix the parser" || r.Author != "Ada L" {
		t.Errorf("push: %q by %q", r.Message, r.Author)
	}
	r = &Run{}
	annotateRun(r, "pull_request", []byte(`{"pull_request":{"title":"Add a cache","user":{"login":"carol"}}}`))
	if r.PRTitle != "Add a cache" || r.Author != "carol" {
		t.Errorf("pull request: %q by %q", r.PRTitle, r.Author)
	}
}

// The community's webhook samples carry what the list shows: every push
// with a head commit gives its message's first line and an author, every
// pull request its title and its opener.
func TestAnnotateCommunitySamples(t *testing.T) {
	seen := 0
	for _, f := range []string{"api.github.com-push", "api.github.com-pull_request", "ghes-35-push", "ghes-35-pull_request"} {
		data, err := os.ReadFile(filepath.Join("testdata", "octokit-webhooks-examples", f+".json"))
		if err != nil {
			t.Fatalf("the vendored samples: %v", err)
		}
		var samples []json.RawMessage
		if err := json.Unmarshal(data, &samples); err != nil {
			t.Fatal(err)
		}
		for i, body := range samples {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			r := &Run{}
			if strings.HasSuffix(f, "-push") {
				annotateRun(r, "push", body)
				msg := str(m, "head_commit", "message")
				if msg == "" {
					continue // a deleted branch: no head commit
				}
				if r.Message == "" || !strings.HasPrefix(msg, r.Message) || strings.Contains(r.Message, "\n") || r.Author == "" {
					t.Errorf("%s #%d: message %q author %q from %q", f, i, r.Message, r.Author, msg)
				}
			} else {
				annotateRun(r, "pull_request", body)
				if r.PRTitle != str(m, "pull_request", "title") || r.PRTitle == "" || r.Author != str(m, "pull_request", "user", "login") {
					t.Errorf("%s #%d: title %q author %q", f, i, r.PRTitle, r.Author)
				}
			}
			seen++
		}
	}
	if seen < 30 {
		t.Errorf("only %d samples checked", seen)
	}
}
