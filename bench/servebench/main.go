// Command servebench is bench/serve.sh's client of mc serve: it sends a
// push webhook signed as GitHub signs them (X-Hub-Signature-256) and waits
// for the run it starts to finish, printing the time from the delivery to
// the end of the run as the server recorded it.
//
//	servebench -url http://127.0.0.1:PORT -secret S -clone-url file:///repo.git -branch main -sha SHA
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "servebench:", err)
		os.Exit(1)
	}
}

// pollEvery is slow enough not to weigh on the server: a run's JSON holds
// its graph, which for 10,000 stages takes a while to read and write.
const pollEvery = 500 * time.Millisecond

type apiRun struct {
	ID         int64      `json:"id"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason"`
	DurationMS int64      `json:"duration_ms"`
	Finished   *time.Time `json:"finished"`
	Built      int        `json:"built"`
	Cached     int        `json:"cached"`
	Failed     int        `json:"failed"`
}

func run(args []string) error {
	fs := flag.NewFlagSet("servebench", flag.ContinueOnError)
	url := fs.String("url", "", "mc serve's base URL")
	secret := fs.String("secret", "", "the webhook secret")
	clone := fs.String("clone-url", "", "the repository's clone URL")
	branch := fs.String("branch", "main", "the branch pushed")
	def := fs.String("default-branch", "main", "the repository's default branch")
	sha := fs.String("sha", "", "the commit pushed")
	delivery := fs.String("delivery", fmt.Sprintf("bench-%d", time.Now().UnixNano()), "X-GitHub-Delivery")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *secret == "" || *clone == "" || *sha == "" {
		return errors.New("-url, -secret, -clone-url and -sha are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	body, err := json.Marshal(map[string]any{
		"ref": "refs/heads/" + *branch, "after": *sha,
		"repository": map[string]any{"full_name": "bench/mono", "clone_url": *clone, "default_branch": *def},
	})
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, []byte(*secret))
	m.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", *delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var queued struct{ ID int64 }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &queued) != nil || queued.ID == 0 {
		return fmt.Errorf("webhook: %s %s", resp.Status, b)
	}
	for {
		r, err := getRun(ctx, *url, queued.ID)
		if err != nil {
			return err
		}
		switch r.Status {
		case "queued", "running":
		default:
			// The end as the server recorded it (same machine, same
			// clock): the polling interval adds nothing to the time.
			secs := time.Since(start).Seconds()
			if r.Finished != nil && r.Finished.After(start) {
				secs = r.Finished.Sub(start).Seconds()
			}
			fmt.Printf("run %d %s %.3f s (server: %.3f s) built %d cached %d failed %d %s\n",
				r.ID, r.Status, secs, float64(r.DurationMS)/1000, r.Built, r.Cached, r.Failed, r.Reason)
			if r.Status != "success" {
				return fmt.Errorf("run %d: %s %s", r.ID, r.Status, r.Reason)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run %d did not finish: %w", queued.ID, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

func getRun(ctx context.Context, base string, id int64) (*apiRun, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/runs/%d", base, id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r apiRun
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET run %d: %s", id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("GET run %d: %w", id, err)
	}
	return &r, nil
}
