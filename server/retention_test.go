package server

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a clock the test moves forward.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Retention by age and by count removes ended runs with their stages,
// events (the logs) and work directories, at start and periodically, and
// never a running run however old; recent runs stay.
func TestRetention(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	clock := &testClock{}
	// Runs of a previous server: 30 old ones (7.7 to 4.1 days old) and 10
	// recent ones (minutes), each with a log line and a work directory (as
	// servers before incremental checkouts left them with --keep-workspaces).
	st, err := openStore(filepath.Join(data, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	ids := seedRuns(t, st, 40, time.Now())
	ctx := context.Background()
	for i, id := range ids {
		created := time.Now().Add(-age(i)).UnixNano()
		if _, err := st.db.Exec("UPDATE runs SET created = ? WHERE id = ?", created, id); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(data, "work", strconv.FormatInt(id, 10))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "BUILD.mc"), []byte("# checkout\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st.close()

	repo := newTestRepo(t)
	ts := startServer(t, data, nil, gated, func(c *Config) {
		c.KeepAge = 5 * 24 * time.Hour
		c.Now = clock.now
		c.PruneEvery = 100 * time.Millisecond
	})
	// At start: the runs older than 5 days go, with their logs and work
	// directories; the others stay.
	gone := func(id int64) bool {
		r, err := ts.s.st.getRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r == nil
	}
	waitFor(t, "pruning at start", func() bool { return gone(ids[0]) })
	for i, id := range ids {
		old := age(i) > 5*24*time.Hour
		dir := ts.s.workDir(id)
		// The row goes first, then the directory.
		waitFor(t, "pruning run "+strconv.FormatInt(id, 10), func() bool { return gone(id) == old && exists(dir) != old })
		var events int
		if err := ts.s.st.db.QueryRow("SELECT COUNT(*) FROM events WHERE run = ?", id).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if old && events != 0 {
			t.Errorf("run %d pruned, but %d events (its log) remain", id, events)
		} else if !old && events == 0 {
			t.Errorf("recent run %d kept, but its events (log) are gone", id)
		}
	}

	// A run that is running when it becomes old stays; ended runs that
	// became old meanwhile go at the next periodic pass.
	sha := repo.commit("long build")
	running := ts.accept("push", "ret-1", pushPayloadFor(repo, "main", sha))
	ts.waitFile("started-" + sha)
	clock.advance(10 * 24 * time.Hour)
	waitFor(t, "periodic pruning of the rest", func() bool { return gone(ids[39]) })
	time.Sleep(300 * time.Millisecond) // a few more passes
	if gone(running) || ts.run(running).Status != StatusRunning {
		t.Fatalf("run %d was pruned while running", running)
	}
	ts.touch("gate-" + sha)
	// Once ended it is old: the next pass may prune it before its status
	// could be read, so only its going is waited for.
	waitFor(t, "pruning of the finished run", func() bool { return gone(running) })
}

// Retention by count keeps the newest runs.
func TestRetentionKeepRuns(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ts := startServer(t, data, nil, func(c *Config) { c.KeepRuns = 15 })
	ids := seedRuns(t, ts.s.st, 40, time.Now())
	removed, err := ts.s.prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, ids[:25]) {
		t.Fatalf("removed %v, want the oldest 25 %v", removed, ids[:25])
	}
	var n int
	ts.s.st.db.QueryRow("SELECT COUNT(*) FROM runs").Scan(&n)
	if n != 15 {
		t.Fatalf("%d runs left, want 15", n)
	}
}

// age is how old TestRetention's run i is: the first 22 more than 5
// days, the next 8 between 4 and 5 days, the last 10 minutes.
func age(i int) time.Duration {
	if i < 30 {
		return 4*24*time.Hour + time.Duration(30-i)*3*time.Hour - 90*time.Minute
	}
	return time.Duration(40-i) * 7 * time.Minute
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
