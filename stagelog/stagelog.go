// Package stagelog keeps the logs of a build's stages while they run,
// shows those of the stages that failed at the end of the summary, and
// stores them for `mc log`.
package stagelog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/sched"
)

// Failures you can read: the log of every stage that runs is kept while it
// runs (and dropped when it succeeds: a successful stage's log is stored
// with its result); a failed stage's log is repeated, with its command, in
// the summary after the progress display, and stored for `mc log`.

const (
	// failTailLines is how much of a failed stage's log the summary repeats.
	failTailLines = 20
	// maxKeptLog bounds the log kept of one running stage; beyond it the
	// oldest lines go (the end of a log is where the error is).
	maxKeptLog = 1 << 20
	// kvFailedRun holds, per workspace, the failed stages of its last build.
	kvFailedRun = "failed-run"
	// kvFailedLog holds, per workspace and label, the log of the stage's
	// last failure.
	kvFailedLog = "failed-log"
)

// Keeper is an event.Sink that passes every event on and keeps the log
// lines of the stages running, and of those that failed.
type Keeper struct {
	next    event.Sink
	mu      sync.Mutex
	running map[string]*keptLog
	failed  map[string]*keptLog
}

type keptLog struct {
	exit    int // the failed stage's exit code
	lines   []string
	size    int
	dropped int // lines dropped from the start
}

// NewKeeper returns a Keeper passing the events on to next.
func NewKeeper(next event.Sink) *Keeper {
	return &Keeper{next: next, running: map[string]*keptLog{}, failed: map[string]*keptLog{}}
}

func (k *Keeper) Event(e event.Event) {
	k.mu.Lock()
	switch e.Type {
	case event.Log:
		if e.Label != "" && !e.Cached {
			l := k.running[e.Label]
			if l == nil {
				l = &keptLog{}
				k.running[e.Label] = l
			}
			l.lines = append(l.lines, e.Line)
			l.size += len(e.Line) + 1
			for l.size > maxKeptLog && len(l.lines) > 1 {
				l.size -= len(l.lines[0]) + 1
				l.lines = l.lines[1:]
				l.dropped++
			}
		}
	case event.StageFinished, event.StageCached:
		delete(k.running, e.Label)
	case event.StageFailed:
		l := k.running[e.Label]
		if l == nil {
			l = &keptLog{}
		}
		delete(k.running, e.Label)
		l.exit = e.ExitCode
		k.failed[e.Label] = l
	}
	k.mu.Unlock()
	k.next.Event(e)
}

// log returns the kept log of a failed stage.
func (k *Keeper) log(label string) *keptLog {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failed[label]
}

