package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/internal/sqlschema"
)

// Run states. queued and running are the only ones that change again.
const (
	StatusQueued      = "queued"
	StatusRunning     = "running"
	StatusSuccess     = "success"
	StatusFailure     = "failure"
	StatusError       = "error"
	StatusCancelled   = "cancelled"
	StatusInterrupted = "interrupted"
)

// Triggers.
const (
	TriggerPush        = "push"
	TriggerPullRequest = "pull_request"
	TriggerCLI         = "cli"
)

// Stage states (the colours of the graph).
const (
	StageRunning     = "running"
	StageBuilt       = "built"
	StageCached      = "cached"
	StageFailed      = "failed"
	StageSkipped     = "skipped"
	StageInterrupted = "interrupted"
)

// logLimit bounds the log lines kept per stage (and for the run's own log):
// the oldest are dropped, as a terminal's scrollback does.
const logLimit = 10000

// storeMigrations are the schema steps of the server's own database
// (server.db, separate from the build cache's), applied in order; PRAGMA
// user_version counts those applied. Never edit a shipped one: append.
func storeMigrations() []string {
	return []string{
		`CREATE TABLE runs (
			id            INTEGER PRIMARY KEY AUTOINCREMENT,
			trigger       TEXT NOT NULL,              -- push | pull_request | cli
			repo          TEXT NOT NULL DEFAULT '',   -- owner/name (statuses)
			clone_url     TEXT NOT NULL DEFAULT '',   -- without credentials
			base_url      TEXT NOT NULL DEFAULT '',   -- pull request: the base's clone URL
			commit_sha    TEXT NOT NULL DEFAULT '',
			base_sha      TEXT NOT NULL DEFAULT '',   -- pull request: the base branch's head
			branch        TEXT NOT NULL DEFAULT '',
			pr            INTEGER NOT NULL DEFAULT 0,
			deploy        INTEGER NOT NULL DEFAULT 0,
			command       TEXT NOT NULL DEFAULT '',
			status        TEXT NOT NULL,
			reason        TEXT NOT NULL DEFAULT '',   -- why it ended so (cancelled, error)
			created       INTEGER NOT NULL,           -- unix nanoseconds
			started       INTEGER NOT NULL DEFAULT 0,
			finished      INTEGER NOT NULL DEFAULT 0,
			total         INTEGER NOT NULL DEFAULT 0, -- stages in the build graph
			built         INTEGER NOT NULL DEFAULT 0,
			cached        INTEGER NOT NULL DEFAULT 0,
			failed        INTEGER NOT NULL DEFAULT 0,
			skipped       INTEGER NOT NULL DEFAULT 0,
			critical_path TEXT NOT NULL DEFAULT '[]', -- JSON labels
			critical_ms   INTEGER NOT NULL DEFAULT 0,
			graph         TEXT NOT NULL DEFAULT '',   -- JSON Graph
			next_seq      INTEGER NOT NULL DEFAULT 1,
			log_lines     INTEGER NOT NULL DEFAULT 0  -- the run's own log (label '')
		);
		CREATE INDEX runs_status ON runs (status);
		CREATE TABLE stages (
			run        INTEGER NOT NULL,
			label      TEXT NOT NULL,
			status     TEXT NOT NULL,
			key        TEXT NOT NULL DEFAULT '',
			started    INTEGER NOT NULL DEFAULT 0,
			finished   INTEGER NOT NULL DEFAULT 0,
			duration_ms INTEGER NOT NULL DEFAULT 0,
			queued_ms  INTEGER NOT NULL DEFAULT 0,
			exit_code  INTEGER NOT NULL DEFAULT 0,
			error      TEXT NOT NULL DEFAULT '',
			reason     TEXT NOT NULL DEFAULT '',
			remote     INTEGER NOT NULL DEFAULT 0,
			outputs    TEXT NOT NULL DEFAULT '[]',  -- JSON []event.Output
			log_lines  INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (run, label)
		) WITHOUT ROWID;
		-- Every event of a run in order, log lines included (the log of a
		-- stage is its rows of type 'log'); data is the event.Event as JSON.
		CREATE TABLE events (
			run   INTEGER NOT NULL,
			seq   INTEGER NOT NULL,
			type  TEXT NOT NULL,
			label TEXT NOT NULL,
			data  TEXT NOT NULL,
			PRIMARY KEY (run, seq)
		) WITHOUT ROWID;
		CREATE INDEX events_label ON events (run, label, type, seq);
		-- X-GitHub-Delivery ids seen: a replayed delivery starts nothing.
		CREATE TABLE deliveries (
			id       TEXT PRIMARY KEY,
			received INTEGER NOT NULL
		) WITHOUT ROWID;`,
		// The delivery id is not signed: a captured delivery resent under a
		// new id is recognised by the hash of its signed body. Both tables
		// are pruned after Config.DeliveryRetention. A push run with deploy
		// stages records whether it deployed, and why not.
		`CREATE TABLE delivery_bodies (
			body_sha256 TEXT PRIMARY KEY,
			delivery    TEXT NOT NULL,
			received    INTEGER NOT NULL,
			run         INTEGER NOT NULL DEFAULT 0
		) WITHOUT ROWID;
		CREATE INDEX delivery_bodies_received ON delivery_bodies (received);
		CREATE INDEX deliveries_received ON deliveries (received);
		ALTER TABLE runs ADD COLUMN deploy_state TEXT NOT NULL DEFAULT '';
		ALTER TABLE runs ADD COLUMN deploy_note TEXT NOT NULL DEFAULT '';`,
		runsListMigration, // store_list.go
	}
}

