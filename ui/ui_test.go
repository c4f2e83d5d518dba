package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mc-build/mc/event"
)

func feed(s event.Sink) { feedPaced(s, 0) }

// feedPaced waits pace between events: the live display redraws at most
// every 50 ms.
func feedPaced(s event.Sink, pace time.Duration) {
	now := time.Now()
	for _, e := range []event.Event{
		{Type: event.BuildStarted, Time: now, Total: 2},
		{Type: event.StageStarted, Time: now, Label: "//a:x", Key: "sha256:abc"},
		{Type: event.Log, Time: now, Label: "//a:x", Line: "hello"},
		{Type: event.StageFinished, Time: now, Label: "//a:x", DurationMS: 1500},
		{Type: event.StageCached, Time: now, Label: "//a:y", Key: "sha256:def"},
		{Type: event.Log, Time: now, Label: "//a:y", Line: "stored", Cached: true},
		{Type: event.BuildFinished, Time: now, Summary: &event.Summary{Built: 1, Cached: 1}},
	} {
		s.Event(e)
		time.Sleep(pace)
	}
}

func TestTextPlain(t *testing.T) {
	var b bytes.Buffer
	feed(NewText(&b, false, false))
	want := "[//a:x] started\n[//a:x] hello\n[//a:x] done in 1.50s\n"
	if b.String() != want {
		t.Errorf("plain output:\n%q\nwant\n%q", b.String(), want)
	}
}

