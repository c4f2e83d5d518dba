package server

import (
	"context"
	"fmt"
)

// runLogLines is how many lines run id's own log (label "") has had.
func (st *store) runLogLines(ctx context.Context, id int64) (int, error) {
	var n int
	if err := st.db.QueryRowContext(ctx, "SELECT log_lines FROM runs WHERE id = ?", id).Scan(&n); err != nil {
		return 0, fmt.Errorf("server: run %d: %w", id, err)
	}
	return n, nil
}
