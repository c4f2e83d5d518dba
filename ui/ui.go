// Package ui shows the build event stream to people: label-prefixed log
// lines (coloured on a terminal), a one-line progress display on a terminal,
// plain lines otherwise, or one JSON object per event for machines.
package ui

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/exec"
)

// JSON writes one JSON event per line.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON returns a sink writing JSON lines to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

// Event implements exec.Sink.
func (j *JSON) Event(e exec.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(e) // a closed stdout cannot be reported anywhere better
}

// Text is the human display.
type Text struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	verbose bool
	// cachedLogs shows the stored logs of cached stages (replayed, and
	// marked so); a null build is otherwise quiet.
	cachedLogs bool
	total      int
	done       int
	running    int
	cached     int
	failed     int
	drawn      bool
	lastDraw   time.Time
	started    map[string]time.Time // running stages, for the progress line
	shown      string               // the progress line on screen
	stop       chan struct{}
}

// NewText returns the human display; tty enables colours and the progress line.
func NewText(w io.Writer, tty, verbose bool) *Text {
	return &Text{w: w, tty: tty, verbose: verbose, started: map[string]time.Time{}}
}

// ShowCachedLogs makes the display replay the stored logs of cached
// stages, each line marked "(replayed)". -v implies it.
func (t *Text) ShowCachedLogs(on bool) {
	t.mu.Lock()
	t.cachedLogs = on
	t.mu.Unlock()
}

// tick redraws the progress line while stages run, so that a long stage
// shows its elapsed time. It ends at build_finished.
func (t *Text) tick(stop chan struct{}) {
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			t.mu.Lock()
			t.progress(true)
			t.mu.Unlock()
		}
	}
}

var colors = []string{"31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96"}

func (t *Text) prefix(label string) string {
	if !t.tty {
		return "[" + label + "] "
	}
	h := fnv.New32a()
	h.Write([]byte(label))
	return "\x1b[" + colors[h.Sum32()%uint32(len(colors))] + "m[" + label + "]\x1b[0m "
}

// Event implements exec.Sink.
func (t *Text) Event(e exec.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Type {
	case exec.EventBuildStarted:
		t.total = e.Total
		if t.tty && t.stop == nil {
			t.stop = make(chan struct{})
			go t.tick(t.stop)
		}
	case exec.EventStageStarted:
		t.running++
		t.started[e.Label] = e.Time
		if t.verbose || !t.tty {
			t.line(t.prefix(e.Label) + "started")
		}
	case exec.EventStageCached:
		t.done++
		t.cached++
		if t.verbose {
			t.line(t.prefix(e.Label) + "cached " + short(e.Key))
		}
	case exec.EventStageFinished:
		t.running--
		delete(t.started, e.Label)
		t.done++
		t.line(t.prefix(e.Label) + fmt.Sprintf("done in %s", ms(e.DurationMS)))
	case exec.EventStageFailed:
		if _, ok := t.started[e.Label]; ok {
			t.running--
			delete(t.started, e.Label)
		}
		t.done++
		t.failed++
		t.line(t.prefix(e.Label) + t.red("FAILED: "+e.Error))
	case exec.EventStageSkipped:
		t.done++
		if t.verbose {
			t.line(t.prefix(e.Label) + "skipped: " + e.Reason)
		}
	case exec.EventLog:
		if e.Cached {
			if !t.cachedLogs && !t.verbose {
				return
			}
			t.line(t.prefix(e.Label) + "(replayed) " + e.Line)
			break
		}
		t.line(t.prefix(e.Label) + e.Line)
	case exec.EventBuildFinished:
		if t.stop != nil {
			close(t.stop)
			t.stop = nil
		}
		t.clear()
		return
	}
	t.progress(false)
}

func (t *Text) red(s string) string {
	if t.tty {
		return "\x1b[1;31m" + s + "\x1b[0m"
	}
	return s
}

// line prints one line above the progress display.
func (t *Text) line(s string) {
	t.clear()
	fmt.Fprintln(t.w, s)
	t.progress(true)
}

func (t *Text) clear() {
	if t.tty && t.drawn {
		fmt.Fprint(t.w, "\r\x1b[K")
		t.drawn = false
	}
}

// progress redraws the status line, at most every 50 ms unless forced.
func (t *Text) progress(force bool) {
	if !t.tty || t.total == 0 {
		return
	}
	if !force && t.drawn && time.Since(t.lastDraw) < 50*time.Millisecond {
		return
	}
	line := fmt.Sprintf("[%d/%d] %d running · %d cached · %d failed", t.done, t.total, t.running, t.cached, t.failed)
	// The longest-running stage is the one a person waits for.
	var oldest string
	var since time.Time
	for l, st := range t.started {
		if oldest == "" || st.Before(since) || st.Equal(since) && l < oldest {
			oldest, since = l, st
		}
	}
	if oldest != "" {
		line += fmt.Sprintf(" · %s %ds", oldest, int(time.Since(since).Seconds()))
	}
	if t.drawn && line == t.shown {
		return
	}
	t.clear()
	fmt.Fprint(t.w, line)
	t.shown = line
	t.drawn, t.lastDraw = true, time.Now()
}

func ms(n int64) string { return Duration(time.Duration(n) * time.Millisecond) }

// Duration is the one way mc shows a duration to people: seconds with two
// decimals under 10 s, one under a minute, then minutes and seconds (and
// hours and minutes), so that columns of them compare at a glance.
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Duration(-d)
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

func short(key string) string {
	key = strings.TrimPrefix(key, "sha256:")
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
