package cachegc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/history"
)

// Test helpers, as cas's own tests have them.

func openDBAt(t *testing.T, path string) *cas.DB {
	t.Helper()
	db, err := cas.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newStore(t *testing.T) *cas.Store {
	t.Helper()
	s, err := cas.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path string, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

func mustPut(t *testing.T, s *cas.Store, content string) cas.Digest {
	t.Helper()
	d, err := s.PutBytes([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newDB(t *testing.T) *cas.DB {
	t.Helper()
	return openDBAt(t, filepath.Join(t.TempDir(), "db", "mc.db"))
}

func sampleResult() *cas.ActionResult {
	return &cas.ActionResult{
		Label: "//svc/api:build",
		Outputs: []cas.Output{
			{Path: "svc/api/out/api", Digest: cas.FromBytes([]byte("bin")), Size: 3, Exec: true},
			{Path: "svc/api/out/assets", Digest: cas.FromBytes([]byte("tree")), Size: 0, IsDir: true},
		},
		Log:      cas.FromBytes([]byte("log")),
		ExitCode: 0,
		Duration: 1500 * time.Millisecond,
		Created:  time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
}

// stageRec is a run history record of label whose key parts are cmd.
func stageRec(label, cmd string, st history.StageStatus) history.StageRecord {
	b, _ := json.Marshal(struct {
		Cmd string `json:"cmd"`
	}{cmd})
	r := history.StageRecord{Label: label, Key: cas.FromBytes(b), Parts: func() ([]byte, error) { return b, nil }, Status: st}
	if st == history.StageBuilt {
		r.Outputs = []cas.Output{{Path: "out/" + cmd, Digest: cas.FromBytes([]byte(cmd)), Size: int64(len(cmd))}}
	}
	return r
}