func (l *keptLog) text() string {
	var b strings.Builder
	if l.dropped > 0 {
		fmt.Fprintf(&b, "(%d earlier lines not kept)\n", l.dropped)
	}
	for _, s := range l.lines {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

// FailedStage is one failure of a build, as the summary shows it and the
// kv table stores it.
type FailedStage struct {
	Label string     `json:"label"`
	Cmd   string     `json:"cmd"`
	Error string     `json:"error"`
	Log   cas.Digest `json:"log"`
	Time  time.Time  `json:"time"`
}

// FailedRun is the failures of one build.
type FailedRun struct {
	Command string        `json:"command"`
	Time    time.Time     `json:"time"`
	Stages  []FailedStage `json:"stages"`
}

// failures lists the failed stages of rep in label order.
func failures(ag *graph.ActionGraph, rep *sched.Report) []*graph.Action {
	var out []*graph.Action
	for _, a := range ag.Actions {
		if o := rep.Outcomes[a]; o != nil && o.Status == sched.StatusFailed {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label().Less(out[j].Label()) })
	return out
}

func stageCmd(t *graph.Target) string {
	if t == nil {
		return ""
	}
	return strings.Join(t.Cmds, " && ")
}

// Store stores the logs of the build's failed stages (as blobs in store)
// and which they were (in db's kv table, under the workspace root), for
// `mc log`. Every build replaces the list of the last build's failures, an
// empty one included.
func Store(ctx context.Context, store *cas.Store, db *cas.DB, root, command string, ag *graph.ActionGraph, rep *sched.Report, k *Keeper) error {
	run := FailedRun{Command: command, Time: time.Now(), Stages: []FailedStage{}}
	for _, a := range failures(ag, rep) {
		label := a.Label().String()
		f := FailedStage{Label: label, Cmd: stageCmd(a.Target), Time: rep.Outcomes[a].End}
		if err := rep.Outcomes[a].Err; err != nil {
			f.Error = err.Error()
		}
		if l := k.log(label); l != nil {
			d, err := store.PutBytes([]byte(l.text()))
			if err != nil {
				return fmt.Errorf("storing the log of %s: %w", label, err)
			}
			f.Log = d
		}
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if err := db.PutKV(ctx, kvFailedLog, root+"\x00"+label, b); err != nil {
			return err
		}
		run.Stages = append(run.Stages, f)
	}
	if len(run.Stages) == 0 {
		// A null build after a clean one writes nothing (a read is cheaper
		// than a write, which syncs the database).
		prev, err := db.GetKV(ctx, kvFailedRun, root)
		if err != nil {
			return err
		}
		var p FailedRun
		if prev != nil && json.Unmarshal(prev, &p) == nil && len(p.Stages) == 0 {
			return nil
		}
	}
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	return db.PutKV(ctx, kvFailedRun, root, b)
}

// Print is the end of a failed build's summary: each failed stage's
// command and the last lines of its log, in one block.
func Print(w io.Writer, getenv func(string) (string, bool), ag *graph.ActionGraph, rep *sched.Report, k *Keeper) {
	for _, a := range failures(ag, rep) {
		label := a.Label().String()
		fmt.Fprintf(w, "\nFAILED %s: %v\n", label, rep.Outcomes[a].Err)
		if c := stageCmd(a.Target); c != "" {
			fmt.Fprintf(w, "command: %s\n", Truncate(c, 300))
		}
		l := k.log(label)
		if l == nil || len(l.lines) == 0 {
			fmt.Fprintln(w, "(no output)")
			continue
		}
		lines := l.lines
		if len(lines) > failTailLines {
			fmt.Fprintf(w, "last %d lines of the log (all of it: mc log %s):\n", failTailLines, label)
			lines = lines[len(lines)-failTailLines:]
		} else {
			fmt.Fprintln(w, "log:")
		}
		for _, s := range lines {
			fmt.Fprintf(w, "  %s\n", s)
		}
		// 127 is the shell's "command not found"; a stage in an image
		// has the image's PATH, not the host's.
		if l.exit == 127 && a.Target != nil && a.Target.Image == "" {
			path, _ := getenv("PATH")
			home, _ := getenv("HOME")
			if h := sandboxPathHint(lines, path, home); h != "" {
				fmt.Fprintf(w, "hint: exit status 127 is \"command not found\".\n%s\n", h)
			}
		}
	}
}

// Truncate cuts s to n bytes (at a rune boundary), saying so.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf("… (%d more bytes)", len(s)-n)
}

// LastFailure is the stored last failure of label in the workspace at root,
// or nil.
func LastFailure(ctx context.Context, db *cas.DB, root, label string) (*FailedStage, error) {
	b, err := db.GetKV(ctx, kvFailedLog, root+"\x00"+label)
	if err != nil {
		return nil, errkind.Infra(err)
	}
	if b == nil {
		return nil, nil
	}
	var f FailedStage
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errkind.Infra(fmt.Errorf("reading the stored failure of %s: %w", label, err))
	}
	return &f, nil
}

// LastRun is the stored failures of the last build of the workspace at
// root; nil when no build is recorded.
func LastRun(ctx context.Context, db *cas.DB, root string) (*FailedRun, error) {
	b, err := db.GetKV(ctx, kvFailedRun, root)
	if err != nil {
		return nil, errkind.Infra(err)
	}
	if b == nil {
		return nil, nil
	}
	var run FailedRun
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, errkind.Infra(fmt.Errorf("reading the last build's failures: %w", err))
	}
	return &run, nil
}
