package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sectionsTop is a script returning the top (page coordinates) of the
// failure summary and of every other part of the run page.
const sectionsTop = `(() => {
  const top = el => el ? el.getBoundingClientRect().top + window.scrollY : -1;
  const out = {failure: top(document.getElementById('failure'))};
  for (const [k, s] of Object.entries({facts: 'dl.facts', graph: '#graph-box', timeline: '#timeline-box', stages: '#stages', logs: '#logs'})) out[k] = top(document.querySelector(s));
  // Everything in <main> above the summary other than the run's title.
  out.above = [...document.querySelectorAll('main *')].filter(e => e instanceof HTMLElement && e.offsetParent !== null && top(e) < out.failure &&
    !e.closest('.runhead') && !e.contains(document.getElementById('failure'))).map(e => e.tagName + '.' + e.className);
  return out;
})()`

type tops struct {
	Failure, Facts, Graph, Timeline, Stages, Logs float64
	Above                                         []string
}

// checkFirst fails unless the failure summary is the first thing under the
// run's title, in the first screen, above every other part of the page.
func checkFirst(t *testing.T, p tops) {
	t.Helper()
	if p.Failure < 0 {
		t.Fatal("no failure summary")
	}
	if p.Failure > 200 {
		t.Errorf("the failure summary starts %.0f px down", p.Failure)
	}
	for name, y := range map[string]float64{"facts": p.Facts, "graph": p.Graph, "timeline": p.Timeline, "stages": p.Stages, "logs": p.Logs} {
		if y >= 0 && y <= p.Failure {
			t.Errorf("%s (at %.0f px) is above the failure summary (at %.0f px)", name, y, p.Failure)
		}
	}
	if len(p.Above) > 0 {
		t.Errorf("above the failure summary: %v", p.Above)
	}
}

