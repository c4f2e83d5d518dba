package cas

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/mc-build/mc/flock"
	"github.com/mc-build/mc/internal/sqlschema"
)

// busyTimeout is how long a statement waits for another process's write
// transaction before failing with SQLITE_BUSY.
const busyTimeout = 30 * time.Second

// migrations returns the schema steps, applied in order; PRAGMA user_version
// counts those applied. Never edit one that has shipped: append a new one.
func migrations() []string {
	return []string{
		`CREATE TABLE actions (
			key     BLOB PRIMARY KEY,   -- the 32-byte action digest
			label   TEXT NOT NULL,
			result  BLOB NOT NULL,      -- encodeResult (result.go)
			created INTEGER NOT NULL    -- unix nanoseconds
		) WITHOUT ROWID;
		CREATE TABLE kv (
			ns  TEXT NOT NULL,
			key TEXT NOT NULL,
			val BLOB NOT NULL,
			PRIMARY KEY (ns, key)
		) WITHOUT ROWID;
		CREATE TABLE stat (
			dir  TEXT PRIMARY KEY,      -- absolute, cleaned directory
			ents BLOB NOT NULL          -- its files' packed rows (see statcache.go)
		) WITHOUT ROWID;`,
		// The latest action key of each label, per workspace: a null build
		// preloads these results in one query instead of one per stage.
		`CREATE TABLE latest (
			scope TEXT NOT NULL,        -- the workspace root
			label TEXT NOT NULL,
			key   BLOB NOT NULL,
			PRIMARY KEY (scope, label)
		) WITHOUT ROWID;`,
		// Run history for `mc explain` and `mc build --explain` (package history):
		// each label's bounded list of entries with their key preimages, and
		// per workspace the newest entry of every label, in one row that a
		// build reads and writes at once.
		`CREATE TABLE runs (
			id      INTEGER PRIMARY KEY AUTOINCREMENT,
			scope   TEXT NOT NULL,      -- the workspace root
			started INTEGER NOT NULL,   -- unix nanoseconds
			command TEXT NOT NULL       -- e.g. "build //..."
		);
		CREATE TABLE stage_runs (
			scope    TEXT NOT NULL,
			label    TEXT NOT NULL,
			seq      INTEGER NOT NULL,  -- per label, increasing
			run      INTEGER NOT NULL,  -- runs.id that recorded the entry
			key      BLOB NOT NULL,
			status   INTEGER NOT NULL,  -- StageStatus
			built_by INTEGER NOT NULL,  -- cached: the run that built key (0: unknown)
			time     INTEGER NOT NULL,  -- unix nanoseconds
			parts    BLOB NOT NULL,     -- the key preimage (graph.KeyParts as JSON)
			outputs  BLOB,              -- built: JSON []Output
			PRIMARY KEY (scope, label, seq)
		);
		CREATE INDEX stage_runs_key ON stage_runs (key, status, run);
		CREATE TABLE history_scopes (
			scope     TEXT PRIMARY KEY,
			stage_set BLOB NOT NULL,    -- stageSetDigest of the scope's last recorded run
			heads     BLOB NOT NULL     -- every label's newest entry (encodeHeads)
		) WITHOUT ROWID;`,
		// `mc cache` (gc.go, touch.go, history's run_stats.go): when each result was
		// last a cache hit, for least-recently-used trimming (0: not since
		// it was created), and each run's stage counts, which the history
		// entries alone do not give (a null build writes none).
		`ALTER TABLE actions ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
		ALTER TABLE runs ADD COLUMN built INTEGER;   -- NULL: not recorded (SetRunCounts)
		ALTER TABLE runs ADD COLUMN cached INTEGER;
		ALTER TABLE runs ADD COLUMN failed INTEGER;`,
	}
}

// DB is mc's SQLite database: the action cache, the stat cache and a
// key-value cache. Several mc processes may use one database at once: it
// runs in WAL mode, write transactions take the write lock up front
// (BEGIN IMMEDIATE) and wait for each other up to busyTimeout.
type DB struct {
	db *sql.DB
	// getAction is prepared once: a build asks it once per stage, and
	// preparing it each time was most of the cost of a miss.
	getAction *sql.Stmt
}

