package exec

import (
	"os"
	"path/filepath"
	"testing"
)

// searchableTempDir is t.TempDir made searchable by others: mc as root
// runs stages as an unprivileged host id, which bubblewrap binds the
// sandbox's directories as (see reachable), and t.TempDir is 0700.
func searchableTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