// A failed run's page starts with the failed stage, its last log lines and
// a link into its full log; the link opens the log at that line and marks
// it. Notes of a stage are separate. Search keeps only matching lines.
func TestServeRunPageFailureFirst(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("fails")
	ts.touch("fail-" + sha)
	id := ts.accept("push", "f-1", pushPayloadFor(repo, "main", sha))
	ts.waitRun(id, StatusFailure)

	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	p := run(t, ctx, "positions", chromedp.Evaluate[tops](sectionsTop))
	checkFirst(t, p)
	summary := run(t, ctx, "summary", chromedp.Evaluate[string](`document.getElementById('failure').innerText`))
	for _, want := range []string{"1 failed stage", "//b:b", "exit 2", "exit status 2", "compiling <b> & more", "second line of b", "these lines in the full log"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the failure summary lacks %q:\n%s", want, summary)
		}
	}
	if strings.Contains(summary, "b_test") {
		t.Errorf("the summary lists a stage that did not fail:\n%s", summary)
	}
	// Notes do not run together.
	notes := `(l => [...document.querySelectorAll('#stages tr[data-label="' + l + '"] td.notes > div')].map(d => d.className + ':' + d.textContent).join('|'))`
	if got := run(t, ctx, "notes", chromedp.Evaluate[string](notes+`('//b:b')`)); got != "err:exit status 2" {
		t.Errorf("notes of //b:b: %q", got)
	}
	if got := run(t, ctx, "notes", chromedp.Evaluate[string](notes+`('//b:b_test')`)); got != "why:a dependency failed" {
		t.Errorf("notes of //b:b_test: %q", got)
	}

	// The link into the full log: the log opens at the summary's lines,
	// marked (a range, #ANCHOR-LN-LM).
	tailN := run(t, ctx, "tail lines", chromedp.Evaluate[int](`document.querySelectorAll('#failure pre.tail a.tl').length`))
	if tailN < 2 {
		t.Fatalf("the summary shows %d lines of //b:b's log, want 2 or more", tailN)
	}
	run(t, ctx, "close the log", chromedp.Evaluate[bool](`document.querySelector('details.log pre[data-label="//b:b"]').closest('details').open = false`))
	run(t, ctx, "follow the link", chromedp.Click(chromedp.CSS(`#failure a.full-log`)))
	line := `document.getElementById('log-.2f.2fb.3ab-L1')`
	run(t, ctx, "marked lines", chromedp.Poll[bool](fmt.Sprintf(`%s.classList.contains('hl') && %s.closest('details').open && location.hash === '#log-.2f.2fb.3ab-L1-L%d' && document.querySelectorAll('.line.hl').length === %d`, line, line, tailN, tailN), chromedp.WithPollingTimeout(5*time.Second)))
	if in := run(t, ctx, "in view", chromedp.Evaluate[bool](`(r => r.top >= 0 && r.bottom <= innerHeight)(`+line+`.getBoundingClientRect())`)); !in {
		t.Error("the linked line is not in view")
	}
	if ts := run(t, ctx, "timestamp", chromedp.Evaluate[string](line+`.querySelector('.ts').textContent`)); len(ts) != len("15:04:05.000") {
		t.Errorf("line timestamp %q", ts)
	}
	// A link to line 2 loaded in a new page: marked too.
	run(t, ctx, "line 2", chromedp.Navigate(fmt.Sprintf("%s/runs/%d#log-.2f.2fb.3ab-L2", ts.http.URL, id)))
	run(t, ctx, "line 2 marked", chromedp.Poll[bool](`document.getElementById('log-.2f.2fb.3ab-L2').classList.contains('hl') && document.querySelectorAll('.line.hl').length === 1`, chromedp.WithPollingTimeout(5*time.Second)))
	// Shift-click on line 1's number marks lines 1 to 2 and links to them.
	run(t, ctx, "shift-click", chromedp.Evaluate[bool](`document.querySelector('#log-\\.2f\\.2fb\\.3ab-L1 a.ln').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, shiftKey: true}))`))
	run(t, ctx, "range marked", chromedp.Poll[bool](`location.hash === '#log-.2f.2fb.3ab-L1-L2' && [...document.querySelectorAll('.line.hl')].map(l => l.id).join(' ') === 'log-.2f.2fb.3ab-L1 log-.2f.2fb.3ab-L2'`, chromedp.WithPollingTimeout(5*time.Second)))

	// Search: only lines with the text stay visible.
	run(t, ctx, "search", chromedp.SendKeys(chromedp.CSS(`#log-search`), "SECOND"))
	visible := `[...document.querySelectorAll('#logs .line')].filter(l => l.offsetParent !== null).map(l => l.querySelector('.tx').textContent)`
	run(t, ctx, "filtered", chromedp.Poll[bool](visible+`.length === 1`, chromedp.WithPollingTimeout(5*time.Second)))
	if got := run(t, ctx, "visible lines", chromedp.Evaluate[[]string](visible)); len(got) != 1 || got[0] != "second line of b" {
		t.Errorf("lines shown for 'SECOND': %q", got)
	}
	if got := run(t, ctx, "count", chromedp.Evaluate[string](`document.getElementById('log-matches').textContent`)); got != "1 matching line" {
		t.Errorf("match count %q", got)
	}
	run(t, ctx, "clear", chromedp.Evaluate[bool](`(s => { s.value = ''; return s.dispatchEvent(new Event('input')); })(document.getElementById('log-search'))`))
	if n := run(t, ctx, "all lines", chromedp.Evaluate[int](visible+`.length`)); n < 4 {
		t.Errorf("%d lines visible after clearing the search", n)
	}
}

// A run that stops at an error in a BUILD file shows it first, as
// file:line:col and message, linked to the log line that says it.
func TestServeRunPageEvalErrorFirst(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	sha := repo.commit("bad build file")
	ts.touch("evalerrb-" + sha)
	id := ts.accept("push", "v-1", pushPayloadFor(repo, "main", sha))
	ts.waitRun(id, StatusFailure)

	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	p := run(t, ctx, "positions", chromedp.Evaluate[tops](sectionsTop))
	checkFirst(t, p)
	pos := run(t, ctx, "position", chromedp.Evaluate[string](`document.querySelector('#failure .eval-error code.pos').textContent`))
	msg := run(t, ctx, "message", chromedp.Evaluate[string](`document.querySelector('#failure .eval-error .msg').textContent`))
	if pos != "b/BUILD.mc:3:7" || msg != "stage: undefined: frob" {
		t.Errorf("evaluation error %q %q", pos, msg)
	}
	run(t, ctx, "follow", chromedp.Click(chromedp.CSS(`#failure .eval-error a`)))
	run(t, ctx, "marked", chromedp.Poll[bool](`(l => l && l.classList.contains('hl') && l.textContent.includes('undefined: frob'))(document.querySelector('.line.hl'))`, chromedp.WithPollingTimeout(5*time.Second)))
}

