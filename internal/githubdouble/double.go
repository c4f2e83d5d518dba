// Package githubdouble is a TEST DOUBLE of GitHub's REST API — not GitHub.
// GitHub itself cannot be reached from the test machines, so tests of mc
// serve's GitHub client talk to this server on 127.0.0.1 instead. It checks
// what GitHub checks and mc relies on: the paths and methods of commit
// statuses, check runs, App installations and installation tokens; the
// required JSON fields and their values (at most 50 annotations a request);
// the Accept and X-GitHub-Api-Version headers; and the credentials: a
// token it was given, or an App's RS256 JWT verified with the App's public
// key (iss, iat not in the future, exp not past and at most 10 minutes
// after iat), exchanged for installation tokens that expire. A token
// without the checks permission gets 403 on check runs, as GitHub answers
// a personal access token. Every request is recorded for assertions.
package githubdouble

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIVersion is the only X-GitHub-Api-Version the double takes.
const APIVersion = "2022-11-28"

// Options configure a Double.
type Options struct {
	// Tokens are the tokens it takes (personal access tokens), with
	// whether each may write check runs (GitHub lets only Apps do so).
	Tokens map[string]bool
	// AppID and AppKey: the GitHub App whose JWTs it takes (the public
	// key verifies them).
	AppID  int64
	AppKey *rsa.PublicKey
	// Installations maps owner/name to the App's installation id on it.
	Installations map[string]int64
	// TokenTTL is how long an installation token lives (GitHub: 1 hour).
	TokenTTL time.Duration
	// Now is the double's clock (tests move it); default time.Now.
	Now func() time.Time
}

// Request is one request the double received.
type Request struct {
	Method, Path, Query string
	// Auth is how it authenticated: "token:T", "jwt", "installation:ID",
	// or "" when refused.
	Auth string
	Body map[string]any
	// Code is the status the double answered.
	Code int
}

// CheckRun is a check run as the double holds it.
type CheckRun struct {
	ID          int64
	Repo        string
	Fields      map[string]any   // the latest value of each field sent
	Annotations []map[string]any // every annotation sent, in order
	Updates     int
}

// Status is a commit status as received.
type Status struct {
	Repo, SHA, Auth string
	State           string
	TargetURL       string
	Description     string
	Context         string
}

// Double is the fake GitHub API.
type Double struct {
	*httptest.Server
	opt Options

	mu        sync.Mutex
	requests  []Request
	checkRuns map[int64]*CheckRun
	statuses  []Status
	instTok   map[string]instToken
	nextID    int64
}

type instToken struct {
	installation int64
	expires      time.Time
}

// New starts a double; Close it when done.
func New(opt Options) *Double {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.TokenTTL == 0 {
		opt.TokenTTL = time.Hour
	}
	d := &Double{opt: opt, checkRuns: map[int64]*CheckRun{}, instTok: map[string]instToken{}, nextID: 1000}
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	return d
}

// Requests returns the requests received so far.
func (d *Double) Requests() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.requests)
}

// Statuses returns the commit statuses received so far.
func (d *Double) Statuses() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.statuses)
}

// CheckRuns returns copies of the check runs, in order of creation.
func (d *Double) CheckRuns() []CheckRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []CheckRun
	for _, c := range d.checkRuns {
		cp := *c
		cp.Fields = map[string]any{}
		for k, v := range c.Fields {
			cp.Fields[k] = v
		}
		cp.Annotations = slices.Clone(c.Annotations)
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b CheckRun) int { return int(a.ID - b.ID) })
	return out
}

type apiError struct {
	code int
	msg  string
}

func fail(code int, format string, args ...any) *apiError {
	return &apiError{code, fmt.Sprintf(format, args...)}
}

