package sqlschema

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	steps := []string{"CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y TEXT"}
	if err := Migrate(ctx, db, steps[:1]); err != nil {
		t.Fatal(err)
	}
	if v, err := Version(ctx, db); err != nil || v != 1 {
		t.Fatalf("version %d, %v; want 1", v, err)
	}
	// The next program's steps: only the new one runs (the first again would
	// fail: the table exists).
	if err := Migrate(ctx, db, steps); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, steps); err != nil {
		t.Fatalf("up to date: %v", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO a (x, y) VALUES (1, 'z')"); err != nil {
		t.Fatalf("the schema after both steps: %v", err)
	}
	// An older program refuses the newer schema.
	if err := Migrate(ctx, db, steps[:1]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("older steps: %v, want refused as newer", err)
	}
}

// A failing step leaves the database as it was: neither the steps before
// it in the same call nor the version are kept.
func TestMigrateFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	steps := []string{"CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER)", "NOT SQL"}
	err := Migrate(ctx, db, steps)
	if err == nil || !strings.Contains(err.Error(), "migration 3") {
		t.Fatalf("Migrate: %v, want migration 3 failing", err)
	}
	if v, err := Version(ctx, db); err != nil || v != 0 {
		t.Fatalf("version after the failure %d, %v; want 0", v, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables after the failure (%v), want 0", n, err)
	}
	// Control: without the bad step the same tables are made, so the count
	// above could see them.
	if err := Migrate(ctx, db, steps[:2]); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d tables (%v), want 2", n, err)
	}
}