// The graph draws every kind of edge, each with its arrowhead.
func TestServeRunPageGraphEdgeKinds(t *testing.T) {
	needDot(t)
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	if err := os.WriteFile(filepath.Join(ts.fakeDir, "query.json"), []byte(`[
{"label":"//a:a","kind":"stage rule","attrs":{"deps":[],"srcs":["//a:a.txt"]}},
{"label":"//a:a.txt","kind":"source file"},
{"label":"//a:a.out","kind":"generated file","generating_rule":"//a:a"},
{"label":"//b:b","kind":"stage rule","attrs":{"deps":["//a:a"],"srcs":["//a:a.out"],"image":"//b:img"}},
{"label":"//b:base","kind":"image rule","attrs":{"base":"debian:12","files":{"/etc/a":"//a:a.txt"}}},
{"label":"//b:img","kind":"image rule","attrs":{"base":"//b:base","files":{"/bin/a":"//a:a.out"}}},
{"label":"//b:b_test","kind":"stage rule","attrs":{"deps":["//b:b"]}}
]`), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := repo.commit("graph")
	id := ts.accept("push", "g-1", pushPayloadFor(repo, "main", sha))
	ts.waitRun(id, StatusSuccess)
	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	kinds := run(t, ctx, "edges", chromedp.Evaluate[map[string]int](`(() => {
  const n = {};
  for (const p of document.querySelectorAll('#graph path.edge')) {
    const m = document.querySelector(p.getAttribute('marker-end').slice(4, -1));
    const head = m && m.querySelector('path');
    if (!head || getComputedStyle(m).fill === 'none' || p.getTotalLength() < 10) continue; // no visible arrowhead or line
    n[p.dataset.kind] = (n[p.dataset.kind] || 0) + 1;
  }
  return n;
})()`))
	want := map[string]int{"deps": 2, "srcs": 1, "image": 1, "base": 1, "files": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("edges with arrowheads by kind %v, want %v", kinds, want)
	}
	// The five rules, and the deploy stage //b:ship the events name.
	if n := run(t, ctx, "nodes", chromedp.Evaluate[int](`document.querySelectorAll('#graph g.node').length`)); n != 6 {
		t.Errorf("%d nodes, want 6", n)
	}
	if n := run(t, ctx, "legend", chromedp.Evaluate[int](`document.querySelectorAll('.legend .ekey').length`)); n != len(edgeKinds) {
		t.Errorf("the legend names %d kinds of edges", n)
	}
}

// While a build runs, the page follows it without a reload: the counters,
// the table, the graph and the timeline change, and the counters are the
// table's rows by state at every change (a MutationObserver checks each).
func TestServeRunPageLive(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
	sha := repo.commit("live")
	ts.touch("hold-" + sha)
	id := ts.accept("push", "l-1", pushPayloadFor(repo, "main", sha))
	ts.waitFile("started-" + sha)
	// The table holds //a:a cached and //b:b running before the page loads.
	for deadline := time.Now().Add(10 * time.Second); len(ts.run(id).Stages) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run's first stages were not recorded")
		}
	}
	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	counters := `['built','cached','failed','running','skipped'].map(k => k + '=' + document.getElementById('n-' + k).textContent).join(' ')`
	table := `['built','cached','failed','running','skipped'].map(k => k + '=' + document.querySelectorAll('#stages tbody tr[data-state="' + k + '"]').length).join(' ')`
	if c, tb := run(t, ctx, "counters", chromedp.Evaluate[string](counters)), run(t, ctx, "table", chromedp.Evaluate[string](table)); c != tb || c != "built=0 cached=1 failed=0 running=1 skipped=0" {
		t.Errorf("as served: counters %q, table %q", c, tb)
	}
	run(t, ctx, "observer", chromedp.Evaluate[bool](`(() => {
  window.mcMarker = true;
  window.mcChecks = 0;
  window.mcBad = [];
  const check = () => {
    window.mcChecks++;
    const c = `+counters+`, t = `+table+`;
    if (c !== t) window.mcBad.push(c + ' vs ' + t);
  };
  new MutationObserver(check).observe(document.getElementById('stages'), {subtree: true, childList: true, attributes: true, characterData: true});
  new MutationObserver(check).observe(document.getElementById('counts'), {subtree: true, childList: true, characterData: true});
  return true;
})()`))
	timelineBars := `[...document.querySelectorAll('#timeline g.bar')].map(g => g.dataset.label + ':' + g.getAttribute('class')).join(' ')`
	before := run(t, ctx, "timeline", chromedp.Evaluate[string](timelineBars))
	if !strings.Contains(before, "//b:b:bar st-running") {
		t.Errorf("timeline as served: %q, want //b:b running", before)
	}
	ts.touch("gate-" + sha)
	// //b:b built, //b:b_test running (held): no reload (the marker stays).
	run(t, ctx, "live counters", chromedp.Poll[bool](`window.mcMarker === true && `+counters+` === 'built=1 cached=1 failed=0 running=1 skipped=0'`, chromedp.WithPollingTimeout(15*time.Second)))
	run(t, ctx, "live timeline", chromedp.Poll[bool](`window.mcMarker === true && (b => b.includes('//b:b:bar st-built') && b.includes('//b:b_test:bar st-running'))(`+timelineBars+`)`, chromedp.WithPollingTimeout(15*time.Second)))
	if cls := run(t, ctx, "graph node", chromedp.Evaluate[string](`document.querySelector('#graph g.node[data-label="//b:b_test"]').getAttribute('class')`)); cls != "node st-running" {
		t.Errorf("//b:b_test drawn %q", cls)
	}
	// The running bar grows while nothing else happens.
	width := `+document.querySelector('#timeline g.bar[data-label="//b:b_test"] rect').getAttribute('width')`
	w1 := run(t, ctx, "bar", chromedp.Evaluate[float64](width))
	run(t, ctx, "bar grows", chromedp.Poll[bool](width+` > `+fmt.Sprint(w1)+` || `+width+` >= 598`, chromedp.WithPollingTimeout(10*time.Second)))
	if bad := run(t, ctx, "mismatches", chromedp.Evaluate[[]string](`window.mcBad`)); len(bad) > 0 {
		t.Errorf("the counters disagreed with the table: %q", bad)
	}
	if n := run(t, ctx, "checks", chromedp.Evaluate[int](`window.mcChecks`)); n < 2 {
		t.Errorf("the table and counters changed %d times live", n)
	}
	ts.touch("release-" + sha)
	eventually(t, ctx, "finished", `!window.mcMarker && document.getElementById('run-status').textContent === 'success'`)
	if c, tb := run(t, ctx, "counters", chromedp.Evaluate[string](counters)), run(t, ctx, "table", chromedp.Evaluate[string](table)); c != tb || c != "built=3 cached=1 failed=0 running=0 skipped=0" {
		t.Errorf("finished (with the deploy stage): counters %q, table %q", c, tb)
	}
	ts.waitRun(id, StatusSuccess)
}