// store is the server's SQLite database.
type store struct{ db *sql.DB }

func openStore(path string) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("server: open database: %w", err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "30000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("server: open database %s: %w", path, err)
	}
	st := &store{db: db}
	if err := sqlschema.Migrate(context.Background(), db, storeMigrations()); err != nil {
		db.Close()
		return nil, fmt.Errorf("server: open database %s: %w", path, err)
	}
	return st, nil
}

func (st *store) close() error { return st.db.Close() }

// Run is one build of the history.
type Run struct {
	ID           int64
	Trigger      string
	Repo         string
	CloneURL     string
	BaseURL      string
	Commit       string
	BaseSHA      string
	Branch       string
	PR           int
	Deploy       bool
	Command      string
	Status       string
	Reason       string
	Created      time.Time
	Started      time.Time
	Finished     time.Time
	Total        int
	Built        int
	Cached       int
	Failed       int
	Skipped      int
	CriticalPath []string
	CriticalMS   int64
	Graph        *Graph
	NextSeq      int64
	// DeployState is where a run with deploy stages stands (Deploy*
	// constants); DeployNote says why, shown at the top of the run page.
	DeployState string
	DeployNote  string
	// Message is the first line of the commit message, Author who wrote
	// it (a push) or opened the pull request, PRTitle the pull request's
	// title; RerunOf the run this one repeats (0: none). store_list.go.
	Message, Author, PRTitle string
	RerunOf                  int64
}

// Deploy states of a push run with deploy stages.
const (
	DeployWaiting     = "waiting"      // the build runs first
	DeployRunning     = "deploying"    // the head was checked; the deploy stages run
	DeployDone        = "deployed"     // the deploy stages succeeded
	DeployFailed      = "failed"       // a deploy stage failed
	DeploySkipped     = "not deployed" // the commit was not the head, the build failed, or the run was stopped
	DeployUnconfirmed = "unconfirmed"  // the head could not be read: not deployed (fail closed)
)

// Done reports whether the run has ended.
func (r *Run) Done() bool { return r.Status != StatusQueued && r.Status != StatusRunning }

// Duration is how long the run took (so far).
func (r *Run) Duration() time.Duration {
	if r.Started.IsZero() {
		return 0
	}
	end := r.Finished
	if end.IsZero() {
		if r.Done() {
			return 0
		}
		end = time.Now()
	}
	return end.Sub(r.Started)
}

// CacheHitPercent is cached stages over stages that ran or were cached; -1
// when there were none.
func (r *Run) CacheHitPercent() int {
	n := r.Built + r.Cached + r.Failed
	if n == 0 {
		return -1
	}
	return r.Cached * 100 / n
}

// Stage is one stage of a run, as its events left it.
type Stage struct {
	Label      string
	Status     string
	Key        string
	Started    time.Time
	Finished   time.Time
	DurationMS int64
	QueuedMS   int64
	ExitCode   int
	Error      string
	Reason     string
	Remote     bool
	Outputs    []event.Output
	LogLines   int
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (st *store) createRun(ctx context.Context, r *Run) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO runs (trigger, repo, clone_url, base_url, commit_sha, base_sha,
		branch, pr, deploy, command, status, created, started, deploy_state, deploy_note, message, author, pr_title,
		rerun_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.Trigger, r.Repo, r.CloneURL, r.BaseURL, r.Commit, r.BaseSHA, r.Branch, r.PR, r.Deploy, r.Command,
		r.Status, nanos(r.Created), nanos(r.Started), r.DeployState, r.DeployNote, r.Message, r.Author, r.PRTitle, r.RerunOf)
	if err != nil {
		return fmt.Errorf("server: create run: %w", err)
	}
	r.ID, err = res.LastInsertId()
	return err
}

