// Package sqlschema brings a SQLite database's schema up to date: a list of
// migrations, the count applied kept in PRAGMA user_version.
package sqlschema

import (
	"context"
	"database/sql"
	"fmt"
)

// Migrate applies the steps not yet applied (those after user_version) and
// records their count, in one transaction: concurrent openers neither race
// nor see half a schema, and a failing step leaves the database as it was.
// A database with more steps than these was written by a newer program and
// is refused.
func Migrate(ctx context.Context, db *sql.DB, steps []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	v, err := version(ctx, tx)
	if err != nil {
		return err
	}
	if v > len(steps) {
		return fmt.Errorf("schema version %d is newer than this mc knows (%d)", v, len(steps))
	}
	if v == len(steps) {
		return nil
	}
	for i := v; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(steps))); err != nil {
		return err
	}
	return tx.Commit()
}

// Version is the number of steps applied to db.
func Version(ctx context.Context, db *sql.DB) (int, error) {
	return version(ctx, db)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func version(ctx context.Context, q queryer) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}