// A stage that fails while the page is open joins the failure summary at
// once, before the run ends and the page reloads (what the page showed is
// kept in sessionStorage, which the reload keeps).
func TestServeRunPageLiveFailure(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
	sha := repo.commit("live failure")
	ts.touch("fail-" + sha)
	id := ts.accept("push", "lf-1", pushPayloadFor(repo, "main", sha))
	ts.waitFile("started-" + sha)
	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	if hidden := run(t, ctx, "summary", chromedp.Evaluate[bool](`document.getElementById('failure').hidden`)); !hidden {
		t.Error("a failure summary before anything failed")
	}
	run(t, ctx, "observer", chromedp.Evaluate[bool](`(() => {
  sessionStorage.removeItem('mcLive');
  sessionStorage.removeItem('mcLiveHref');
  window.mcMarker = true;
  const box = document.getElementById('failure');
  new MutationObserver(() => {
    if (window.mcMarker && !box.hidden && box.querySelector('.failed-stage')) {
      sessionStorage.setItem('mcLive', box.innerText);
      const a = box.querySelector('a.full-log');
      if (a) sessionStorage.setItem('mcLiveHref', a.getAttribute('href'));
    }
  }).observe(box, {subtree: true, childList: true, attributes: true});
  return true;
})()`))
	ts.touch("gate-" + sha)
	eventually(t, ctx, "reloaded", `!window.mcMarker && document.getElementById('run-status').textContent === 'failure'`)
	live := run(t, ctx, "live summary", chromedp.Evaluate[string](`sessionStorage.getItem('mcLive') || ''`))
	for _, want := range []string{"//b:b", "exit status 2", "second line of b", "these lines in the full log"} {
		if !strings.Contains(live, want) {
			t.Errorf("the live failure summary lacks %q:\n%s", want, live)
		}
	}
	if href := run(t, ctx, "live link", chromedp.Evaluate[string](`sessionStorage.getItem('mcLiveHref') || ''`)); href != "#log-.2f.2fb.3ab-L1-L2" {
		t.Errorf("the live summary links to %q, want the range of its lines #log-.2f.2fb.3ab-L1-L2", href)
	}
}