const runColumns = `id, trigger, repo, clone_url, base_url, commit_sha, base_sha, branch, pr, deploy, command,
	status, reason, created, started, finished, total, built, cached, failed, skipped, critical_path, critical_ms,
	graph, next_seq, deploy_state, deploy_note, message, author, pr_title, rerun_of`

type scanner interface{ Scan(...any) error }

func scanRun(s scanner) (*Run, error) {
	var r Run
	var created, started, finished int64
	var crit, graph string
	err := s.Scan(&r.ID, &r.Trigger, &r.Repo, &r.CloneURL, &r.BaseURL, &r.Commit, &r.BaseSHA, &r.Branch, &r.PR,
		&r.Deploy, &r.Command, &r.Status, &r.Reason, &created, &started, &finished, &r.Total, &r.Built, &r.Cached,
		&r.Failed, &r.Skipped, &crit, &r.CriticalMS, &graph, &r.NextSeq, &r.DeployState, &r.DeployNote,
		&r.Message, &r.Author, &r.PRTitle, &r.RerunOf)
	if err != nil {
		return nil, err
	}
	r.Created, r.Started, r.Finished = fromNanos(created), fromNanos(started), fromNanos(finished)
	_ = json.Unmarshal([]byte(crit), &r.CriticalPath) // written by us; empty on damage
	if graph != "" {
		var g Graph
		if json.Unmarshal([]byte(graph), &g) == nil {
			r.Graph = &g
		}
	}
	return &r, nil
}

// getRun returns the run, or nil, nil when there is none.
func (st *store) getRun(ctx context.Context, id int64) (*Run, error) {
	r, err := scanRun(st.db.QueryRowContext(ctx, "SELECT "+runColumns+" FROM runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: run %d: %w", id, err)
	}
	return r, nil
}

