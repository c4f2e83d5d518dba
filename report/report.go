// Package report is the client side of `mc build --report=URL`: it tees a
// build's events to an mc serve, which shows the build as a run.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	osexec "os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mc-build/mc/event"
)

// reportInterval is how often --report posts the events gathered meanwhile.
const reportInterval = 200 * time.Millisecond

// reportMaxQueued bounds the events waiting to be posted: a server slower
// than the build loses events rather than growing mc's memory.
const reportMaxQueued = 100_000

// Reporter tees the build's events to `mc serve` (--report=URL): it creates
// a run (POST URL/api/runs, trigger cli), then posts the events as NDJSON to
// URL/api/runs/ID/events every reportInterval, with MC_REPORT_TOKEN as the
// bearer token. Reporting is best effort: a failure is one warning and
// never fails the build.
type Reporter struct {
	inner  event.Sink
	base   string
	token  string
	stderr io.Writer
	client *http.Client

	mu      sync.Mutex
	queued  []event.Event
	dropped int
	failed  bool

	stop chan struct{}
	done chan struct{}
}

// Options say where and what to report.
type Options struct {
	URL     string    // the server; "" reports nothing
	Token   string    // the bearer token (MC_REPORT_TOKEN)
	Stderr  io.Writer // warnings, and where the run is shown
	Dir     string    // the directory whose git HEAD names the commit
	Command string    // the run's command: "build //..."
}

// New returns the sink the build uses: inner itself without a URL, else
// inner teed to the server. Close the Reporter when the build is over.
func New(ctx context.Context, o Options, inner event.Sink) (*Reporter, event.Sink) {
	reportURL, token := o.URL, o.Token
	if reportURL == "" {
		return &Reporter{}, inner
	}
	r := &Reporter{inner: inner, base: strings.TrimSuffix(reportURL, "/"), token: token, stderr: o.Stderr,
		client: &http.Client{Timeout: 10 * time.Second}, stop: make(chan struct{}), done: make(chan struct{})}
	if u, err := url.Parse(reportURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.warn(fmt.Errorf("%q is not an http(s) URL", reportURL))
		close(r.done)
		return r, inner
	}
	if token == "" {
		r.warn(errors.New("MC_REPORT_TOKEN is not set: the server will refuse the events"))
	}
	commit, branch := gitHead(ctx, o.Dir)
	req := map[string]string{"command": strings.TrimSpace(o.Command), "commit": commit, "branch": branch}
	go r.loop(context.WithoutCancel(ctx), req)
	return r, r
}

// Event implements event.Sink.
func (r *Reporter) Event(e event.Event) {
	r.inner.Event(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed {
		return
	}
	if len(r.queued) >= reportMaxQueued {
		r.dropped++
		return
	}
	r.queued = append(r.queued, e)
}

// Close posts what is left (a few seconds at most) and stops reporting.
func (r *Reporter) Close() {
	if r.stop == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	close(r.stop)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.warn(errors.New("the server did not take the last events in time"))
	}
}

func (r *Reporter) warn(err error) {
	fmt.Fprintf(r.stderr, "mc: warning: --report: %v (the build goes on without reporting)\n", err)
}

func (r *Reporter) fail(err error) {
	r.mu.Lock()
	already := r.failed
	r.failed, r.queued = true, nil
	r.mu.Unlock()
	if !already {
		r.warn(err)
	}
}

func (r *Reporter) loop(ctx context.Context, req map[string]string) {
	defer close(r.done)
	var created struct {
		ID  int64  `json:"id"`
		URL string `json:"url"`
	}
	body, _ := json.Marshal(req)
	if err := r.post(ctx, "/api/runs", "application/json", body, &created); err != nil {
		r.fail(err)
		return
	}
	fmt.Fprintf(r.stderr, "mc: reporting to %s\n", created.URL)
	path := fmt.Sprintf("/api/runs/%d/events", created.ID)
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	for {
		last := false
		select {
		case <-tick.C:
		case <-r.stop:
			last = true
		}
		r.mu.Lock()
		batch := r.queued
		r.queued = nil
		r.mu.Unlock()
		if len(batch) > 0 {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			for _, e := range batch {
				_ = enc.Encode(e) // an Event always encodes
			}
			if err := r.post(ctx, path, "application/x-ndjson", b.Bytes(), nil); err != nil {
				r.fail(err)
				return
			}
		}
		if last {
			if r.dropped > 0 {
				r.warn(fmt.Errorf("%d events were dropped: the server was too slow", r.dropped))
			}
			return
		}
	}
}

func (r *Reporter) post(ctx context.Context, path, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		if err := json.Unmarshal(msg, out); err != nil {
			return fmt.Errorf("POST %s: %w", path, err)
		}
	}
	return nil
}

// gitHead names the checked-out commit and branch of dir ("" outside git).
func gitHead(ctx context.Context, dir string) (commit, branch string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := osexec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD", "--abbrev-ref", "HEAD").Output()
	if err != nil {
		return "", ""
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", ""
	}
	if f[1] == "HEAD" {
		f[1] = "" // detached
	}
	return f[0], f[1]
}
