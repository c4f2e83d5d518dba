package ui

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/exec"
)

func feed(s exec.Sink) {
	now := time.Now()
	for _, e := range []exec.Event{
		{Type: exec.EventBuildStarted, Time: now, Total: 2},
		{Type: exec.EventStageStarted, Time: now, Label: "//a:x", Key: "sha256:abc"},
		{Type: exec.EventLog, Time: now, Label: "//a:x", Line: "hello"},
		{Type: exec.EventStageFinished, Time: now, Label: "//a:x", DurationMS: 1500},
		{Type: exec.EventStageCached, Time: now, Label: "//a:y", Key: "sha256:def"},
		{Type: exec.EventLog, Time: now, Label: "//a:y", Line: "stored", Cached: true},
		{Type: exec.EventBuildFinished, Time: now, Summary: &exec.SummaryCounts{Built: 1, Cached: 1}},
	} {
		s.Event(e)
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
	feed(NewText(&b, true, false))
	out := b.String()
	for _, want := range []string{"\x1b[", "[//a:x]\x1b[0m hello", "[0/2] 1 running · 0 cached · 0 failed · //a:x 0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("the progress line must be cleared at the end: %q", out)
	}
}

func TestJSONOneEventPerLine(t *testing.T) {
	var b bytes.Buffer
	feed(NewJSON(&b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	var e exec.Event
	if err := json.Unmarshal([]byte(lines[2]), &e); err != nil || e.Type != "log" || e.Line != "hello" || e.Label != "//a:x" {
		t.Errorf("line 3 = %s (%v)", lines[2], err)
	}
}
