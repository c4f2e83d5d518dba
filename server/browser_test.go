package server

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium (Debian package chromium) for the
// test. Missing Chromium fails the test (except with -short): the web
// interface is part of the contract.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if testing.Short() {
			t.Skip("chromium not installed (-short)")
		}
		t.Fatal("the browser tests need Chromium: apt-get install chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// The runs page, then a live run page: the graph is drawn, log lines
// arrive while the build runs (over Server-Sent Events, without a reload),
// the graph's colours follow the stages, and the page is not blank.
func TestServeBrowser(t *testing.T) {
	ctx := browser(t)
	repo := newTestRepo(t)
	ts := startServer(t, filepath.Join(t.TempDir(), "data"), nil, gated)
	sha := repo.commit("browser")
	id := ts.accept("push", "b-1", pushPayloadFor(repo, "main", sha))
	ts.waitFile("started-" + sha)

	run(t, ctx, "runs page", chromedp.Navigate(ts.http.URL+"/"))
	if n := run(t, ctx, "runs rows", chromedp.Evaluate[int](`document.querySelectorAll('#runs tr.run').length`)); n != 1 {
		t.Fatalf("runs page shows %d runs, want 1", n)
	}
	if st := run(t, ctx, "run status", chromedp.Evaluate[string](`document.querySelector('#runs tr.run .badge').textContent`)); st != "running" {
		t.Errorf("runs page: status %q, want running", st)
	}

	run(t, ctx, "run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", ts.http.URL, id)))
	if n := run(t, ctx, "graph", chromedp.Evaluate[int](`document.querySelectorAll('#graph g.node').length`)); n != 3 {
		t.Fatalf("graph has %d nodes, want 3", n)
	}
	// Rendered so, or changed so by the live events (the page may have
	// been served before the server stored stage_started).
	run(t, ctx, "running node", chromedp.Poll[bool](`document.querySelector('#graph g.node[data-label="//b:b"]').getAttribute('class') === 'node st-running'`, chromedp.WithPollingTimeout(15*time.Second)))
	logText := `(document.querySelector('#logs pre[data-label="//b:b"]') || {textContent: ''}).textContent`
	run(t, ctx, "first log line", chromedp.Poll[bool](logText+`.includes('compiling <b> & more')`, chromedp.WithPollingTimeout(15*time.Second)))
	if colour := run(t, ctx, "ansi colour", chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#logs pre[data-label="//b:b"] .fg32')).color`)); colour != "rgb(63, 185, 80)" {
		t.Errorf("ANSI green rendered as %q", colour)
	}
	// A marker that a reload would erase: the next lines must arrive live.
	run(t, ctx, "marker", chromedp.Evaluate[bool](`window.mcMarker = true`))
	if got := run(t, ctx, "log", chromedp.Evaluate[string](logText)); bytes.Contains([]byte(got), []byte("second line")) {
		t.Fatal("the second line is shown before the build printed it")
	}
	ts.touch("gate-" + sha)
	run(t, ctx, "live log line", chromedp.Poll[bool](`window.mcMarker === true && `+logText+`.includes('second line of b')`, chromedp.WithPollingTimeout(15*time.Second)))
	run(t, ctx, "live stage state", chromedp.Poll[bool](`document.querySelector('#graph g.node[data-label="//b:b_test"]').getAttribute('class') !== 'node st-none'`, chromedp.WithPollingTimeout(15*time.Second)))
	// At the end the page reloads with the finished run: timeline and all.
	eventually(t, ctx, "finished run page", `!window.mcMarker && document.readyState === 'complete' && document.getElementById('run-status').textContent === 'success' && !!document.getElementById('timeline')`)
	if cls := run(t, ctx, "node", chromedp.Evaluate[string](`document.querySelector('#graph g.node[data-label="//b:b"]').getAttribute('class')`)); cls != "node st-built" {
		t.Errorf("//b:b is drawn %q after the run, want built", cls)
	}

	shot := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	if p := os.Getenv("MC_TEST_SCREENSHOT"); p != "" { // to look at it
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if colours, ink := inkStats(img); colours < 8 || ink < 0.02 {
		t.Errorf("the screenshot looks blank: %d colours, %.1f%% non-white", colours, ink*100)
	}
}

// eventually evaluates expr until it is true, across page loads (which
// make a pending evaluation fail).
func eventually(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still false (%v): %s", what, err, expr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inkStats counts the distinct colours of img and the share of pixels
// that are not white.
func inkStats(img image.Image) (int, float64) {
	seen := map[uint32]bool{}
	b := img.Bounds()
	ink, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
			total++
		}
	}
	return len(seen), float64(ink) / float64(total)
}