// activeRunsLike returns the queued or running runs of the same branch (a
// push) or pull request as r, other than r.
func (st *store) activeRunsLike(ctx context.Context, r *Run) ([]*Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs WHERE status IN ('queued','running') AND id != ? AND trigger = ? AND repo = ? AND `
	arg := any(r.Branch)
	if r.Trigger == TriggerPullRequest {
		q += "pr = ?"
		arg = r.PR
	} else {
		q += "branch = ?"
	}
	rows, err := st.db.QueryContext(ctx, q+" ORDER BY id", r.ID, r.Trigger, r.Repo, arg)
	if err != nil {
		return nil, fmt.Errorf("server: runs like %d: %w", r.ID, err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		o, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("server: runs like %d: %w", r.ID, err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func (st *store) setStarted(ctx context.Context, id int64, t time.Time) error {
	_, err := st.db.ExecContext(ctx, "UPDATE runs SET status = 'running', started = ? WHERE id = ?", nanos(t), id)
	if err != nil {
		return fmt.Errorf("server: run %d: %w", id, err)
	}
	return nil
}

func (st *store) setGraph(ctx context.Context, id int64, g *Graph) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if _, err := st.db.ExecContext(ctx, "UPDATE runs SET graph = ? WHERE id = ?", string(b), id); err != nil {
		return fmt.Errorf("server: run %d: %w", id, err)
	}
	return nil
}

// finishRun records how the run ended, marks stages still running as
// interrupted, and appends a run_status event for the live page.
func (st *store) finishRun(ctx context.Context, id int64, status, reason string, t time.Time) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("server: finish run %d: %w", id, err)
	}
	defer tx.Rollback()
	if err := finishRunTx(ctx, tx, id, status, reason, t); err != nil {
		return fmt.Errorf("server: finish run %d: %w", id, err)
	}
	return tx.Commit()
}

func finishRunTx(ctx context.Context, tx *sql.Tx, id int64, status, reason string, t time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, reason = ?, finished = ? WHERE id = ?`,
		status, reason, nanos(t), id); err != nil {
		return err
	}
	// A run that ended (cancelled, interrupted, failed) before or during its
	// deploy stages says so, rather than "waiting" forever.
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET deploy_state = ?, deploy_note = ? WHERE id = ? AND deploy_state = ?`,
		DeploySkipped, "not deployed: the run ended ("+status+") before its deploy stages", id, DeployWaiting); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET deploy_state = ?, deploy_note = ? WHERE id = ? AND deploy_state = ?`,
		DeployFailed, "the deploy stages were interrupted ("+status+")", id, DeployRunning); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stages SET status = 'interrupted', finished = ? WHERE run = ? AND status = 'running'`,
		nanos(t), id); err != nil {
		return err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, "SELECT next_seq FROM runs WHERE id = ?", id).Scan(&seq); err != nil {
		return err
	}
	data, _ := json.Marshal(statusEvent{Type: eventRunStatus, Time: t, Status: status, Reason: reason})
	if _, err := tx.ExecContext(ctx, "INSERT INTO events (run, seq, type, label, data) VALUES (?,?,?,?,?)",
		id, seq, eventRunStatus, "", string(data)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE runs SET next_seq = ? WHERE id = ?", seq+1, id)
	return err
}

// eventRunStatus is the server's own event: the run reached a state.
const eventRunStatus = "run_status"

type statusEvent struct {
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
}

// interruptActive marks every running run interrupted: what a server that
// starts finds of the builds its predecessor did not finish. Queued runs
// stay queued (queuedRuns): their build has not started, so nothing is lost.
func (st *store) interruptActive(ctx context.Context, t time.Time) ([]int64, error) {
	ids, err := st.runIDs(ctx, "interrupted runs", "SELECT id FROM runs WHERE status = 'running'")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := st.finishRun(ctx, id, StatusInterrupted, "the server stopped during the run", t); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// queuedRuns lists the runs still queued, oldest first.
func (st *store) queuedRuns(ctx context.Context) ([]int64, error) {
	return st.runIDs(ctx, "queued runs", "SELECT id FROM runs WHERE status = 'queued' ORDER BY id")
}

// runIDs runs a query selecting run ids; what names them in an error.
func (st *store) runIDs(ctx context.Context, what, query string, args ...any) ([]int64, error) {
	rows, err := st.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", what, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("server: %s: %w", what, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// A deliveryRecord is what the server remembers of a delivery it took.
type deliveryRecord struct {
	ID       string
	Received time.Time
	Run      int64
}

// recordDelivery records a webhook delivery by its id and the SHA-256 of
// its signed body, after pruning the records older than keepSince and
// beyond the newest max. When either was recorded before (a replay: the
// same id, or the same signed body under a new id) it records nothing and
// returns the earlier one. checkBody false (tests only) looks at the id
// alone.
func (st *store) recordDelivery(ctx context.Context, id, bodySHA string, t, keepSince time.Time, max int, checkBody bool) (*deliveryRecord, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("server: record delivery: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{"DELETE FROM deliveries WHERE received < ?", "DELETE FROM delivery_bodies WHERE received < ?"} {
		if _, err := tx.ExecContext(ctx, q, nanos(keepSince)); err != nil {
			return nil, fmt.Errorf("server: prune deliveries: %w", err)
		}
	}
	var prev deliveryRecord
	var received int64
	err = tx.QueryRowContext(ctx, "SELECT delivery, received, run FROM delivery_bodies WHERE body_sha256 = ?", bodySHA).
		Scan(&prev.ID, &received, &prev.Run)
	if err == nil && checkBody {
		prev.Received = fromNanos(received)
		return &prev, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server: record delivery: %w", err)
	}
	err = tx.QueryRowContext(ctx, "SELECT received FROM deliveries WHERE id = ?", id).Scan(&received)
	if err == nil {
		return &deliveryRecord{ID: id, Received: fromNanos(received)}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server: record delivery: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO deliveries (id, received) VALUES (?, ?)", id, nanos(t)); err != nil {
		return nil, fmt.Errorf("server: record delivery: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO delivery_bodies (body_sha256, delivery, received) VALUES (?, ?, ?)",
		bodySHA, id, nanos(t)); err != nil {
		return nil, fmt.Errorf("server: record delivery: %w", err)
	}
	for _, q := range []string{
		"DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries ORDER BY received DESC LIMIT -1 OFFSET ?)",
		"DELETE FROM delivery_bodies WHERE body_sha256 IN (SELECT body_sha256 FROM delivery_bodies ORDER BY received DESC LIMIT -1 OFFSET ?)",
	} {
		if _, err := tx.ExecContext(ctx, q, max); err != nil {
			return nil, fmt.Errorf("server: prune deliveries: %w", err)
		}
	}
	return nil, tx.Commit()
}

// setDeliveryRun notes the run a delivery started (what a replay's refusal
// names).
func (st *store) setDeliveryRun(ctx context.Context, bodySHA string, run int64) error {
	if _, err := st.db.ExecContext(ctx, "UPDATE delivery_bodies SET run = ? WHERE body_sha256 = ?", run, bodySHA); err != nil {
		return fmt.Errorf("server: record delivery: %w", err)
	}
	return nil
}

// setDeploy records where run id's deploy stands, and why.
func (st *store) setDeploy(ctx context.Context, id int64, state, note string) error {
	if _, err := st.db.ExecContext(ctx, "UPDATE runs SET deploy_state = ?, deploy_note = ? WHERE id = ?", state, note, id); err != nil {
		return fmt.Errorf("server: run %d: %w", id, err)
	}
	return nil
}

// appendEvents stores a batch of build events of run id in one
// transaction: each event, and its effect on the stage and run rows.
// finishCLI: a build_finished also ends the run (runs reported by the CLI,
// whose process the server does not see exit).
func (st *store) appendEvents(ctx context.Context, id int64, evs []event.Event, finishCLI bool) error {
	if len(evs) == 0 {
		return nil
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("server: events of run %d: %w", id, err)
	}
	defer tx.Rollback()
	var seq int64
	if err := tx.QueryRowContext(ctx, "SELECT next_seq FROM runs WHERE id = ?", id).Scan(&seq); err != nil {
		return fmt.Errorf("server: events of run %d: %w", id, err)
	}
	for _, e := range evs {
		if err := applyEvent(ctx, tx, id, e); err != nil {
			return fmt.Errorf("server: events of run %d: %s: %w", id, e.Type, err)
		}
		e.Graph = nil // kept once, in runs.graph
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO events (run, seq, type, label, data) VALUES (?,?,?,?,?)",
			id, seq, e.Type, e.Label, string(data)); err != nil {
			return fmt.Errorf("server: events of run %d: %w", id, err)
		}
		seq++
	}
	if _, err := tx.ExecContext(ctx, "UPDATE runs SET next_seq = ? WHERE id = ?", seq, id); err != nil {
		return fmt.Errorf("server: events of run %d: %w", id, err)
	}
	if last := evs[len(evs)-1]; finishCLI && last.Type == event.BuildFinished && last.Summary != nil {
		status := StatusSuccess
		if last.Summary.Failed > 0 || last.Summary.Skipped > 0 {
			status = StatusFailure
		}
		if err := finishRunTx(ctx, tx, id, status, "", last.Time); err != nil {
			return fmt.Errorf("server: events of run %d: %w", id, err)
		}
	}
	return tx.Commit()
}

// eventStageExplained is the event `mc build --explain --output=json`
// sends for each stage that ran, with the reason (cmd/mc/observe.go).
const eventStageExplained = "stage_explained"

func applyEvent(ctx context.Context, tx *sql.Tx, id int64, e event.Event) error {
	upsert := func(status string, set string, args ...any) error {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO stages (run, label, status) VALUES (?,?,?)", id, e.Label, status); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE stages SET status = ?"+set+" WHERE run = ? AND label = ?",
			append(append([]any{status}, args...), id, e.Label)...)
		return err
	}
	outputs := func() string {
		b, _ := json.Marshal(e.Outputs)
		if e.Outputs == nil {
			return "[]"
		}
		return string(b)
	}
	t := nanos(e.Time)
	switch e.Type {
	case event.BuildStarted:
		// The graph the build carries (--output=json, --report) is drawn
		// unless the server queried one before the build.
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET total = ? WHERE id = ?", e.Total, id); err != nil || len(e.Graph) == 0 {
			return err
		}
		var none bool
		if err := tx.QueryRowContext(ctx, "SELECT graph = '' FROM runs WHERE id = ?", id).Scan(&none); err != nil || !none {
			return err
		}
		b, err := json.Marshal(graphFromEvent(e.Graph))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE runs SET graph = ? WHERE id = ?", string(b), id)
		return err
	case event.StageStarted:
		return upsert(StageRunning, ", key = ?, started = ?, queued_ms = ?", e.Key, t, e.QueuedMS)
	case event.StageCached:
		return upsert(StageCached, ", key = ?, started = ?, finished = ?, remote = ?, outputs = ?", e.Key, t, t, e.Remote, outputs())
	case event.StageFinished:
		return upsert(StageBuilt, ", key = ?, finished = ?, duration_ms = ?, outputs = ?, started = CASE WHEN started = 0 THEN ? ELSE started END",
			e.Key, t, e.DurationMS, outputs(), t-e.DurationMS*1e6)
	case event.StageFailed:
		return upsert(StageFailed, ", finished = ?, duration_ms = ?, exit_code = ?, error = ?, started = CASE WHEN started = 0 THEN ? ELSE started END",
			t, e.DurationMS, e.ExitCode, e.Error, t-e.DurationMS*1e6)
	case event.StageSkipped:
		return upsert(StageSkipped, ", reason = ?", e.Reason)
	case eventStageExplained:
		// Why a stage ran (mc build --explain); no change of state.
		_, err := tx.ExecContext(ctx, "UPDATE stages SET reason = ? WHERE run = ? AND label = ?", e.Reason, id, e.Label)
		return err
	case event.Log:
		return boundLog(ctx, tx, id, e.Label)
	case event.BuildFinished:
		if e.Summary == nil {
			return nil
		}
		s := e.Summary
		crit, _ := json.Marshal(s.CriticalPath)
		if s.CriticalPath == nil {
			crit = []byte("[]")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET built = ?, cached = ?, failed = ?, skipped = ?, critical_path = ?,
			critical_ms = ? WHERE id = ?`, s.Built, s.Cached, s.Failed, s.Skipped, string(crit), s.CriticalPathMS, id); err != nil {
			return err
		}
	}
	return nil
}