// TestTextCachedLogs: a cached stage's stored log is shown only when asked
// for, and then marked as replayed.
func TestTextCachedLogs(t *testing.T) {
	var b bytes.Buffer
	txt := NewText(&b, false, false)
	txt.ShowCachedLogs(true)
	feed(txt)
	if !strings.Contains(b.String(), "[//a:y] (replayed) stored\n") {
		t.Errorf("replayed log missing or unmarked:\n%s", b.String())
	}
	b.Reset()
	feed(NewText(&b, false, true)) // -v implies it
	if !strings.Contains(b.String(), "[//a:y] (replayed) stored\n") {
		t.Errorf("-v: replayed log missing:\n%s", b.String())
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{441625 * time.Nanosecond, "0.00s"},
		{2036 * time.Millisecond, "2.04s"},
		{12345 * time.Millisecond, "12.3s"},
		{61500 * time.Millisecond, "1m02s"},
		{3*time.Hour + 29*time.Minute + 40*time.Second, "3h30m"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestTextTTY(t *testing.T) {
	var b bytes.Buffer
	feedPaced(NewText(&b, true, false), 60*time.Millisecond)
	out := b.String()
	for _, want := range []string{"\x1b[", "[//a:x]\x1b[0m hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q:\n%q", want, out)
		}
	}
	// The running stage with its time, above the counters (the times
	// depend on the machine's load, not their form).
	if !regexp.MustCompile(`  //a:x  \d+\.\d\ds\n\[0/2\] 1 running · 0 cached · 0 failed · \d+\.\d\ds`).MatchString(out) {
		t.Errorf("tty output lacks the running stage's line above the counters:\n%q", out)
	}
	if !strings.Contains(out, "\r\x1b[1A\x1b[J") {
		t.Errorf("a two-line progress block must be cleared in full: %q", out)
	}
	if i := strings.LastIndex(out, "running ·"); i < 0 || !strings.Contains(out[i:], "\r\x1b[J") {
		t.Errorf("the progress block must be cleared at the end: %q", out)
	}
}

// TestTextColor: NO_COLOR / --color=never keep the live block but drop the
// colours; healthy labels are never red (31, 91) or yellow (33, 93).
func TestTextColor(t *testing.T) {
	var b bytes.Buffer
	txt := NewText(&b, true, false)
	txt.SetColor(false)
	feed(txt)
	if out := b.String(); strings.Contains(out, "\x1b[3") || strings.Contains(out, "\x1b[9") || !strings.Contains(out, "[//a:x] hello") {
		t.Errorf("colour codes without colour:\n%q", out)
	}
	for i := 0; i < 200; i++ {
		p := (&Text{color: true}).prefix(fmt.Sprintf("//pkg%d:stage", i))
		for _, bad := range []string{"\x1b[31m", "\x1b[33m", "\x1b[91m", "\x1b[93m"} {
			if strings.HasPrefix(p, bad) {
				t.Fatalf("label coloured %q", p)
			}
		}
	}
}

// TestBlock: one line per running stage, longest running first, cut to
// the width so that no line reaches the last column, at 50 and 120 columns.
func TestBlock(t *testing.T) {
	now := time.Now()
	txt := NewText(io.Discard, true, false)
	txt.total, txt.done, txt.running, txt.begin = 40, 3, 5, now.Add(-75*time.Second)
	long := "//services/payments/api/internal/generated:protobuf_go_sources"
	txt.started = map[string]time.Time{
		"//a:short":  now.Add(-2 * time.Second),
		long:         now.Add(-62 * time.Second),
		"//b:middle": now.Add(-10 * time.Second),
		"//c:new":    now.Add(-100 * time.Millisecond),
		"//d:newer":  now.Add(-50 * time.Millisecond),
	}
	for _, cols := range []int{50, 120} {
		block := txt.block(now, cols, 40)
		lines := strings.Split(block, "\n")
		if len(lines) != 6 {
			t.Fatalf("%d cols: %d lines, want 5 stages and the counts:\n%s", cols, len(lines), block)
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n >= cols {
				t.Errorf("%d cols: line of %d runes would wrap: %q", cols, n, l)
			}
		}
		if !strings.HasSuffix(lines[0], ":protobuf_go_sources  1m02s") || !strings.HasPrefix(lines[1], "  //b:middle  10.0s") {
			t.Errorf("%d cols: not longest first, or the label's end lost:\n%s", cols, block)
		}
		if !strings.HasPrefix(lines[5], "[3/40] 5 running · 0 cached · 0 failed") {
			t.Errorf("%d cols: counts line %q", cols, lines[5])
		}
	}
	if l := strings.Split(txt.block(now, 120, 40), "\n")[0]; l != "  "+long+"  1m02s" {
		t.Errorf("at 120 columns the label fits whole: %q", l)
	}
	// A short terminal: as many as fit, then how many more.
	block := txt.block(now, 120, 8)
	if lines := strings.Split(block, "\n"); len(lines) != 4 || lines[2] != "  … and 3 more running" {
		t.Errorf("8 rows:\n%s", block)
	}
}

func TestJSONOneEventPerLine(t *testing.T) {
	var b bytes.Buffer
	feed(NewJSON(&b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	var e event.Event
	if err := json.Unmarshal([]byte(lines[2]), &e); err != nil || e.Type != "log" || e.Line != "hello" || e.Label != "//a:x" {
		t.Errorf("line 3 = %s (%v)", lines[2], err)
	}
}

// TestTextChattyStage: a stage printing many lines at once does not redraw
// the block after each one.
func TestTextChattyStage(t *testing.T) {
	var b bytes.Buffer
	txt := NewText(&b, true, false)
	now := time.Now()
	txt.Event(event.Event{Type: event.BuildStarted, Time: now, Total: 1})
	txt.Event(event.Event{Type: event.StageStarted, Time: now, Label: "//a:x"})
	for i := 0; i < 2000; i++ {
		txt.Event(event.Event{Type: event.Log, Time: now, Label: "//a:x", Line: fmt.Sprint("line ", i)})
	}
	txt.Event(event.Event{Type: event.BuildFinished, Time: now})
	out := b.String()
	if n := strings.Count(out, "[0/1] 1 running"); n > 50 {
		t.Errorf("the block was drawn %d times for 2000 lines", n)
	}
	if !strings.Contains(out, "line 1999\n") {
		t.Errorf("lines lost")
	}
}
