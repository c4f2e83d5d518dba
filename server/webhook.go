package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxPayload is GitHub's own cap on webhook payloads.
const maxPayload = 25 << 20

// validSignature checks X-Hub-Signature-256 ("sha256=" + hex HMAC-SHA256 of
// the body with the secret) in constant time. No secret: nothing is valid.
func validSignature(secret []byte, header string, body []byte) bool {
	if len(secret) == 0 {
		return false
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// The fields of the payloads mc reads.
type hookRepo struct {
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	DefaultBranch string `json:"default_branch"`
}

type pushPayload struct {
	Ref        string   `json:"ref"`
	After      string   `json:"after"`
	Deleted    bool     `json:"deleted"`
	Repository hookRepo `json:"repository"`
}

type prPayload struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest struct {
		Head struct {
			SHA  string   `json:"sha"`
			Ref  string   `json:"ref"`
			Repo hookRepo `json:"repo"`
		} `json:"head"`
		Base struct {
			SHA  string   `json:"sha"`
			Ref  string   `json:"ref"`
			Repo hookRepo `json:"repo"`
		} `json:"base"`
	} `json:"pull_request"`
	Repository hookRepo `json:"repository"`
}

// handleGitHub is POST /hooks/github. The signature is verified before
// anything else is looked at, the delivery id before anything is started.
func (s *Server) handleGitHub(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		http.Error(w, "unreadable or too large payload", http.StatusBadRequest)
		return
	}
	if !validSignature([]byte(s.cfg.WebhookSecret), req.Header.Get("X-Hub-Signature-256"), body) {
		http.Error(w, "missing or invalid X-Hub-Signature-256", http.StatusUnauthorized)
		return
	}
	delivery := req.Header.Get("X-GitHub-Delivery")
	if delivery == "" {
		http.Error(w, "missing X-GitHub-Delivery", http.StatusBadRequest)
		return
	}
	// The id is not signed: a captured delivery resent under a new id is
	// recognised by its signed body. A replay older than the retention is
	// not, and is caught where it matters: a run deploys only its branch's
	// current head (run.go).
	sum := sha256.Sum256(body)
	bodySHA := hex.EncodeToString(sum[:])
	now := s.cfg.Now()
	prev, err := s.st.recordDelivery(req.Context(), delivery, bodySHA, now, now.Add(-s.cfg.DeliveryRetention),
		s.cfg.MaxDeliveries, !s.cfg.noReplayCheck)
	if err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if prev != nil {
		msg := fmt.Sprintf("refused: a replay of delivery %s received %s", prev.ID, prev.Received.UTC().Format(time.RFC3339))
		if prev.ID == delivery {
			msg = fmt.Sprintf("refused: delivery %s was already received (%s)", delivery, prev.Received.UTC().Format(time.RFC3339))
		}
		if prev.Run != 0 {
			msg += fmt.Sprintf(", which started run %d", prev.Run)
		}
		s.logf("webhook %s %s", delivery, msg)
		http.Error(w, msg, http.StatusConflict)
		return
	}
	var r *Run
	switch event := req.Header.Get("X-GitHub-Event"); event {
	case "ping":
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "pong")
		return
	case "push":
		r, err = pushRun(body)
	case "pull_request":
		r, err = pullRequestRun(body)
	case "check_run", "check_suite":
		r, err = s.rerequestedRun(req.Context(), event, body)
	default:
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "event %q ignored\n", event)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	annotateRun(r, req.Header.Get("X-GitHub-Event"), body) // message, author, title (runs_list.go)
	if r == nil {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "nothing to build")
		return
	}
	s.noteInstallation(r.Repo, body)
	if err := s.enqueue(req.Context(), r); err != nil {
		s.logf("%v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := s.st.setDeliveryRun(req.Context(), bodySHA, r.ID); err != nil {
		s.logf("%v", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": r.ID, "url": fmt.Sprintf("%s/runs/%d", s.cfg.PublicURL, r.ID)})
}

func pushRun(body []byte) (*Run, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("push payload: %w", err)
	}
	branch, isBranch := strings.CutPrefix(p.Ref, "refs/heads/")
	if p.Deleted || !isBranch || strings.Trim(p.After, "0") == "" {
		return nil, nil // a deleted branch or a tag: nothing to build
	}
	if err := checkCommit(p.After); err != nil {
		return nil, err
	}
	clone, err := cleanCloneURL(p.Repository.CloneURL)
	if err != nil {
		return nil, err
	}
	r := &Run{Trigger: TriggerPush, Repo: p.Repository.FullName, CloneURL: clone, Commit: p.After, Branch: branch}
	if p.Repository.DefaultBranch != "" && branch == p.Repository.DefaultBranch {
		r.Deploy, r.DeployState = true, DeployWaiting
		r.DeployNote = "the deploy stages run after the build, if " + shortSHA(r.Commit) + " is still the head of " + branch
	}
	return r, nil
}

func pullRequestRun(body []byte) (*Run, error) {
	var p prPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("pull_request payload: %w", err)
	}
	switch p.Action {
	case "opened", "synchronize", "reopened":
	default:
		return nil, nil
	}
	pr := p.PullRequest
	for _, c := range []string{pr.Head.SHA, pr.Base.SHA} {
		if err := checkCommit(c); err != nil {
			return nil, err
		}
	}
	head, err := cleanCloneURL(pr.Head.Repo.CloneURL)
	if err != nil {
		return nil, err
	}
	base, err := cleanCloneURL(pr.Base.Repo.CloneURL)
	if err != nil {
		return nil, err
	}
	repo := p.Repository.FullName
	if repo == "" {
		repo = pr.Base.Repo.FullName
	}
	return &Run{Trigger: TriggerPullRequest, Repo: repo, CloneURL: head, BaseURL: base, Commit: pr.Head.SHA,
		BaseSHA: pr.Base.SHA, Branch: pr.Head.Ref, PR: p.Number}, nil
}