var (
	reStatus    = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40,64})$`)
	reCheckRuns = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/check-runs$`)
	reCheckRun  = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/check-runs/([0-9]+)$`)
	reListRuns  = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/commits/([^/]+)/check-runs$`)
	reRepoInst  = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/installation$`)
	reAccessTok = regexp.MustCompile(`^/app/installations/([0-9]+)/access_tokens$`)
)

func (d *Double) serve(w http.ResponseWriter, r *http.Request) {
	// Enterprise-style bases (/api/v3/) are accepted as well.
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	rec := Request{Method: r.Method, Path: path, Query: r.URL.RawQuery}
	reply, err := d.handle(r, path, &rec)
	d.mu.Lock()
	defer d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err != nil {
		rec.Code = err.code
		d.requests = append(d.requests, rec)
		w.WriteHeader(err.code)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": err.msg, "documentation_url": "https://docs.github.com/rest"})
		return
	}
	rec.Code = reply.code
	d.requests = append(d.requests, rec)
	w.WriteHeader(reply.code)
	_ = json.NewEncoder(w).Encode(reply.body)
}

type answer struct {
	code int
	body any
}

func (d *Double) handle(r *http.Request, path string, rec *Request) (*answer, *apiError) {
	if got := r.Header.Get("Accept"); got != "application/vnd.github+json" {
		return nil, fail(http.StatusUnsupportedMediaType, "Accept %q: want application/vnd.github+json", got)
	}
	if got := r.Header.Get("X-GitHub-Api-Version"); got != APIVersion {
		return nil, fail(http.StatusBadRequest, "X-GitHub-Api-Version %q is not a supported version", got)
	}
	if r.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if len(b) > 0 {
			if r.Header.Get("Content-Type") != "application/json" {
				return nil, fail(http.StatusUnsupportedMediaType, "Content-Type %q: want application/json", r.Header.Get("Content-Type"))
			}
			if err := json.Unmarshal(b, &rec.Body); err != nil {
				return nil, fail(http.StatusBadRequest, "Problems parsing JSON: %v", err)
			}
		}
	}
	who, aerr := d.authenticate(r.Header.Get("Authorization"))
	if aerr != nil {
		return nil, aerr
	}
	rec.Auth = who.String()
	switch m := r.Method; {
	case m == http.MethodGet && path == "/app":
		if !who.jwt {
			return nil, fail(http.StatusUnauthorized, "A JSON web token could not be decoded")
		}
		return &answer{200, map[string]any{"id": d.opt.AppID, "slug": "mc-ci", "name": "mc CI"}}, nil
	case m == http.MethodGet && reRepoInst.MatchString(path):
		if !who.jwt {
			return nil, fail(http.StatusUnauthorized, "A JSON web token could not be decoded")
		}
		repo := reRepoInst.FindStringSubmatch(path)[1]
		id, ok := d.opt.Installations[repo]
		if !ok {
			return nil, fail(http.StatusNotFound, "Not Found")
		}
		return &answer{200, map[string]any{"id": id, "app_id": d.opt.AppID, "target_type": "Organization"}}, nil
	case m == http.MethodPost && reAccessTok.MatchString(path):
		if !who.jwt {
			return nil, fail(http.StatusUnauthorized, "A JSON web token could not be decoded")
		}
		id, _ := strconv.ParseInt(reAccessTok.FindStringSubmatch(path)[1], 10, 64)
		if !slices.Contains(mapValues(d.opt.Installations), id) {
			return nil, fail(http.StatusNotFound, "Not Found")
		}
		tok := "ghs_" + randHex(18)
		exp := d.opt.Now().Add(d.opt.TokenTTL).UTC().Truncate(time.Second)
		d.mu.Lock()
		d.instTok[tok] = instToken{installation: id, expires: exp}
		d.mu.Unlock()
		return &answer{201, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
			"permissions": map[string]string{"checks": "write", "statuses": "write", "contents": "read"}}}, nil
	}
	// Everything else acts on a repository: a token or an installation
	// token of an installation on it, never the App's JWT.
	repo := repoOf(path)
	if repo == "" {
		return nil, fail(http.StatusNotFound, "Not Found")
	}
	if who.jwt {
		return nil, fail(http.StatusForbidden, "A JSON web token cannot act on a repository: use an installation token")
	}
	if who.installation != 0 && d.opt.Installations[repo] != who.installation {
		return nil, fail(http.StatusNotFound, "Not Found") // GitHub hides repositories the token cannot see
	}
	checksOK := who.installation != 0 || d.opt.Tokens[who.token]
	switch m := r.Method; {
	case m == http.MethodPost && reStatus.MatchString(path):
		return d.createStatus(rec, reStatus.FindStringSubmatch(path), r.Header.Get("Authorization"))
	case m == http.MethodPost && reCheckRuns.MatchString(path):
		if !checksOK {
			return nil, fail(http.StatusForbidden, "Resource not accessible by personal access token")
		}
		return d.createCheckRun(repo, rec.Body)
	case m == http.MethodPatch && reCheckRun.MatchString(path):
		if !checksOK {
			return nil, fail(http.StatusForbidden, "Resource not accessible by personal access token")
		}
		id, _ := strconv.ParseInt(reCheckRun.FindStringSubmatch(path)[2], 10, 64)
		return d.updateCheckRun(repo, id, rec.Body)
	case m == http.MethodGet && reListRuns.MatchString(path):
		return d.listCheckRuns(repo, reListRuns.FindStringSubmatch(path)[2], r.URL.Query().Get("check_name"))
	}
	return nil, fail(http.StatusNotFound, "Not Found: %s %s", r.Method, path)
}

func repoOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/repos/")
	if !ok {
		return ""
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

func mapValues(m map[string]int64) []int64 {
	var out []int64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// principal is who a request authenticated as.
type principal struct {
	token        string
	jwt          bool
	installation int64
}

func (p principal) String() string {
	switch {
	case p.jwt:
		return "jwt"
	case p.installation != 0:
		return fmt.Sprintf("installation:%d", p.installation)
	default:
		return "token:" + p.token
	}
}

func (d *Double) authenticate(h string) (principal, *apiError) {
	cred, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		cred, ok = strings.CutPrefix(h, "token ")
	}
	if !ok || cred == "" {
		return principal{}, fail(http.StatusUnauthorized, "Requires authentication")
	}
	if strings.Count(cred, ".") == 2 {
		if err := d.verifyJWT(cred); err != nil {
			return principal{}, err
		}
		return principal{jwt: true}, nil
	}
	d.mu.Lock()
	it, isInst := d.instTok[cred]
	d.mu.Unlock()
	if isInst {
		if !d.opt.Now().Before(it.expires) {
			return principal{}, fail(http.StatusUnauthorized, "Bad credentials (the installation token expired)")
		}
		return principal{installation: it.installation}, nil
	}
	if _, ok := d.opt.Tokens[cred]; ok {
		return principal{token: cred}, nil
	}
	return principal{}, fail(http.StatusUnauthorized, "Bad credentials")
}

// verifyJWT checks an App's JWT as GitHub does: RS256 signature by the
// App's key, iss the App's id, iat not in the future (60 s of drift
// allowed), exp not past and at most 10 minutes after iat.
func (d *Double) verifyJWT(tok string) *apiError {
	bad := func(why string) *apiError {
		return fail(http.StatusUnauthorized, "A JSON web token could not be decoded: %s", why)
	}
	if d.opt.AppKey == nil {
		return bad("no App is configured")
	}
	parts := strings.Split(tok, ".")
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return bad("not base64url")
	}
	var header struct{ Alg, Typ string }
	if json.Unmarshal(hb, &header) != nil || header.Alg != "RS256" {
		return bad("alg must be RS256")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(d.opt.AppKey, crypto.SHA256, sum[:], sig) != nil {
		return bad("the signature does not verify with the App's public key")
	}
	var c struct {
		IAT *int64          `json:"iat"`
		EXP *int64          `json:"exp"`
		ISS json.RawMessage `json:"iss"`
	}
	if json.Unmarshal(cb, &c) != nil || c.IAT == nil || c.EXP == nil || len(c.ISS) == 0 {
		return bad("iat, exp and iss are required")
	}
	iss := strings.Trim(string(c.ISS), `"`)
	if iss != strconv.FormatInt(d.opt.AppID, 10) {
		return bad("iss " + iss + " is not this App")
	}
	now := d.opt.Now().Unix()
	switch {
	case *c.IAT > now+60:
		return fail(http.StatusUnauthorized, "'Issued at' claim ('iat') must be an Integer representing a time in the past")
	case *c.EXP <= now:
		return fail(http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the past")
	case *c.EXP-*c.IAT > 600:
		return fail(http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the future")
	}
	return nil
}

func (d *Double) createStatus(rec *Request, m []string, auth string) (*answer, *apiError) {
	b := rec.Body
	st := Status{Repo: m[1], SHA: m[2], Auth: auth}
	st.State, _ = b["state"].(string)
	st.TargetURL, _ = b["target_url"].(string)
	st.Description, _ = b["description"].(string)
	st.Context, _ = b["context"].(string)
	if !slices.Contains([]string{"error", "failure", "pending", "success"}, st.State) {
		return nil, fail(http.StatusUnprocessableEntity, "Validation Failed: state %q", st.State)
	}
	if len([]rune(st.Description)) > 140 {
		return nil, fail(http.StatusUnprocessableEntity, "Validation Failed: description is too long (maximum is 140 characters)")
	}
	d.mu.Lock()
	d.statuses = append(d.statuses, st)
	d.nextID++
	id := d.nextID
	d.mu.Unlock()
	return &answer{201, map[string]any{"id": id, "state": st.State, "context": st.Context}}, nil
}

var (
	checkStatuses = []string{"queued", "in_progress", "completed", "waiting", "requested", "pending"}
	conclusions   = []string{"action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"}
	levels        = []string{"notice", "warning", "failure"}
)

// validateCheckRun checks the fields of a create (create) or update body.
func validateCheckRun(b map[string]any, create bool) *apiError {
	str := func(k string) (string, bool) {
		v, ok := b[k]
		if !ok {
			return "", false
		}
		s, isStr := v.(string)
		return s, isStr
	}
	if create {
		for _, k := range []string{"name", "head_sha"} {
			if s, ok := str(k); !ok || s == "" {
				return fail(http.StatusUnprocessableEntity, "Validation Failed: %s is required", k)
			}
		}
	}
	status, hasStatus := str("status")
	if hasStatus && !slices.Contains(checkStatuses, status) {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: status %q", status)
	}
	conclusion, hasConclusion := str("conclusion")
	if hasConclusion && !slices.Contains(conclusions, conclusion) {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: conclusion %q", conclusion)
	}
	if status == "completed" && !hasConclusion {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: conclusion is required when status is completed")
	}
	for _, k := range []string{"started_at", "completed_at"} {
		if s, ok := str(k); ok {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				return fail(http.StatusUnprocessableEntity, "Validation Failed: %s %q is not ISO 8601", k, s)
			}
		}
	}
	out, hasOut := b["output"]
	if !hasOut {
		return nil
	}
	o, ok := out.(map[string]any)
	if !ok {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: output is not an object")
	}
	for _, k := range []string{"title", "summary"} {
		if s, ok := o[k].(string); !ok || s == "" {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: output.%s is required", k)
		}
	}
	if s, _ := o["summary"].(string); len([]rune(s)) > 65535 {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: output.summary is too long")
	}
	anns, _ := o["annotations"].([]any)
	if len(anns) > 50 {
		return fail(http.StatusUnprocessableEntity, "Validation Failed: at most 50 annotations per request (got %d)", len(anns))
	}
	for i, a := range anns {
		am, ok := a.(map[string]any)
		if !ok {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d is not an object", i)
		}
		for _, k := range []string{"path", "annotation_level", "message"} {
			if s, ok := am[k].(string); !ok || s == "" {
				return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: %s is required", i, k)
			}
		}
		p := am["path"].(string)
		if strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: path %q is not relative to the repository", i, p)
		}
		if !slices.Contains(levels, am["annotation_level"].(string)) {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: annotation_level %q", i, am["annotation_level"])
		}
		sl, ok1 := am["start_line"].(float64)
		el, ok2 := am["end_line"].(float64)
		if !ok1 || !ok2 || sl < 1 || el < sl {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: start_line and end_line are required (1 <= start <= end)", i)
		}
		_, sc := am["start_column"]
		_, ec := am["end_column"]
		if (sc || ec) && sl != el {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: columns only on one line", i)
		}
		if s := am["message"].(string); len(s) > 64<<10 {
			return fail(http.StatusUnprocessableEntity, "Validation Failed: annotation %d: message over 64 KB", i)
		}
	}
	return nil
}

