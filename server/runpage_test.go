package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/event"
)

// Without Graphviz the page says so where the graph would be, and draws
// nothing by hand; with it (the positive control) the same page draws it.
func TestServeRunPageWithoutDot(t *testing.T) {
	needDot(t)
	dot, _ := exec.LookPath("dot")
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("no dot")
	id := ts.accept("push", "n-1", pushPayloadFor(repo, "main", sha))
	ts.waitRun(id, StatusSuccess)
	path := fmt.Sprintf("/runs/%d", id)

	t.Setenv("PATH", t.TempDir()) // no dot there; the run is over
	page := ts.get(path)
	if !strings.Contains(page, `<p class="error" id="graph-error">the graph is not drawn: Graphviz&#39;s dot is not installed on the server (apt-get install graphviz)</p>`) {
		t.Errorf("the page without dot does not say so:\n%s", page)
	}
	if strings.Contains(page, `<svg id="graph"`) {
		t.Error("a graph was drawn without dot")
	}

	t.Setenv("PATH", filepath.Dir(dot))
	page = ts.get(path)
	if !strings.Contains(page, `<svg id="graph"`) || strings.Contains(page, `id="graph-error"`) {
		t.Error("with dot, no graph")
	}
}

// A log downloads as a plain-text file: escape sequences removed, with
// timestamps when asked.
func TestServeLogDownload(t *testing.T) {
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("download")
	id := ts.accept("push", "d-1", pushPayloadFor(repo, "main", sha))
	ts.waitRun(id, StatusSuccess)
	resp, err := http.Get(fmt.Sprintf("%s/runs/%d/log?stage=//b:b&download=1&timestamps=1", ts.http.URL, id))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="run-1-b_b.log"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("downloaded log %q", body)
	}
	for i, want := range []string{"compiling <b> & more", "second line of b"} {
		ts, text, _ := strings.Cut(lines[i], " ")
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil || text != want {
			t.Errorf("line %d: %q, want a timestamp and %q", i+1, lines[i], want)
		}
	}
	if got := ts.get(fmt.Sprintf("/runs/%d/log", id)); !strings.Contains(got, "$ git fetch") {
		t.Errorf("the run's own log: %q", got)
	}
}

// A run reported from the CLI (mc build --report) draws the graph its
// build_started carries, every kind of edge; the events table does not
// keep a second copy of it.
func TestServeReportedRunGraph(t *testing.T) {
	needDot(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	post := func(path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ts.http.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s %s", path, resp.Status, b)
		}
		return b
	}
	var created struct{ ID int64 }
	if err := json.Unmarshal(post("/api/runs", `{"command":"build //..."}`), &created); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	evs := []event.Event{
		{Type: event.BuildStarted, Time: now, Total: 4, Graph: []event.GraphNode{
			{Label: "//a:a", Kind: "stage"},
			{Label: "//t:base", Kind: "image"},
			{Label: "//t:img", Kind: "image", Deps: []event.GraphEdge{{Label: "//a:a", Attr: "files"}, {Label: "//t:base", Attr: "base"}}},
			{Label: "//b:b", Kind: "stage", Deps: []event.GraphEdge{{Label: "//a:a", Attr: "srcs"}, {Label: "//a:a", Attr: "deps"}, {Label: "//t:img", Attr: "image"}}},
		}},
		{Type: event.StageFinished, Time: now, Label: "//a:a", DurationMS: 5},
		{Type: event.StageCached, Time: now, Label: "//t:base"},
		{Type: event.StageCached, Time: now, Label: "//t:img"},
		{Type: event.StageFinished, Time: now, Label: "//b:b", DurationMS: 5},
		{Type: event.BuildFinished, Time: now, Summary: &event.Summary{Built: 2, Cached: 2}},
	}
	var nd bytes.Buffer
	for _, e := range evs {
		b, _ := json.Marshal(e)
		nd.Write(append(b, '\n'))
	}
	post(fmt.Sprintf("/api/runs/%d/events", created.ID), nd.String())
	ts.waitRun(created.ID, StatusSuccess)
	page := ts.get(fmt.Sprintf("/runs/%d", created.ID))
	for _, want := range []string{
		`data-kind="files" data-from="//a:a" data-to="//t:img"`, `data-kind="base" data-from="//t:base" data-to="//t:img"`,
		`data-kind="srcs" data-from="//a:a" data-to="//b:b"`, `data-kind="deps" data-from="//a:a" data-to="//b:b"`,
		`data-kind="image" data-from="//t:img" data-to="//b:b"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the reported run's graph lacks %s", want)
		}
	}
	var data string
	if err := ts.s.st.db.QueryRow(`SELECT data FROM events WHERE run = ? AND type = 'build_started'`, created.ID).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(data, "graph") {
		t.Errorf("the stored build_started keeps the graph: %s", data)
	}
}
