package history

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
)

// RunCounts are how many stages of a run were built, were cache hits and
// failed.
type RunCounts struct {
	Built  int `json:"built"`
	Cached int `json:"cached"`
	Failed int `json:"failed"`
}

// Total is the number of stages counted.
func (c RunCounts) Total() int { return c.Built + c.Cached + c.Failed }

// HitRate is the share of the counted stages that were cache hits; ok is
// false when no stage was counted.
func (c RunCounts) HitRate() (rate float64, ok bool) {
	if c.Total() == 0 {
		return 0, false
	}
	return float64(c.Cached) / float64(c.Total()), true
}

// RunStats is one recorded run with its stage counts.
type RunStats struct {
	ID      int64
	Started time.Time
	Command string
	RunCounts
	// Exact is true when the counts were recorded with SetRunCounts. Runs
	// recorded without them are counted from their history entries: Built
	// and Failed are right (every built or failed stage gets an entry while
	// it is among its label's last entries), but Cached counts only hits of
	// a key other than the label's previous one, so a null build counts
	// nothing at all.
	Exact bool
}

// SetRunCounts records the stage counts of run (a RecordRun id), which
// RecentRuns reports as exact.
func SetRunCounts(ctx context.Context, db *cas.DB, run int64, c RunCounts) error {
	res, err := db.SQL().ExecContext(ctx, "UPDATE runs SET built = ?, cached = ?, failed = ? WHERE id = ?",
		c.Built, c.Cached, c.Failed, run)
	if err != nil {
		return fmt.Errorf("cas: run %d counts: %w", run, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("cas: run %d counts: no such run", run)
	}
	return nil
}

// RecentRuns returns up to limit of the latest runs of scope, newest first,
// with their stage counts.
func RecentRuns(ctx context.Context, db *cas.DB, scope string, limit int) ([]RunStats, error) {
	rows, err := db.SQL().QueryContext(ctx, `SELECT id, started, command, built, cached, failed
		FROM runs WHERE scope = ? ORDER BY id DESC LIMIT ?`, scope, limit)
	if err != nil {
		return nil, fmt.Errorf("cas: recent runs: %w", err)
	}
	var out []RunStats
	for rows.Next() {
		var (
			r                     RunStats
			started               int64
			built, cached, failed sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &started, &r.Command, &built, &cached, &failed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cas: recent runs: %w", err)
		}
		r.Started = time.Unix(0, started)
		if built.Valid && cached.Valid && failed.Valid {
			r.Exact = true
			r.RunCounts = RunCounts{Built: int(built.Int64), Cached: int(cached.Int64), Failed: int(failed.Int64)}
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cas: recent runs: %w", err)
	}
	if err := countEntries(ctx, db, scope, out); err != nil {
		return nil, fmt.Errorf("cas: recent runs: %w", err)
	}
	return out, nil
}

// countEntries fills in the counts of the runs without recorded ones from
// their history entries, in one query.
func countEntries(ctx context.Context, db *cas.DB, scope string, runs []RunStats) error {
	idx := map[int64]*RunStats{}
	args := []any{scope}
	for i := range runs {
		if !runs[i].Exact {
			idx[runs[i].ID] = &runs[i]
			args = append(args, runs[i].ID)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	rows, err := db.SQL().QueryContext(ctx, "SELECT run, status, count(*) FROM stage_runs WHERE scope = ? AND run IN (?"+
		strings.Repeat(", ?", len(idx)-1)+") GROUP BY run, status", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			run    int64
			status StageStatus
			n      int
		)
		if err := rows.Scan(&run, &status, &n); err != nil {
			return err
		}
		r := idx[run]
		switch status {
		case StageBuilt:
			r.Built += n
		case StageCached:
			r.Cached += n
		case StageFailed:
			r.Failed += n
		}
	}
	return rows.Err()
}
