// Package history records what each build ran: runs, and per stage its
// key, status, time and the key parts behind it (for mc explain), the
// statistics of recent runs (mc cache stats), all in the SQLite database of
// cas (whose schema holds its tables) and read back by label, key or run.
package history

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/internal/wire"
)

// StageStatus is how a stage ended in a recorded run.
type StageStatus int

const (
	StageBuilt StageStatus = 1 + iota
	StageCached
	StageFailed
)

func (s StageStatus) String() string {
	switch s {
	case StageBuilt:
		return "built"
	case StageCached:
		return "cached"
	case StageFailed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// runsKept is how many of the latest runs (of every scope) keep their row
// (id, scope, time, command). Entries outlive their run's row: they carry
// their own time.
const runsKept = 1000

// StageRecord is one stage of a build, as RecordRun stores it.
type StageRecord struct {
	Label string
	Key   cas.Digest
	// Parts returns the key preimage, encoded (as JSON, by the caller's
	// choice); it is called only for the stages that get a new entry, so a
	// null build encodes nothing.
	Parts  func() ([]byte, error)
	Status StageStatus
	// Outputs are what a built stage produced: `mc explain` uses them for
	// the dependents of stages that are never cached (cache = False).
	Outputs []cas.Output
	Time    time.Time // when it ended; zero: the run's start
}

// StageEntry is one entry of a label's history.
type StageEntry struct {
	Scope  string
	Label  string
	Seq    int64 // the label's own entry counter
	Run    int64 // the run that recorded it
	Key    cas.Digest
	Status StageStatus
	// BuiltBy is the run that built Key: Run for a built entry, the latest
	// run known to have built it for a cached one (0: unknown).
	BuiltBy int64
	Time    time.Time
	Outputs []cas.Output
}

// RunInfo is one recorded run.
type RunInfo struct {
	ID      int64
	Scope   string
	Started time.Time
	Command string
}

// RecordedRun is what RecordRun did.
type RecordedRun struct {
	ID int64
	// Previous holds, for every label whose entry was written, the label's
	// newest entry before this run (without Time and Outputs), or nil when
	// there was none. Labels with no new entry are absent.
	Previous map[string]*StageEntry
}

// head is a label's newest entry, as history_scopes.heads keeps it.
type head struct {
	seq, run int64
	key      cas.Digest
	status   StageStatus
}

// RecordRun records a run of scope (a workspace root) and its stages, in
// one transaction. A label's history is the list of its entries, newest
// last; a stage gets a new entry unless it is a cache hit of the key its
// newest entry already has, so a null build writes no entry at all and a
// label's history is the last keep *changes* of its key or outcome. Older
// entries are deleted in the same transaction.
func RecordRun(ctx context.Context, db *cas.DB, scope, command string, keep int, stages []StageRecord) (*RecordedRun, error) {
	if keep < 1 {
		return nil, fmt.Errorf("cas: record run: keep %d entries per label: must be at least 1", keep)
	}
	// Not interruptible: it is short and all or nothing, and a cancellable
	// context costs the SQLite driver a goroutine per statement.
	ctx = context.WithoutCancel(ctx)
	now := time.Now()
	set := stageSetDigest(stages)
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cas: record run: %w", err)
	}
	defer tx.Rollback()
	rec, err := recordRun(ctx, tx, scope, command, keep, now, set, stages)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("cas: record run: %w", err)
	}
	return rec, nil
}

