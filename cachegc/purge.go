package cachegc

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/mc-build/mc/cas"
)

// KnownLabels returns, sorted, every label that has a result in the action
// cache or an entry in the run history (of any workspace).
func KnownLabels(ctx context.Context, db *cas.DB) ([]string, error) {
	rows, err := db.SQL().QueryContext(ctx, "SELECT label FROM actions UNION SELECT label FROM stage_runs ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("cas: known labels: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, fmt.Errorf("cas: known labels: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cas: known labels: %w", err)
	}
	return out, nil
}

// KeysOf returns, sorted, the action keys known for label in any workspace
// sharing this database: those of its cached results and those its run
// history names (whose results may be gone locally but not from a shared
// cache). hasResult says which of them have a local result.
func KeysOf(ctx context.Context, db *cas.DB, label string) (keys []cas.Digest, hasResult map[cas.Digest]bool, err error) {
	rows, err := db.SQL().QueryContext(ctx, `SELECT key, 1 FROM actions WHERE label = ?
		UNION SELECT key, 0 FROM stage_runs WHERE label = ?`, label, label)
	if err != nil {
		return nil, nil, fmt.Errorf("cas: keys of %s: %w", label, err)
	}
	defer rows.Close()
	hasResult = map[cas.Digest]bool{}
	seen := map[cas.Digest]bool{}
	for rows.Next() {
		var (
			k     []byte
			local bool
			d     cas.Digest
		)
		if err := rows.Scan(&k, &local); err != nil {
			return nil, nil, fmt.Errorf("cas: keys of %s: %w", label, err)
		}
		if len(k) != len(d) {
			continue
		}
		copy(d[:], k)
		if local {
			hasResult[d] = true
		}
		if !seen[d] {
			seen[d] = true
			keys = append(keys, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cas: keys of %s: %w", label, err)
	}
	slices.SortFunc(keys, compareDigests)
	return keys, hasResult, nil
}

// DeleteActions forgets the results of keys, and the latest-action rows
// naming them, in one transaction; it returns how many results it deleted.
// Missing keys are ignored.
func DeleteActions(ctx context.Context, db *cas.DB, keys []cas.Digest) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("cas: delete actions: %w", err)
	}
	defer tx.Rollback()
	delAction, err := tx.PrepareContext(ctx, "DELETE FROM actions WHERE key = ?")
	if err != nil {
		return 0, fmt.Errorf("cas: delete actions: %w", err)
	}
	defer delAction.Close()
	n := 0
	for _, k := range keys {
		res, err := delAction.ExecContext(ctx, k[:])
		if err != nil {
			return 0, fmt.Errorf("cas: delete action %s: %w", k.Short(), err)
		}
		if c, err := res.RowsAffected(); err == nil {
			n += int(c)
		}
	}
	// One pass over latest (keyed by label, not by key) for all of them.
	if _, err := tx.ExecContext(ctx, "DELETE FROM latest WHERE key NOT IN (SELECT key FROM actions)"); err != nil {
		return 0, fmt.Errorf("cas: delete actions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("cas: delete actions: %w", err)
	}
	return n, nil
}

func compareDigests(a, b cas.Digest) int { return bytes.Compare(a[:], b[:]) }
