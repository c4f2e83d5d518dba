// Package ui shows the build event stream to people: label-prefixed log
// lines (coloured on a terminal), a one-line progress display on a terminal,
// plain lines otherwise, or one JSON object per event for machines.
package ui

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mc-build/mc/event"
)

// JSON writes one JSON event per line.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON returns a sink writing JSON lines to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

// Event implements event.Sink.
func (j *JSON) Event(e event.Event) {
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
	drawn      int // lines of the progress block on screen (0: none)
	lastDraw   time.Time
	started    map[string]time.Time // running stages, for the progress block
	shown      string               // the progress block on screen
	stop       chan struct{}
	begin      time.Time // build_started, for the elapsed time
	// color is whether to colour labels and FAILED; it defaults to tty.
	color bool
	// size returns the terminal's columns and rows (0: unknown).
	size func() (cols, rows int)
}

// NewText returns the human display; tty enables colours and the live
// progress block (one line per running stage above a line of counts).
func NewText(w io.Writer, tty, verbose bool) *Text {
	return &Text{w: w, tty: tty, color: tty, verbose: verbose, started: map[string]time.Time{}}
}

// SetColor turns colours on or off (NO_COLOR, --color), independently of
// whether the progress block is drawn.
func (t *Text) SetColor(on bool) {
	t.mu.Lock()
	t.color = on
	t.mu.Unlock()
}

// SetSize gives the display the terminal's size, asked at each redraw so
// that a resized terminal is followed. Without it the block assumes 80x24.
func (t *Text) SetSize(size func() (cols, rows int)) {
	t.mu.Lock()
	t.size = size
	t.mu.Unlock()
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
	tk := time.NewTicker(100 * time.Millisecond)
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

// colors for labels: never red or yellow, which mean failure and warning.
var colors = []string{"32", "34", "35", "36", "92", "94", "95", "96"}

func (t *Text) prefix(label string) string {
	if !t.color {
		return "[" + label + "] "
	}
	h := fnv.New32a()
	h.Write([]byte(label))
	return "\x1b[" + colors[h.Sum32()%uint32(len(colors))] + "m[" + label + "]\x1b[0m "
}

// Event implements event.Sink.
func (t *Text) Event(e event.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Type {
	case event.BuildStarted:
		t.total = e.Total
		t.begin = e.Time
		if t.tty && t.stop == nil {
			t.stop = make(chan struct{})
			go t.tick(t.stop)
		}
	case event.StageStarted:
		t.running++
		t.started[e.Label] = e.Time
		if t.verbose || !t.tty {
			t.line(t.prefix(e.Label) + "started")
		}
	case event.StageCached:
		t.done++
		t.cached++
		if t.verbose {
			t.line(t.prefix(e.Label) + "cached " + short(e.Key))
		}
	case event.StageFinished:
		t.running--
		delete(t.started, e.Label)
		t.done++
		t.line(t.prefix(e.Label) + fmt.Sprintf("done in %s", ms(e.DurationMS)))
	case event.StageFailed:
		if _, ok := t.started[e.Label]; ok {
			t.running--
			delete(t.started, e.Label)
		}
		t.done++
		t.failed++
		t.line(t.prefix(e.Label) + t.red("FAILED: "+e.Error))
	case event.StageSkipped:
		t.done++
		if t.verbose {
			t.line(t.prefix(e.Label) + "skipped: " + e.Reason)
		}
	case event.Log:
		if e.Cached {
			if !t.cachedLogs && !t.verbose {
				return
			}
			t.line(t.prefix(e.Label) + "(replayed) " + e.Line)
			break
		}
		t.line(t.prefix(e.Label) + e.Line)
	case event.BuildFinished:
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
	if t.color {
		return "\x1b[1;31m" + s + "\x1b[0m"
	}
	return s
}

// line prints one line above the progress display. The block is drawn
// again at most every 50 ms: a stage printing thousands of lines does not
// redraw it thousands of times (the ticker brings it back meanwhile).
func (t *Text) line(s string) {
	t.clear()
	fmt.Fprintln(t.w, s)
	t.progress(false)
}

func (t *Text) clear() {
	if !t.tty || t.drawn == 0 {
		return
	}
	// The cursor is at the end of the block's last line: back to the start
	// of its first, and erase to the end of the screen.
	fmt.Fprint(t.w, "\r")
	if t.drawn > 1 {
		fmt.Fprintf(t.w, "\x1b[%dA", t.drawn-1)
	}
	fmt.Fprint(t.w, "\x1b[J")
	t.drawn = 0
}

// progress redraws the block, at most every 50 ms unless forced.
func (t *Text) progress(force bool) {
	if !t.tty || t.total == 0 {
		return
	}
	if !force && time.Since(t.lastDraw) < 50*time.Millisecond {
		return
	}
	cols, rows := 80, 24
	if t.size != nil {
		if c, r := t.size(); c > 0 && r > 0 {
			cols, rows = c, r
		}
	}
	block := t.block(time.Now(), cols, rows)
	if t.drawn > 0 && block == t.shown {
		return
	}
	t.clear()
	fmt.Fprint(t.w, block)
	t.shown = block
	t.drawn, t.lastDraw = strings.Count(block, "\n")+1, time.Now()
}

// block is the progress display: one line per running stage, longest
// running first, as many as fit in half the terminal's rows, then a line
// of counts. No line reaches the last column, so none ever wraps.
func (t *Text) block(now time.Time, cols, rows int) string {
	type run struct {
		label string
		since time.Time
	}
	runs := make([]run, 0, len(t.started))
	for l, st := range t.started {
		runs = append(runs, run{l, st})
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].since.Equal(runs[j].since) {
			return runs[i].since.Before(runs[j].since)
		}
		return runs[i].label < runs[j].label
	})
	room := max(rows/2-1, 1) // stage lines; the rest of the screen keeps the log
	var lines []string
	for i, r := range runs {
		if i == room-1 && len(runs) > room {
			lines = append(lines, fmt.Sprintf("  … and %d more running", len(runs)-i))
			break
		}
		d := Duration(now.Sub(r.since))
		// The label is cut from the left: its end names the stage.
		lines = append(lines, "  "+cutLeft(r.label, cols-3-len(d)-2)+"  "+d)
	}
	elapsed := ""
	if !t.begin.IsZero() {
		elapsed = " · " + Duration(now.Sub(t.begin))
	}
	counts := fmt.Sprintf("[%d/%d] %d running · %d cached · %d failed%s", t.done, t.total, t.running, t.cached, t.failed, elapsed)
	lines = append(lines, cut(counts, cols-1))
	return strings.Join(lines, "\n")
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// cutLeft shortens s to at most n runes from the left: "…/pkg:stage".
func cutLeft(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return ""
	}
	r := []rune(s)
	return "…" + string(r[len(r)-(n-1):])
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
