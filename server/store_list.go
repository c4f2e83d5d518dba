package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// runsListMigration adds what the runs list shows besides the build: the
// commit's message and author (push payloads carry them), the pull
// request's title, and the run a rerun repeats; and the indexes its
// filters use. Columns with defaults: rows of older servers read as empty.
const runsListMigration = `ALTER TABLE runs ADD COLUMN message TEXT NOT NULL DEFAULT '';
		ALTER TABLE runs ADD COLUMN author TEXT NOT NULL DEFAULT '';
		ALTER TABLE runs ADD COLUMN pr_title TEXT NOT NULL DEFAULT '';
		ALTER TABLE runs ADD COLUMN rerun_of INTEGER NOT NULL DEFAULT 0;
		CREATE INDEX runs_repo ON runs (repo, id);
		CREATE INDEX runs_branch ON runs (branch, id);
		CREATE INDEX runs_created ON runs (created);`

// runFilter selects runs of the list: by repository, branch and status
// (empty: any), a page of Limit runs before (older than) or after (newer
// than) a run id.
type runFilter struct {
	Repo, Branch, Status string
	Before, After        int64
	Limit                int
}

// runStatuses are the values the status filter takes.
var runStatuses = []string{StatusQueued, StatusRunning, StatusSuccess, StatusFailure, StatusError, StatusCancelled, StatusInterrupted}

// listPage is one page of the list, newest first; Older and Newer say
// whether runs lie beyond it either way.
type listPage struct {
	Runs         []*Run
	Older, Newer bool
}

// listRunsPage pages through the runs by id (keyset pagination: a page
// stays the same while new runs arrive, and costs the same deep in the
// history as at its top).
func (st *store) listRunsPage(ctx context.Context, f runFilter) (*listPage, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"repo", f.Repo}, {"branch", f.Branch}, {"status", f.Status}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	page, pageArgs, order := where, args, "DESC"
	switch {
	case f.After > 0:
		page, pageArgs, order = append(slices.Clone(where), "id > ?"), append(slices.Clone(args), f.After), "ASC"
	case f.Before > 0:
		page, pageArgs = append(slices.Clone(where), "id < ?"), append(slices.Clone(args), f.Before)
	}
	q := "SELECT " + runColumns + " FROM runs"
	if len(page) > 0 {
		q += " WHERE " + strings.Join(page, " AND ")
	}
	rows, err := st.db.QueryContext(ctx, q+" ORDER BY id "+order+" LIMIT ?", append(pageArgs, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("server: list runs: %w", err)
	}
	defer rows.Close()
	p := &listPage{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("server: list runs: %w", err)
		}
		p.Runs = append(p.Runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("server: list runs: %w", err)
	}
	if f.After > 0 {
		slices.Reverse(p.Runs)
	}
	if len(p.Runs) == 0 {
		// Past either end: offer the way back.
		p.Newer, p.Older = f.Before > 0, f.After > 0
		return p, nil
	}
	if p.Newer, err = st.anyRun(ctx, where, args, "id > ?", p.Runs[0].ID); err != nil {
		return nil, err
	}
	if p.Older, err = st.anyRun(ctx, where, args, "id < ?", p.Runs[len(p.Runs)-1].ID); err != nil {
		return nil, err
	}
	return p, nil
}

// anyRun reports whether a run matches the filter's conditions and cond.
func (st *store) anyRun(ctx context.Context, where []string, args []any, cond string, id int64) (bool, error) {
	q := "SELECT EXISTS (SELECT 1 FROM runs WHERE " + strings.Join(append(slices.Clone(where), cond), " AND ") + ")"
	var ok bool
	if err := st.db.QueryRowContext(ctx, q, append(slices.Clone(args), id)...).Scan(&ok); err != nil {
		return false, fmt.Errorf("server: list runs: %w", err)
	}
	return ok, nil
}

// filterValues lists the repositories and branches seen (newest runs
// first, at most limit each): the choices of the list's filters.
func (st *store) filterValues(ctx context.Context, col string, limit int) ([]string, error) {
	if col != "repo" && col != "branch" {
		return nil, fmt.Errorf("server: no filter %q", col)
	}
	rows, err := st.db.QueryContext(ctx, "SELECT "+col+" FROM runs WHERE "+col+" != '' GROUP BY "+col+
		" ORDER BY MAX(id) DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("server: list %s: %w", col, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// prunableRuns lists the ended runs that retention removes: created
// before olderThan (zero: none by age), or beyond the newest keep runs
// (0: none by count). Queued and running runs are never listed.
func (st *store) prunableRuns(ctx context.Context, olderThan time.Time, keep int) ([]int64, error) {
	var conds []string
	var args []any
	if !olderThan.IsZero() {
		conds, args = append(conds, "created < ?"), append(args, nanos(olderThan))
	}
	if keep > 0 {
		conds, args = append(conds, "id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?)"), append(args, keep)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	return st.runIDs(ctx, "runs to prune", "SELECT id FROM runs WHERE status NOT IN ('queued','running') AND ("+
		strings.Join(conds, " OR ")+") ORDER BY id", args...)
}

// deleteRun removes an ended run with its stages, events and log lines.
// It deletes nothing (false) when the run is queued or running: the
// status is checked in the same transaction.
func (st *store) deleteRun(ctx context.Context, id int64) (bool, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("server: delete run %d: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM runs WHERE id = ? AND status NOT IN ('queued','running')", id)
	if err != nil {
		return false, fmt.Errorf("server: delete run %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	for _, q := range []string{"DELETE FROM stages WHERE run = ?", "DELETE FROM events WHERE run = ?"} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return false, fmt.Errorf("server: delete run %d: %w", id, err)
		}
	}
	return true, tx.Commit()
}

// repoURLs is the repository of every run in the database (the fields
// repoURL reads), each once.
func (st *store) repoURLs(ctx context.Context) ([]*Run, error) {
	rows, err := st.db.QueryContext(ctx, "SELECT DISTINCT trigger, clone_url, base_url FROM runs")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r := &Run{}
		if err := rows.Scan(&r.Trigger, &r.CloneURL, &r.BaseURL); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
