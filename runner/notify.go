package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The wake-up channel. Runners reach only S3, so both sides of the protocol
// poll: the agent for its job, the coordinator for the result — each poll a
// request, and on average half an interval of delay per stage. When the
// runners can reach the coordinator (local runners; a coordinator in the
// runners' VPC with --runner-notify), it also serves two wake-ups over
// HTTP, and polling becomes the fallback:
//
//	GET  /v1/<run>/<job>/job     answers 200 once the job is written (at
//	                             most waitFor later: 204, ask again; 410:
//	                             the run is over)
//	POST /v1/<run>/<job>/result  the agent wrote its result: look now
//
// They carry no data: the job and the result are read from S3 as always, so
// whoever can reach the port learns nothing and can at most cause an early
// read. A runner that cannot reach it polls S3 as before.

// waitFor is how long a job wake-up request is held open.
const waitFor = 20 * time.Second

// wakeSlot is one runner directory's wake-up state.
type wakeSlot struct {
	written chan struct{} // closed when the job is written
	result  chan struct{} // the agent says its result is there
	agent   bool          // the agent has reached us
}

// notifier serves the wake-ups of one run.
type notifier struct {
	run    string
	url    string
	srv    *http.Server
	closed chan struct{}

	mu    sync.Mutex
	slots map[string]*wakeSlot
	once  sync.Once
}

// startNotifier listens on addr ("127.0.0.1:0" picks a port) and serves the
// wake-ups of run. The URL runners are given uses the address as bound.
func startNotifier(addr, run string) (*notifier, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("runner wake-ups: listening on %s: %w", addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if host == "" || host == "0.0.0.0" || host == "::" {
		ln.Close()
		return nil, fmt.Errorf("runner wake-ups: %s: give the address runners reach this machine at (host:port), not a wildcard", addr)
	}
	n := &notifier{run: run, url: "http://" + net.JoinHostPort(host, port), closed: make(chan struct{}), slots: map[string]*wakeSlot{}}
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.srv.Serve(ln) }()
	return n, nil
}

func (n *notifier) slot(job string) *wakeSlot {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.slots[job]
	if s == nil {
		s = &wakeSlot{written: make(chan struct{}), result: make(chan struct{}, 1)}
		n.slots[job] = s
	}
	return s
}

// jobWritten wakes the agent waiting for job.
func (n *notifier) jobWritten(job string) {
	s := n.slot(job)
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-s.written:
	default:
		close(s.written)
	}
}

// resultWake is signalled when job's agent says its result is written.
func (n *notifier) resultWake(job string) <-chan struct{} { return n.slot(job).result }

// agentReached reports whether job's agent has reached the coordinator (so
// it will say when its result is there).
func (n *notifier) agentReached(job string) bool {
	s := n.slot(job)
	n.mu.Lock()
	defer n.mu.Unlock()
	return s.agent
}

func (n *notifier) forget(job string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.slots, job)
}

func (n *notifier) close() {
	n.once.Do(func() {
		close(n.closed)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
	})
}

func (n *notifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	if len(parts) != 3 || parts[0] != n.run || parts[1] == "" {
		http.NotFound(w, r)
		return
	}
	s := n.slot(parts[1])
	switch {
	case parts[2] == "job" && r.Method == http.MethodGet:
		n.mu.Lock()
		s.agent = true
		n.mu.Unlock()
		t := time.NewTimer(waitFor)
		defer t.Stop()
		select {
		case <-s.written:
			w.WriteHeader(http.StatusOK)
		case <-n.closed:
			w.WriteHeader(http.StatusGone)
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	case parts[2] == "result" && r.Method == http.MethodPost:
		select {
		case s.result <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// errRunOver: the coordinator says the run is over.
var errRunOver = errors.New("the run is over")

// wakeClient is the agent's side of the wake-ups.
type wakeClient struct {
	base string // <url>/v1/<run>/<job>
	http *http.Client
}

func newWakeClient(url, run, job string) *wakeClient {
	if url == "" {
		return nil
	}
	return &wakeClient{base: strings.TrimRight(url, "/") + "/v1/" + run + "/" + job, http: &http.Client{Timeout: waitFor + 10*time.Second}}
}

// waitJob blocks until the coordinator says the job is written (true), the
// wait timed out (false, nil), or the run is over (errRunOver). Any other
// error means the coordinator cannot be reached.
func (c *wakeClient) waitJob(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/job", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNoContent:
		return false, nil
	case http.StatusGone:
		return false, errRunOver
	default:
		return false, fmt.Errorf("coordinator answered %s", resp.Status)
	}
}

// resultWritten tells the coordinator to look for the result now; best
// effort (it polls anyway).
func (c *wakeClient) resultWritten(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/result", nil)
	if err != nil {
		return
	}
	if resp, err := c.http.Do(req); err == nil {
		resp.Body.Close()
	}
}