// OpenDB opens (creating if needed) the database at path and brings its
// schema up to date.
func OpenDB(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cas: open db: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("cas: open db: %w", err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	// A file: URI so that any character in the path survives (escaped).
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	// Creating the database switches it to WAL mode, which SQLite refuses
	// at once (SQLITE_BUSY, no busy wait) while another process does the
	// same: processes opening one cache take turns until it is set up.
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	unlock, err := flock.Lock(ctx, abs+".lock")
	if err != nil {
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	defer unlock()
	sdb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	db := &DB{db: sdb}
	if err := sqlschema.Migrate(ctx, sdb, migrations()); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	if db.getAction, err = sdb.PrepareContext(ctx, "SELECT result FROM actions WHERE key = ?"); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cas: open db %s: %w", abs, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.getAction.Close()
	return db.db.Close()
}

// SQL is the underlying handle, for tables other packages own.
func (db *DB) SQL() *sql.DB { return db.db }

// GetAction returns the cached result for the action key, or nil, nil.
func (db *DB) GetAction(ctx context.Context, key Digest) (*ActionResult, error) {
	var b []byte
	err := db.getAction.QueryRowContext(ctx, key[:]).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cas: get action %s: %w", key.Short(), err)
	}
	r, err := decodeResult(b)
	if err != nil {
		// An undecodable row (an older format, a damaged page) is a miss:
		// the stage runs again and its new result replaces the row.
		return nil, nil
	}
	return r, nil
}

// PutAction records r as the result of the action key, replacing any
// earlier one. The blobs r names must be stored first.
func (db *DB) PutAction(ctx context.Context, key Digest, r *ActionResult) error {
	return db.RecordAction(ctx, "", key, r)
}

// RecordAction is PutAction that also remembers key as the latest action of
// r.Label in scope (a workspace root), for LatestActions. One transaction.
func (db *DB) RecordAction(ctx context.Context, scope string, key Digest, r *ActionResult) error {
	if r == nil {
		return fmt.Errorf("cas: put action %s: nil result", key.Short())
	}
	b, err := encodeResult(r)
	if err != nil {
		return fmt.Errorf("cas: put action %s: %w", key.Short(), err)
	}
	created := r.Created
	if created.IsZero() {
		created = time.Now()
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cas: put action %s: %w", key.Short(), err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx,
		`INSERT INTO actions (key, label, result, created) VALUES (?, ?, ?, ?)
		 ON CONFLICT (key) DO UPDATE SET label = excluded.label, result = excluded.result, created = excluded.created`,
		key[:], r.Label, b, created.UnixNano())
	if err == nil && scope != "" {
		_, err = tx.ExecContext(ctx,
			`INSERT INTO latest (scope, label, key) VALUES (?, ?, ?)
			 ON CONFLICT (scope, label) DO UPDATE SET key = excluded.key`, scope, r.Label, key[:])
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("cas: put action %s: %w", key.Short(), err)
	}
	return nil
}

// Recorded is one action result to record with RecordActions.
type Recorded struct {
	Key    Digest
	Result *ActionResult
}

// RecordActions is RecordAction for many results in one transaction: the
// scheduler's group commit.
func (db *DB) RecordActions(ctx context.Context, scope string, recs []Recorded) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cas: record actions: %w", err)
	}
	defer tx.Rollback()
	putAction, err := tx.PrepareContext(ctx, `INSERT INTO actions (key, label, result, created) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET label = excluded.label, result = excluded.result, created = excluded.created`)
	if err != nil {
		return fmt.Errorf("cas: record actions: %w", err)
	}
	defer putAction.Close()
	putLatest, err := tx.PrepareContext(ctx, `INSERT INTO latest (scope, label, key) VALUES (?, ?, ?)
		ON CONFLICT (scope, label) DO UPDATE SET key = excluded.key`)
	if err != nil {
		return fmt.Errorf("cas: record actions: %w", err)
	}
	defer putLatest.Close()
	for _, r := range recs {
		b, err := encodeResult(r.Result)
		if err != nil {
			return fmt.Errorf("cas: record action %s: %w", r.Key.Short(), err)
		}
		created := r.Result.Created
		if created.IsZero() {
			created = time.Now()
		}
		if _, err := putAction.ExecContext(ctx, r.Key[:], r.Result.Label, b, created.UnixNano()); err != nil {
			return fmt.Errorf("cas: record action %s: %w", r.Key.Short(), err)
		}
		if scope != "" {
			if _, err := putLatest.ExecContext(ctx, scope, r.Result.Label, r.Key[:]); err != nil {
				return fmt.Errorf("cas: record action %s: %w", r.Key.Short(), err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cas: record actions: %w", err)
	}
	return nil
}

// LatestActions returns the latest recorded result of every label of scope,
// by action key, in one query. Entries are decoded lazily by Decode.
func (db *DB) LatestActions(ctx context.Context, scope string) (map[Digest][]byte, error) {
	entries, err := db.LatestEntries(ctx, scope)
	if err != nil {
		return nil, err
	}
	out := make(map[Digest][]byte, len(entries))
	for k, e := range entries {
		out[k] = e.Result
	}
	return out, nil
}

// LatestEntry is one result of LatestEntries.
type LatestEntry struct {
	Result []byte // encoded; see DecodeResult
	// LastUse is when the result was last used (a cache hit recorded by
	// TouchActions) or else created: a hit needs no TouchActions when it is
	// recent.
	LastUse time.Time
}

// LatestEntries is LatestActions with each result's last use: what a build
// preloads in one query.
func (db *DB) LatestEntries(ctx context.Context, scope string) (map[Digest]LatestEntry, error) {
	rows, err := db.db.QueryContext(ctx,
		`SELECT a.key, a.result, max(a.used, a.created) FROM latest l JOIN actions a ON a.key = l.key WHERE l.scope = ?`, scope)
	if err != nil {
		return nil, fmt.Errorf("cas: latest actions: %w", err)
	}
	defer rows.Close()
	out := map[Digest]LatestEntry{}
	for rows.Next() {
		var k, b []byte
		var used int64
		if err := rows.Scan(&k, &b, &used); err != nil {
			return nil, fmt.Errorf("cas: latest actions: %w", err)
		}
		var d Digest
		if len(k) == len(d) {
			copy(d[:], k)
			out[d] = LatestEntry{Result: b, LastUse: time.Unix(0, used)}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cas: latest actions: %w", err)
	}
	return out, nil
}

// DecodeResult decodes a stored result as returned by LatestActions.
func DecodeResult(b []byte) (*ActionResult, error) { return decodeResult(b) }

// DeleteAction forgets the action key; deleting a missing one is no error.
func (db *DB) DeleteAction(ctx context.Context, key Digest) error {
	if _, err := db.db.ExecContext(ctx, "DELETE FROM actions WHERE key = ?", key[:]); err != nil {
		return fmt.Errorf("cas: delete action %s: %w", key.Short(), err)
	}
	return nil
}

// GetKV returns the value stored under (ns, key), or nil, nil. A stored
// empty value is returned as a non-nil empty slice.
func (db *DB) GetKV(ctx context.Context, ns, key string) ([]byte, error) {
	var b []byte
	err := db.db.QueryRowContext(ctx, "SELECT val FROM kv WHERE ns = ? AND key = ?", ns, key).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cas: get %s/%s: %w", ns, key, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// PutKV stores val under (ns, key), replacing any earlier value.
func (db *DB) PutKV(ctx context.Context, ns, key string, val []byte) error {
	if val == nil {
		val = []byte{} // the column is NOT NULL
	}
	_, err := db.db.ExecContext(ctx,
		`INSERT INTO kv (ns, key, val) VALUES (?, ?, ?)
		 ON CONFLICT (ns, key) DO UPDATE SET val = excluded.val`, ns, key, val)
	if err != nil {
		return fmt.Errorf("cas: put %s/%s: %w", ns, key, err)
	}
	return nil
}