func (d *Double) createCheckRun(repo string, b map[string]any) (*answer, *apiError) {
	if err := validateCheckRun(b, true); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	c := &CheckRun{ID: d.nextID, Repo: repo, Fields: map[string]any{}}
	if _, ok := b["status"]; !ok {
		b["status"] = "queued"
	}
	apply(c, b)
	d.checkRuns[c.ID] = c
	return &answer{201, d.checkRunJSON(c)}, nil
}

func (d *Double) updateCheckRun(repo string, id int64, b map[string]any) (*answer, *apiError) {
	if err := validateCheckRun(b, false); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.checkRuns[id]
	if !ok || c.Repo != repo {
		return nil, fail(http.StatusNotFound, "Not Found")
	}
	if _, ok := b["conclusion"]; ok {
		if _, ok := b["status"]; !ok {
			b["status"] = "completed" // GitHub: a conclusion completes the run
		}
	}
	apply(c, b)
	c.Updates++
	return &answer{200, d.checkRunJSON(c)}, nil
}

// apply sets the fields of body on c; annotations are appended, as GitHub
// does.
func apply(c *CheckRun, b map[string]any) {
	for k, v := range b {
		if k == "output" {
			o := v.(map[string]any)
			anns, _ := o["annotations"].([]any)
			for _, a := range anns {
				c.Annotations = append(c.Annotations, a.(map[string]any))
			}
			rest := map[string]any{}
			for ok, ov := range o {
				if ok != "annotations" {
					rest[ok] = ov
				}
			}
			c.Fields["output"] = rest
			continue
		}
		c.Fields[k] = v
	}
}

