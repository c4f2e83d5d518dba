package cas

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// usedOf returns the used column of key (0: never touched).
func usedOf(t *testing.T, db *DB, key Digest) int64 {
	t.Helper()
	var used int64
	if err := db.SQL().QueryRow("SELECT used FROM actions WHERE key = ?", key[:]).Scan(&used); err != nil {
		t.Fatal(err)
	}
	return used
}

func TestTouchActionsHourRule(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	created := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	key := FromBytes([]byte("touched"))
	r := sampleResult()
	r.Created = created
	if err := db.PutAction(ctx, key, r); err != nil {
		t.Fatal(err)
	}
	// Each step touches at `at` and expects used afterwards; the steps run
	// in order on the same row.
	steps := []struct {
		name string
		at   time.Duration // after created
		want time.Duration // used, after created; -1: never touched
	}{
		{"within the hour of creation", 30 * time.Minute, -1},
		{"just under an hour after creation", time.Hour - time.Nanosecond, -1},
		{"over an hour after creation", 2 * time.Hour, 2 * time.Hour},
		{"within the hour of the last use", 2*time.Hour + 59*time.Minute, 2 * time.Hour},
		{"over an hour after the last use", 3*time.Hour + time.Second, 3*time.Hour + time.Second},
		{"earlier than the last use", time.Hour, 3*time.Hour + time.Second},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := db.TouchActions(ctx, []Digest{key}, created.Add(st.at)); err != nil {
				t.Fatal(err)
			}
			want := int64(0)
			if st.want >= 0 {
				want = created.Add(st.want).UnixNano()
			}
			if got := usedOf(t, db, key); got != want {
				t.Errorf("used = %v, want %v", time.Unix(0, got).UTC(), time.Unix(0, want).UTC())
			}
		})
	}
	// Recording the result again keeps its last use.
	if err := db.PutAction(ctx, key, r); err != nil {
		t.Fatal(err)
	}
	if got := usedOf(t, db, key); got != created.Add(3*time.Hour+time.Second).UnixNano() {
		t.Errorf("used after re-recording = %v", time.Unix(0, got).UTC())
	}
}

func TestTouchActionsMany(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	created := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	const n = 2*touchBatch + 7 // several query batches
	var recs []Recorded
	var keys []Digest
	for i := range n {
		k := FromBytes([]byte(fmt.Sprint("many ", i)))
		r := sampleResult()
		r.Created = created
		if i%2 == 1 {
			r.Created = created.Add(90 * time.Minute) // fresh at the touch time
		}
		recs = append(recs, Recorded{Key: k, Result: r})
		keys = append(keys, k)
	}
	if err := db.RecordActions(ctx, "", recs); err != nil {
		t.Fatal(err)
	}
	// Keys without a result are ignored.
	all := append(keys, FromBytes([]byte("missing")))
	now := created.Add(2 * time.Hour)
	if err := db.TouchActions(ctx, all, now); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		want := now.UnixNano()
		if i%2 == 1 {
			want = 0
		}
		if got := usedOf(t, db, k); got != want {
			t.Fatalf("key %d: used = %d, want %d", i, got, want)
		}
	}
	if err := db.TouchActions(ctx, nil, now); err != nil {
		t.Errorf("touching nothing: %v", err)
	}
}

// TestMigrateAddsUsed opens a database made by an mc from before the
// `mc cache` migration: its results get used = 0 and its runs no counts.
func TestMigrateAddsUsed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mc.db")
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	old := migrations()[:3]
	for _, m := range old {
		if _, err := raw.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	key := FromBytes([]byte("old result"))
	b, err := encodeResult(sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		"PRAGMA user_version = 3",
		"INSERT INTO runs (scope, started, command) VALUES ('/ws', 1, 'build //...')",
	}
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec("INSERT INTO actions (key, label, result, created) VALUES (?, ?, ?, ?)", key[:], "//svc/api:build", b, 5); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db := openDBAt(t, path)
	if got := usedOf(t, db, key); got != 0 {
		t.Errorf("used of an old result = %d, want 0", got)
	}
	// No counts: package history reads the run as one without exact counts.
	var built sql.NullInt64
	if err := db.SQL().QueryRowContext(ctx, "SELECT built FROM runs").Scan(&built); err != nil || built.Valid {
		t.Errorf("old run's built count = %+v, %v; want NULL", built, err)
	}
	if err := db.TouchActions(ctx, []Digest{key}, time.Unix(0, 5).Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := usedOf(t, db, key); got != time.Unix(0, 5).Add(2*time.Hour).UnixNano() {
		t.Errorf("used after touching = %d", got)
	}
}