func recordRun(ctx context.Context, tx *sql.Tx, scope, command string, keep int, now time.Time, set cas.Digest, stages []StageRecord) (*RecordedRun, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO runs (scope, started, command) VALUES (?, ?, ?)", scope, now.UnixNano(), command)
	if err != nil {
		return nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	if id > runsKept {
		if _, err := tx.ExecContext(ctx, "DELETE FROM runs WHERE id <= ?", id-runsKept); err != nil {
			return nil, err
		}
	}
	rec := &RecordedRun{ID: id, Previous: map[string]*StageEntry{}}
	if len(stages) == 0 {
		return rec, nil
	}
	// The shortcut of a repeated null build: the same stages as the scope's
	// last run, all cache hits, are all hits of their labels' newest keys,
	// so there is nothing to write.
	var last, blob []byte
	err = tx.QueryRowContext(ctx, "SELECT stage_set, heads FROM history_scopes WHERE scope = ?", scope).Scan(&last, &blob)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if string(last) == string(set[:]) && allCached(stages) {
		return rec, nil
	}
	heads, err := decodeHeads(blob)
	if err != nil {
		// A damaged row: the entries themselves say what the heads are.
		if heads, err = scanHeads(ctx, tx, scope); err != nil {
			return nil, err
		}
	}
	var todo []entryRow
	for i := range stages {
		st := &stages[i]
		h, had := heads[st.Label]
		if had && st.Status == StageCached && h.key == st.Key && h.status != StageFailed {
			continue // the same cache hit as last time: nothing new to say
		}
		var prev *StageEntry
		if had {
			prev = &StageEntry{Scope: scope, Label: st.Label, Seq: h.seq, Run: h.run, Key: h.key, Status: h.status}
		}
		rec.Previous[st.Label] = prev
		e := entryRow{st: st, seq: 1, time: st.Time}
		if had {
			e.seq = h.seq + 1
		}
		if e.time.IsZero() {
			e.time = now
		}
		switch {
		case st.Status == StageBuilt:
			e.builtBy = id
		case st.Status == StageCached && had && h.key == st.Key && h.status == StageBuilt:
			e.builtBy = h.run
		}
		todo = append(todo, e)
	}
	if err := writeEntries(ctx, tx, scope, id, int64(keep), todo); err != nil {
		return nil, err
	}
	for _, e := range todo {
		heads[e.st.Label] = head{seq: e.seq, run: id, key: e.st.Key, status: e.st.Status}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO history_scopes (scope, stage_set, heads) VALUES (?, ?, ?)
		ON CONFLICT (scope) DO UPDATE SET stage_set = excluded.stage_set, heads = excluded.heads`,
		scope, set[:], encodeHeads(heads))
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// entryRow is a history entry about to be written.
type entryRow struct {
	st      *StageRecord
	seq     int64
	builtBy int64
	time    time.Time
}

func writeEntries(ctx context.Context, tx *sql.Tx, scope string, run, keep int64, todo []entryRow) error {
	if err := findBuiltBy(ctx, tx, todo); err != nil {
		return err
	}
	w := &stmts{ctx: ctx, tx: tx}
	defer w.close()
	for i := range todo {
		if err := w.write(scope, run, keep, &todo[i]); err != nil {
			return fmt.Errorf("%s: %w", todo[i].st.Label, err)
		}
	}
	return nil
}

// builtByBatch is how many keys one findBuiltBy query looks up.
const builtByBatch = 500

// findBuiltBy fills in, for cache hits, the latest run that built their key
// (in any scope): a few queries of many keys each, not one per stage.
func findBuiltBy(ctx context.Context, tx *sql.Tx, todo []entryRow) error {
	var need []*entryRow
	for i := range todo {
		if todo[i].st.Status == StageCached && todo[i].builtBy == 0 {
			need = append(need, &todo[i])
		}
	}
	for len(need) > 0 {
		n := min(len(need), builtByBatch)
		batch := need[:n]
		need = need[n:]
		args := make([]any, 0, n+1)
		args = append(args, StageBuilt)
		for _, e := range batch {
			args = append(args, e.st.Key[:])
		}
		rows, err := tx.QueryContext(ctx, "SELECT key, max(run) FROM stage_runs WHERE status = ? AND key IN (?"+
			strings.Repeat(", ?", n-1)+") GROUP BY key", args...)
		if err != nil {
			return err
		}
		by := map[cas.Digest]int64{}
		for rows.Next() {
			var (
				k   []byte
				run int64
				d   cas.Digest
			)
			if err := rows.Scan(&k, &run); err != nil {
				rows.Close()
				return err
			}
			if len(k) == len(d) {
				copy(d[:], k)
				by[d] = run
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range batch {
			e.builtBy = by[e.st.Key]
		}
	}
	return nil
}

// stmts holds the prepared statements of one RecordRun: one prepared
// statement run ten thousand times costs a fraction of as many one-off
// statements, or of multi-row ones that SQLite must compile each time.
type stmts struct {
	ctx context.Context
	tx  *sql.Tx
	m   map[string]*sql.Stmt
}

func (w *stmts) get(q string) (*sql.Stmt, error) {
	if s, ok := w.m[q]; ok {
		return s, nil
	}
	s, err := w.tx.PrepareContext(w.ctx, q)
	if err != nil {
		return nil, err
	}
	if w.m == nil {
		w.m = map[string]*sql.Stmt{}
	}
	w.m[q] = s
	return s, nil
}

func (w *stmts) exec(q string, args ...any) error {
	s, err := w.get(q)
	if err == nil {
		_, err = s.ExecContext(w.ctx, args...)
	}
	return err
}

func (w *stmts) close() {
	for _, s := range w.m {
		s.Close()
	}
}

func (w *stmts) write(scope string, run, keep int64, e *entryRow) error {
	st := e.st
	parts, err := st.Parts()
	if err != nil {
		return fmt.Errorf("encoding the key preimage: %w", err)
	}
	var outs []byte
	if st.Status == StageBuilt && st.Outputs != nil {
		if outs, err = json.Marshal(st.Outputs); err != nil {
			return fmt.Errorf("encoding outputs: %w", err)
		}
	}
	err = w.exec(`INSERT INTO stage_runs (scope, label, seq, run, key, status, built_by, time, parts, outputs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, scope, st.Label, e.seq, run, st.Key[:], st.Status, e.builtBy, e.time.UnixNano(), parts, outs)
	if err != nil {
		return err
	}
	if err != nil || e.seq <= keep {
		return err
	}
	// The label's entries that fell out of its last keep go, with their
	// preimages.
	return w.exec("DELETE FROM stage_runs WHERE scope = ? AND label = ? AND seq <= ?", scope, st.Label, e.seq-keep)
}

// stageSetDigest identifies the stages of a run with their keys and
// whether they failed, in their order: after a run, each label's head has
// that key and, unless it failed, a status a cache hit need not replace.
func stageSetDigest(stages []StageRecord) cas.Digest {
	h := cas.NewHasher()
	var buf []byte
	for i := range stages {
		st := &stages[i]
		buf = wire.AppendString(buf[:0], st.Label)
		buf = append(buf, st.Key[:]...)
		if st.Status == StageFailed {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
		h.Write(buf)
	}
	return h.Sum()
}

func allCached(stages []StageRecord) bool {
	for i := range stages {
		if stages[i].Status != StageCached {
			return false
		}
	}
	return true
}

// headsFormat is the first byte of an encoded heads blob.
const headsFormat = 1

// encodeHeads stores every label's newest entry as one blob: per label its
// length-prefixed name, seq, run, key and status. One row read and written
// per build instead of a row per label.
func encodeHeads(heads map[string]head) []byte {
	b := make([]byte, 0, 1+len(heads)*72)
	b = append(b, headsFormat)
	for label, h := range heads {
		b = wire.AppendString(b, label)
		b = binary.AppendUvarint(b, uint64(h.seq))
		b = binary.AppendUvarint(b, uint64(h.run))
		b = append(b, h.key[:]...)
		b = append(b, byte(h.status))
	}
	return b
}

func decodeHeads(b []byte) (map[string]head, error) {
	heads := map[string]head{}
	if len(b) == 0 {
		return heads, nil
	}
	if b[0] != headsFormat {
		return nil, fmt.Errorf("history heads: unknown format %d", b[0])
	}
	rd := wire.NewReader(b[1:])
	for rd.Len() > 0 && !rd.Bad() {
		label := rd.Str()
		h := head{seq: int64(rd.Uvarint()), run: int64(rd.Uvarint()), key: readDigest(rd)}
		h.status = StageStatus(rd.Byte())
		heads[label] = h
	}
	if rd.Bad() {
		return nil, errors.New("history heads: malformed")
	}
	return heads, nil
}

// readDigest reads a digest stored as its 32 bytes (as cas stores them).
func readDigest(r *wire.Reader) (d cas.Digest) {
	copy(d[:], r.Bytes(uint64(len(d))))
	return d
}

// scanHeads finds every label's newest entry in the entries themselves.
func scanHeads(ctx context.Context, tx *sql.Tx, scope string) (map[string]head, error) {
	// SQLite takes the bare columns from the row holding max(seq).
	rows, err := tx.QueryContext(ctx, "SELECT label, max(seq), run, key, status FROM stage_runs WHERE scope = ? GROUP BY label", scope)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	heads := map[string]head{}
	for rows.Next() {
		var (
			label string
			h     head
			key   []byte
		)
		if err := rows.Scan(&label, &h.seq, &h.run, &key, &h.status); err != nil {
			return nil, err
		}
		copy(h.key[:], key)
		heads[label] = h
	}
	return heads, rows.Err()
}

// StageHistory returns up to limit entries of label in scope, newest first.
func StageHistory(ctx context.Context, db *cas.DB, scope, label string, limit int) ([]StageEntry, error) {
	rows, err := db.SQL().QueryContext(ctx, `SELECT scope, label, seq, run, key, status, built_by, time, outputs
		FROM stage_runs WHERE scope = ? AND label = ? ORDER BY seq DESC LIMIT ?`, scope, label, limit)
	if err != nil {
		return nil, fmt.Errorf("cas: history of %s: %w", label, err)
	}
	defer rows.Close()
	var out []StageEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("cas: history of %s: %w", label, err)
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cas: history of %s: %w", label, err)
	}
	return out, nil
}

// BuiltBy returns the newest entry, in any scope, that built key, or nil
// when no recorded run built it (it was built before history was kept,
// its entries were pruned, or another machine built it).
func BuiltBy(ctx context.Context, db *cas.DB, key cas.Digest) (*StageEntry, error) {
	row := db.SQL().QueryRowContext(ctx, `SELECT scope, label, seq, run, key, status, built_by, time, outputs
		FROM stage_runs WHERE key = ? AND status = ? ORDER BY run DESC LIMIT 1`, key[:], StageBuilt)
	e, err := scanEntry(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cas: who built %s: %w", key.Short(), err)
	}
	return e, nil
}

func scanEntry(r interface{ Scan(...any) error }) (*StageEntry, error) {
	var (
		e         StageEntry
		key, outs []byte
		t         int64
	)
	if err := r.Scan(&e.Scope, &e.Label, &e.Seq, &e.Run, &key, &e.Status, &e.BuiltBy, &t, &outs); err != nil {
		return nil, err
	}
	if len(key) != len(e.Key) {
		return nil, fmt.Errorf("malformed key in history")
	}
	copy(e.Key[:], key)
	e.Time = time.Unix(0, t)
	if len(outs) > 0 {
		if err := json.Unmarshal(outs, &e.Outputs); err != nil {
			return nil, fmt.Errorf("malformed outputs in history: %w", err)
		}
	}
	return &e, nil
}

// KeyParts returns the stored preimage of key (as RecordRun encoded it),
// or nil, nil when none is stored.
func KeyParts(ctx context.Context, db *cas.DB, key cas.Digest) ([]byte, error) {
	var b []byte
	err := db.SQL().QueryRowContext(ctx, "SELECT parts FROM stage_runs WHERE key = ? LIMIT 1", key[:]).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cas: preimage of %s: %w", key.Short(), err)
	}
	return b, nil
}

// Run returns the recorded run id, or nil, nil when it is unknown or pruned.
func Run(ctx context.Context, db *cas.DB, id int64) (*RunInfo, error) {
	var (
		r       RunInfo
		started int64
	)
	err := db.SQL().QueryRowContext(ctx, "SELECT id, scope, started, command FROM runs WHERE id = ?", id).
		Scan(&r.ID, &r.Scope, &started, &r.Command)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cas: run %d: %w", id, err)
	}
	r.Started = time.Unix(0, started)
	return &r, nil
}
