package history

import (
	"path/filepath"
	"testing"

	"github.com/mc-build/mc/cas"
)

// newDB opens a fresh database (as cas's tests do).
func newDB(t *testing.T) *cas.DB {
	t.Helper()
	db, err := cas.OpenDB(filepath.Join(t.TempDir(), "db", "mc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