// boundLog counts a new log line of label and, past logLimit, deletes the
// stage's oldest line.
func boundLog(ctx context.Context, tx *sql.Tx, id int64, label string) error {
	var n int
	var err error
	if label == "" {
		err = tx.QueryRowContext(ctx, "UPDATE runs SET log_lines = log_lines + 1 WHERE id = ? RETURNING log_lines", id).Scan(&n)
	} else {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO stages (run, label, status) VALUES (?,?,?)", id, label, StageRunning); err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, "UPDATE stages SET log_lines = log_lines + 1 WHERE run = ? AND label = ? RETURNING log_lines", id, label).Scan(&n)
	}
	if err != nil || n <= logLimit {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE run = ? AND seq = (SELECT MIN(seq) FROM events
		WHERE run = ? AND label = ? AND type = 'log')`, id, id, label)
	return err
}

func (st *store) stages(ctx context.Context, id int64) ([]*Stage, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT label, status, key, started, finished, duration_ms, queued_ms, exit_code,
		error, reason, remote, outputs, log_lines FROM stages WHERE run = ? ORDER BY started, label`, id)
	if err != nil {
		return nil, fmt.Errorf("server: stages of run %d: %w", id, err)
	}
	defer rows.Close()
	var out []*Stage
	for rows.Next() {
		var s Stage
		var started, finished int64
		var outputs string
		if err := rows.Scan(&s.Label, &s.Status, &s.Key, &started, &finished, &s.DurationMS, &s.QueuedMS, &s.ExitCode,
			&s.Error, &s.Reason, &s.Remote, &outputs, &s.LogLines); err != nil {
			return nil, fmt.Errorf("server: stages of run %d: %w", id, err)
		}
		s.Started, s.Finished = fromNanos(started), fromNanos(finished)
		_ = json.Unmarshal([]byte(outputs), &s.Outputs)
		out = append(out, &s)
	}
	return out, rows.Err()
}

// storedEvent is one row of the events table.
type storedEvent struct {
	Seq   int64
	Type  string
	Label string
	Data  string
}

// eventsAfter returns up to limit events of run id with seq > after.
func (st *store) eventsAfter(ctx context.Context, id, after int64, limit int) ([]storedEvent, error) {
	rows, err := st.db.QueryContext(ctx, "SELECT seq, type, label, data FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?", id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("server: events of run %d: %w", id, err)
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		if err := rows.Scan(&e.Seq, &e.Type, &e.Label, &e.Data); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// logLines returns the kept log lines of run id before seq, by label (""
// is the run's own log), in order.
func (st *store) logLines(ctx context.Context, id, before int64) (map[string][]event.Event, error) {
	rows, err := st.db.QueryContext(ctx, "SELECT data FROM events WHERE run = ? AND type = 'log' AND seq < ? ORDER BY seq", id, before)
	if err != nil {
		return nil, fmt.Errorf("server: logs of run %d: %w", id, err)
	}
	defer rows.Close()
	out := map[string][]event.Event{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var e event.Event
		if json.Unmarshal([]byte(data), &e) == nil {
			out[e.Label] = append(out[e.Label], e)
		}
	}
	return out, rows.Err()
}
