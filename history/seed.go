package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mc-build/mc/cas"
)

// SeedHistory gives scope, when it has no history yet, the latest entries
// of fromScope in from (db itself, or another tier's database): its first
// recorded run then compares every stage with fromScope's newest entry (a
// new branch with its default branch). The entries stay fromScope's; scope
// starts with their heads. A scope with history, or a fromScope without,
// is left alone.
func SeedHistory(ctx context.Context, db *cas.DB, scope string, from *cas.DB, fromScope string) error {
	var n int
	err := db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM history_scopes WHERE scope = ?", scope).Scan(&n)
	if err != nil {
		return fmt.Errorf("cas: seed history of %s: %w", scope, err)
	}
	if n > 0 {
		return nil
	}
	var set, heads []byte
	err = from.SQL().QueryRowContext(ctx, "SELECT stage_set, heads FROM history_scopes WHERE scope = ?", fromScope).Scan(&set, &heads)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cas: seed history of %s from %s: %w", scope, fromScope, err)
	}
	if _, err := decodeHeads(heads); err != nil {
		return nil // damaged: the scope starts empty
	}
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO history_scopes (scope, stage_set, heads) VALUES (?, ?, ?) ON CONFLICT (scope) DO NOTHING",
		scope, set, heads)
	if err != nil {
		return fmt.Errorf("cas: seed history of %s from %s: %w", scope, fromScope, err)
	}
	return nil
}