// checkRunJSON is c as GitHub shows a check run (the fields of the
// check_run objects of the vendored webhook samples).
func (d *Double) checkRunJSON(c *CheckRun) map[string]any {
	url := fmt.Sprintf("%s/repos/%s/check-runs/%d", d.URL, c.Repo, c.ID)
	out := map[string]any{"id": c.ID, "url": url, "html_url": fmt.Sprintf("https://github.com/%s/runs/%d", c.Repo, c.ID),
		"external_id": "", "details_url": "", "conclusion": nil, "started_at": nil, "completed_at": nil,
		"pull_requests": []any{}}
	output := map[string]any{"title": nil, "summary": nil, "text": nil}
	for k, v := range c.Fields {
		if k == "output" {
			for ok, ov := range v.(map[string]any) {
				output[ok] = ov
			}
			continue
		}
		out[k] = v
	}
	output["annotations_count"] = len(c.Annotations)
	output["annotations_url"] = url + "/annotations"
	out["output"] = output
	return out
}

func (d *Double) listCheckRuns(repo, sha, name string) (*answer, *apiError) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var runs []map[string]any
	for _, c := range d.checkRuns {
		if c.Repo == repo && c.Fields["head_sha"] == sha && (name == "" || c.Fields["name"] == name) {
			runs = append(runs, d.checkRunJSON(c))
		}
	}
	return &answer{200, map[string]any{"total_count": len(runs), "check_runs": runs}}, nil
}

// RepoCredential reports whether the double takes cred on repo: a token
// it was given, or an unexpired installation token of the App's
// installation on repo. (Tests serving git over HTTP check fetches with
// it, as GitHub's git endpoints take the same credentials.)
func (d *Double) RepoCredential(cred, repo string) bool {
	p, err := d.authenticate("Bearer " + cred)
	if err != nil || p.jwt {
		return false
	}
	return p.installation == 0 || d.opt.Installations[repo] == p.installation
}
