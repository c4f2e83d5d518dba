package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/wire"
)

func newDB(t *testing.T) *DB {
	t.Helper()
	return openDBAt(t, filepath.Join(t.TempDir(), "db", "mc.db"))
}

func openDBAt(t *testing.T, path string) *DB {
	t.Helper()
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sampleResult() *ActionResult {
	return &ActionResult{
		Label: "//svc/api:build",
		Outputs: []Output{
			{Path: "svc/api/out/api", Digest: FromBytes([]byte("bin")), Size: 3, Exec: true},
			{Path: "svc/api/out/assets", Digest: FromBytes([]byte("tree")), Size: 0, IsDir: true},
		},
		Log:      FromBytes([]byte("log")),
		ExitCode: 0,
		Duration: 1500 * time.Millisecond,
		Created:  time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
}

func TestOpenDBSettings(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	// Every pooled connection must carry the settings, so check on a few at once.
	conns := make([]interface{ Close() error }, 0, 3)
	for range 3 {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		checks := []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"synchronous", "1"}, // NORMAL
			{"foreign_keys", "1"},
			{"busy_timeout", "30000"},
			{"user_version", strconv.Itoa(len(migrations()))},
		}
		for _, ch := range checks {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+ch.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != ch.want {
				t.Errorf("PRAGMA %s = %s, want %s", ch.pragma, got, ch.want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestOpenDBPathWithSpecialCharacters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "we?ird #dir %20", "mc.db")
	db := openDBAt(t, p)
	if err := db.PutKV(context.Background(), "n", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("database not created at %s: %v", p, err)
	}
}

func TestOpenDBRejectsNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mc.db")
	db := openDBAt(t, p)
	if _, err := db.SQL().Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db2, err := OpenDB(p); err == nil {
		db2.Close()
		t.Fatal("opened a database from the future")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v", err)
	}
}

func TestActionRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mc.db")
	db := openDBAt(t, p)
	key := FromBytes([]byte("action"))

	got, err := db.GetAction(ctx, key)
	if err != nil || got != nil {
		t.Fatalf("miss = %+v, %v; want nil, nil", got, err)
	}
	want := sampleResult()
	if err := db.PutAction(ctx, key, want); err != nil {
		t.Fatal(err)
	}
	got, err = db.GetAction(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("Created = %v, want %v", got.Created, want.Created)
	}
	got.Created = want.Created
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	// Survives reopening.
	db.Close()
	db = openDBAt(t, p)
	if got, err := db.GetAction(ctx, key); err != nil || got == nil || got.Label != want.Label {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}

	// Put replaces.
	repl := sampleResult()
	repl.Outputs = repl.Outputs[:1]
	if err := db.PutAction(ctx, key, repl); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetAction(ctx, key); len(got.Outputs) != 1 {
		t.Errorf("replacement not stored: %+v", got)
	}

	// Delete, and deleting again is fine.
	for range 2 {
		if err := db.DeleteAction(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.GetAction(ctx, key); err != nil || got != nil {
		t.Errorf("after delete: %+v, %v", got, err)
	}
}

func TestPutActionRejects(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	bad := func(mut func(r *ActionResult)) *ActionResult {
		r := sampleResult()
		mut(r)
		return r
	}
	tests := []struct {
		name string
		r    *ActionResult
	}{
		{"nil", nil},
		{"escaping output", bad(func(r *ActionResult) { r.Outputs[0].Path = "../../etc/passwd" })},
		{"absolute output", bad(func(r *ActionResult) { r.Outputs[0].Path = "/etc/passwd" })},
		{"trailing slash", bad(func(r *ActionResult) { r.Outputs[1].Path = "svc/api/out/assets/" })},
		{"no digest", bad(func(r *ActionResult) { r.Outputs[0].Digest = Zero })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := FromBytes([]byte(tt.name))
			if err := db.PutAction(ctx, key, tt.r); err == nil {
				t.Fatal("PutAction accepted it")
			}
			if got, _ := db.GetAction(ctx, key); got != nil {
				t.Error("stored anyway")
			}
		})
	}
}

// A stored row that cannot be decoded, or that names a path outside the
// workspace, is a miss (the stage runs again), never an error or a restore.
func TestGetActionBadRowIsMiss(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	key := FromBytes([]byte("k"))
	escaping := []byte{resultFormat}
	escaping = wire.AppendString(escaping, "//a:x")
	escaping = binary.AppendVarint(escaping, 0)
	escaping = binary.AppendVarint(escaping, 0)
	escaping = binary.AppendVarint(escaping, 0)
	escaping = append(escaping, make([]byte, 32)...)
	escaping = binary.AppendUvarint(escaping, 1)
	escaping = wire.AppendString(escaping, "../x")
	escaping = append(escaping, Empty[:]...)
	escaping = binary.AppendVarint(escaping, 0)
	escaping = append(escaping, 0)
	if _, err := decodeResult(escaping[:len(escaping)]); err == nil {
		t.Fatal("decodeResult accepted an escaping path")
	}
	good, err := encodeResult(&ActionResult{Label: "//a:x", Outputs: []Output{{Path: "a/x", Digest: Empty}}})
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]byte{[]byte(`{"json":"old format"}`), escaping, good[:len(good)-1], append(append([]byte{}, good...), 0)}
	for _, row := range rows {
		if _, err := db.SQL().Exec("INSERT OR REPLACE INTO actions (key, label, result, created) VALUES (?, '', ?, 0)", key[:], row); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetAction(ctx, key)
		if err != nil || got != nil {
			t.Errorf("row %q: got %+v, %v; want a miss", row, got, err)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := &ActionResult{Label: "//svc/api:api", ExitCode: 0, Duration: 1234 * time.Millisecond,
		Created: time.Unix(1700000000, 42), Log: FromBytes([]byte("log")),
		Outputs: []Output{{Path: "svc/api/out/api", Digest: FromBytes([]byte("bin")), Size: 3, Exec: true},
			{Path: "svc/api/out/docs", Digest: FromBytes([]byte("tree")), Size: 0, IsDir: true}}}
	b, err := encodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(r.Created) {
		t.Errorf("created %v, want %v", got.Created, r.Created)
	}
	got.Created = r.Created
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
}

func TestLatestActions(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	k1, k2, k3 := FromBytes([]byte("1")), FromBytes([]byte("2")), FromBytes([]byte("3"))
	res := func(label string) *ActionResult { return &ActionResult{Label: label, Created: time.Unix(1, 0)} }
	for _, c := range []struct {
		scope string
		key   Digest
		label string
	}{{"/ws1", k1, "//a:x"}, {"/ws1", k2, "//a:x"}, {"/ws2", k3, "//a:x"}} {
		if err := db.RecordAction(ctx, c.scope, c.key, res(c.label)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.LatestActions(ctx, "/ws1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[k2] == nil {
		t.Fatalf("latest of /ws1 = %d entries (has k2: %v), want only the newer key k2", len(got), got[k2] != nil)
	}
	r, err := DecodeResult(got[k2])
	if err != nil || r.Label != "//a:x" {
		t.Fatalf("decode: %+v, %v", r, err)
	}
	if old, _ := db.GetAction(ctx, k1); old == nil {
		t.Error("the older result of the label must stay in the action cache")
	}
}

func TestKV(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	tests := []struct {
		name    string
		ns, key string
		val     []byte
	}{
		{"plain", "pkg", "//a:BUILD.mc", []byte("evaluated")},
		{"same key other ns", "other", "//a:BUILD.mc", []byte("different")},
		{"empty value", "pkg", "empty", []byte{}},
		{"nil value", "pkg", "nil", nil},
		{"binary", "pkg", "bin", []byte{0, 0xff, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := db.GetKV(ctx, tt.ns, tt.key+"-miss"); err != nil || got != nil {
				t.Errorf("miss = %q, %v", got, err)
			}
			if err := db.PutKV(ctx, tt.ns, tt.key, tt.val); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetKV(ctx, tt.ns, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !bytes.Equal(got, tt.val) {
				t.Errorf("GetKV = %q (nil: %v), want %q", got, got == nil, tt.val)
			}
		})
	}
	// Namespaces are separate, and Put replaces.
	if got, _ := db.GetKV(ctx, "pkg", "//a:BUILD.mc"); string(got) != "evaluated" {
		t.Errorf("ns mixed up: %q", got)
	}
	if err := db.PutKV(ctx, "pkg", "//a:BUILD.mc", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetKV(ctx, "pkg", "//a:BUILD.mc"); string(got) != "v2" {
		t.Errorf("not replaced: %q", got)
	}
}

func TestDBContextCanceled(t *testing.T) {
	db := newDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutKV(ctx, "n", "k", []byte("v")); err == nil {
		t.Error("PutKV with a canceled context succeeded")
	}
	if _, err := db.GetAction(ctx, Zero); err == nil {
		t.Error("GetAction with a canceled context succeeded")
	}
}

// A lookup that misses: what a build with a fresh local cache pays per stage
// before it asks the shared cache.
func BenchmarkGetActionMiss(b *testing.B) {
	db, err := OpenDB(filepath.Join(b.TempDir(), "mc.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// A build's context can be cancelled, as here.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var key Digest
	for i := 0; b.Loop(); i++ {
		key[0], key[1] = byte(i), byte(i>>8)
		if r, err := db.GetAction(ctx, key); err != nil || r != nil {
			b.Fatal(r, err)
		}
	}
}
