package cas

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// touchGranularity is how stale a result's last-use time must be before
// TouchActions rewrites it: an hour is fine enough for least-recently-used
// trimming, and a null build repeated all day writes nothing.
const touchGranularity = time.Hour

// TouchGranularity is touchGranularity, for callers that skip TouchActions
// for results they know were used more recently.
const TouchGranularity = touchGranularity

// touchBatch is how many keys one TouchActions query looks up.
const touchBatch = 500

// TouchActions records that the results of keys were used (cache hits) at
// now, for `mc cache gc`, which trims least recently used results first. A
// result whose last use (or, never used, its creation) is within the hour
// before now is left as it is: a null build reads but writes nothing. The
// stale rows are found with reads and updated in one write transaction.
// Missing keys are ignored.
func (db *DB) TouchActions(ctx context.Context, keys []Digest, now time.Time) error {
	cutoff := now.Add(-touchGranularity).UnixNano()
	var stale [][]byte
	for len(keys) > 0 {
		n := min(len(keys), touchBatch)
		args := make([]any, 0, n+1)
		args = append(args, cutoff)
		for _, k := range keys[:n] {
			args = append(args, k[:])
		}
		keys = keys[n:]
		rows, err := db.db.QueryContext(ctx, "SELECT key FROM actions WHERE max(used, created) < ? AND key IN (?"+
			strings.Repeat(", ?", n-1)+")", args...)
		if err != nil {
			return fmt.Errorf("cas: touch actions: %w", err)
		}
		for rows.Next() {
			var k []byte
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return fmt.Errorf("cas: touch actions: %w", err)
			}
			stale = append(stale, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("cas: touch actions: %w", err)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cas: touch actions: %w", err)
	}
	defer tx.Rollback()
	// The condition again: another process may have touched them meanwhile.
	st, err := tx.PrepareContext(ctx, "UPDATE actions SET used = ? WHERE key = ? AND max(used, created) < ?")
	if err != nil {
		return fmt.Errorf("cas: touch actions: %w", err)
	}
	defer st.Close()
	for _, k := range stale {
		if _, err := st.ExecContext(ctx, now.UnixNano(), k, cutoff); err != nil {
			return fmt.Errorf("cas: touch actions: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cas: touch actions: %w", err)
	}
	return nil
}