// checkCommit accepts a full hexadecimal object name: it is given to git.
func checkCommit(c string) error {
	if len(c) != 40 && len(c) != 64 {
		return fmt.Errorf("commit %q: not a full object name", c)
	}
	if _, err := hex.DecodeString(c); err != nil {
		return fmt.Errorf("commit %q: not a full object name", c)
	}
	return nil
}

// cleanCloneURL accepts https, http, ssh, git and file URLs and drops any
// credentials in them, which must appear neither in pages nor in the
// database.
func cleanCloneURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("clone URL %q: not a URL", s)
	}
	switch u.Scheme {
	case "https", "http", "ssh", "git", "file":
	default:
		return "", fmt.Errorf("clone URL %q: unsupported scheme", s)
	}
	if u.Scheme == "ssh" && u.User != nil {
		u.User = url.User(u.User.Username()) // git@: a name, not a secret
	} else {
		u.User = nil
	}
	return u.String(), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}

// rerequestedRun is GitHub's Re-run button: a check_run rerequested (one
// check run of ours; its external_id is the run's id) or a check_suite
// rerequested (the newest run of the suite's commit in that repository).
// The new run is rerunOf the original, as the run page's rerun: a pull
// request's builds untrusted again. Nil when there is nothing to rerun (an
// other action, a run still going, a run of another repository).
func (s *Server) rerequestedRun(ctx context.Context, event string, body []byte) (*Run, error) {
	var p struct {
		Action   string `json:"action"`
		CheckRun struct {
			ExternalID string `json:"external_id"`
		} `json:"check_run"`
		CheckSuite struct {
			HeadSHA string `json:"head_sha"`
		} `json:"check_suite"`
		Repository hookRepo `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%s payload: %w", event, err)
	}
	if p.Action != "rerequested" {
		return nil, nil
	}
	var id int64
	if event == "check_run" {
		n, err := strconv.ParseInt(p.CheckRun.ExternalID, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("check_run: external_id %q names no run", p.CheckRun.ExternalID)
		}
		id = n
	} else {
		if err := checkCommit(p.CheckSuite.HeadSHA); err != nil {
			return nil, err
		}
		ids, err := s.st.runIDs(ctx, "runs of a commit",
			`SELECT id FROM runs WHERE repo = ? AND commit_sha = ? AND trigger != ? ORDER BY id DESC LIMIT 1`,
			p.Repository.FullName, p.CheckSuite.HeadSHA, TriggerCLI)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		id = ids[0]
	}
	orig, err := s.st.getRun(ctx, id)
	if err != nil || orig == nil {
		return nil, err
	}
	if orig.Repo != p.Repository.FullName || !rerunnable(orig) {
		s.logf("%s rerequested: run %d is not a finished run of %s: nothing to rerun", event, id, p.Repository.FullName)
		return nil, nil
	}
	return rerunOf(orig), nil
}
