package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/iampolicy"
	"github.com/mc-build/mc/internal/testminio"
)

// policyEnv is a MinIO server with one real IAM user per role of
// iampolicy, each restricted by its policy for s3://mcb/v1.
type policyEnv struct {
	srv   *testminio.Server
	users map[iampolicy.Role]*testminio.User
}

func newPolicyEnv(t *testing.T) *policyEnv {
	t.Helper()
	srv := testminio.Start(t)
	srv.MakeBucket(t, "mcb")
	pe := &policyEnv{srv: srv, users: map[iampolicy.Role]*testminio.User{}}
	for _, r := range iampolicy.Roles() {
		doc, err := iampolicy.JSON(r, "mcb", "v1")
		if err != nil {
			t.Fatal(err)
		}
		pe.users[r] = srv.AddUser(t, "mc-"+string(r), doc)
	}
	return pe
}

// probe performs op ("get", "put" or "delete") on key (under the bucket)
// as role and returns the S3 error code, "" on success.
func (pe *policyEnv) probe(t *testing.T, role iampolicy.Role, op, key string) string {
	t.Helper()
	c := pe.users[role].Client()
	ctx := context.Background()
	var err error
	switch op {
	case "get":
		var out *s3api.GetObjectOutput
		out, err = c.GetObject(ctx, &s3api.GetObjectInput{Bucket: aws.String("mcb"), Key: aws.String(key)})
		if err == nil {
			_, err = io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
	case "put":
		body := []byte("forged by " + string(role))
		_, err = c.PutObject(ctx, &s3api.PutObjectInput{Bucket: aws.String("mcb"), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	case "delete":
		_, err = c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: aws.String("mcb"), Key: aws.String(key)})
	default:
		t.Fatalf("probe %q", op)
	}
	if err == nil {
		return ""
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	t.Fatalf("%s %s as %s: not an S3 answer: %v", op, key, role, err)
	return ""
}

// TestPoliciesOnMinIO applies the documented policies to real MinIO users
// and attacks with each: the read-only and untrusted identities try to read
// a job's (sealed) secrets and the job itself, to forge the heartbeat whose
// key the secrets are sealed to, and to write the trusted tier. Every
// denial has its positive control: the same request by an identity the
// policy allows succeeds, so a policy (or a server) that denied everything
// would fail here.
func TestPoliciesOnMinIO(t *testing.T) {
	pe := newPolicyEnv(t)
	ctx := context.Background()
	blob := cas.FromBytes([]byte("a trusted blob"))
	pe.srv.PutRaw(t, "mcb", "v1/"+BlobKey(blob), []byte("a trusted blob"))
	pe.srv.PutRaw(t, "mcb", "v1/ac/"+blob.Hex(), []byte("a trusted result"))
	pe.srv.PutRaw(t, "mcb", "v1/untrusted/"+BlobKey(blob), []byte("a trusted blob"))

	// The coordinator of a trusted build, as the writer identity, seals a
	// job's secrets to its runner's key and writes them where the protocol
	// does.
	writer, err := OpenObjects(ctx, "s3://mcb/v1", "", pe.users[iampolicy.Writer].Getenv)
	if err != nil {
		t.Fatal(err)
	}
	key, err := newAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hunter2-policy-canary"
	sealed, err := sealSecrets(key.pub[:], map[string]string{"TOKEN": secret})
	if err != nil {
		t.Fatal(err)
	}
	dir := JobDir("r1", "j1")
	for k, v := range map[string][]byte{dir + objSecrets: sealed, dir + objJob: []byte(`{"label":"//p:s"}`)} {
		if err := writer.Put(ctx, k, v); err != nil {
			t.Fatalf("the writer identity cannot write %s: %v", k, err)
		}
	}

	const (
		W, R, U = iampolicy.Writer, iampolicy.ReadOnly, iampolicy.Untrusted
		denied  = "AccessDenied"
	)
	for _, c := range []struct {
		role    iampolicy.Role
		op, key string
		want    string // "" allowed, else the error code
	}{
		// A job's secrets: only trusted identities read them.
		{R, "get", "v1/" + dir + objSecrets, denied},
		{U, "get", "v1/" + dir + objSecrets, denied},
		{W, "get", "v1/" + dir + objSecrets, ""},
		// Nor the job, its logs, its result.
		{R, "get", "v1/" + dir + objJob, denied},
		{U, "get", "v1/" + dir + objJob, denied},
		{W, "get", "v1/" + dir + objJob, ""},
		// Forging the runner's key (a heartbeat) or the secrets.
		{R, "put", "v1/" + dir + objHeartbeat, denied},
		{U, "put", "v1/" + dir + objHeartbeat, denied},
		{U, "put", "v1/" + dir + objSecrets, denied},
		{W, "put", "v1/" + dir + objHeartbeat, ""},
		// The trusted tier: read by all, written by the writer only.
		{R, "get", "v1/" + BlobKey(blob), ""},
		{U, "get", "v1/" + BlobKey(blob), ""},
		{U, "get", "v1/ac/" + blob.Hex(), ""},
		// A missing blob is a miss (404), not a failure, for every reader.
		{R, "get", "v1/cas/" + strings.Repeat("0", 64), "NoSuchKey"},
		{U, "get", "v1/untrusted/cas/" + strings.Repeat("0", 64), "NoSuchKey"},
		{R, "put", "v1/" + BlobKey(blob), denied},
		{U, "put", "v1/" + BlobKey(blob), denied},
		{U, "put", "v1/ac/" + blob.Hex(), denied},
		{U, "delete", "v1/" + BlobKey(blob), denied},
		{U, "put", "v1/runs/r1/done", denied},
		{W, "put", "v1/ac/" + blob.Hex(), ""},
		// The untrusted tier: written by untrusted identities, read by all.
		{U, "put", "v1/untrusted/" + BlobKey(blob), ""},
		{U, "put", "v1/untrusted/ac/" + blob.Hex(), ""},
		{U, "put", "v1/untrusted/" + dir + objHeartbeat, ""},
		{R, "get", "v1/untrusted/" + BlobKey(blob), ""},
		{R, "put", "v1/untrusted/" + BlobKey(blob), denied},
		// Nobody writes outside the prefix.
		{W, "put", "other/x", denied},
		{U, "put", "other/untrusted/x", denied},
	} {
		if got := pe.probe(t, c.role, c.op, c.key); got != c.want {
			t.Errorf("%s %s as %s: got %q, want %q", c.op, c.key, c.role, orOK(got), orOK(c.want))
		}
	}

	// What the writer (and its runner) reads is still no plain text: only
	// the runner's key opens it.
	got, err := writer.Get(ctx, dir+objSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(secret)) || bytes.Contains(got, []byte("TOKEN")) {
		t.Fatalf("the secrets object holds plain text: %q", got)
	}
	if s, err := key.open(got); err != nil || s["TOKEN"] != secret {
		t.Fatalf("the runner's key does not open its secrets: %v, %v", s, err)
	}
}

func orOK(code string) string {
	if code == "" {
		return "allowed"
	}
	return code
}

// TestSealedSecrets: the sealed object opens with its runner's key only,
// not with another runner's, and not once altered; a runner that publishes
// no key gets nothing written (and the stage fails with why), while one that
// does gets its secrets (the positive control).
func TestSealedSecrets(t *testing.T) {
	mine, err := newAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := newAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealSecrets(mine.pub[:], map[string]string{"TOKEN": "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.open(sealed); err == nil {
		t.Fatal("another runner's key opened the secrets")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := mine.open(tampered); err == nil {
		t.Fatal("altered secrets opened")
	}
	if s, err := mine.open(sealed); err != nil || s["TOKEN"] != "s3cr3t" {
		t.Fatalf("own key: %v, %v", s, err)
	}
	if _, err := sealSecrets(mine.pub[:31], map[string]string{"A": "b"}); err == nil {
		t.Fatal("sealed to a 31-byte key")
	}

	pe := newPoolEnv(t)
	ctx := context.Background()
	e := &Executor{objs: pe.objs}
	secrets := map[string]string{"TOKEN": "s3cr3t"}
	for _, c := range []struct {
		name string
		hb   *Heartbeat
		sent bool
		err  string
	}{
		{"no heartbeat yet", nil, false, ""},
		{"a heartbeat without a key", &Heartbeat{Seq: 1}, false, "published no public key"},
		{"a heartbeat with a key", &Heartbeat{Seq: 1, Key: mine.pub[:]}, true, ""},
	} {
		dir := JobDir("r-"+strings.ReplaceAll(c.name, " ", "-"), "j1")
		if c.hb != nil {
			if err := pe.objs.Put(ctx, dir+objHeartbeat, encode(*c.hb)); err != nil {
				t.Fatal(err)
			}
		}
		sent, err := e.sendSecrets(ctx, dir, secrets)
		if sent != c.sent || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: sent %v, err %v; want %v, %q", c.name, sent, err, c.sent, c.err)
		}
		raw, gerr := pe.objs.Get(ctx, dir+objSecrets)
		switch {
		case c.sent && gerr != nil:
			t.Errorf("%s: no secrets object: %v", c.name, gerr)
		case c.sent:
			if s, err := mine.open(raw); err != nil || s["TOKEN"] != "s3cr3t" {
				t.Errorf("%s: the object does not open to the secrets: %v, %v", c.name, s, err)
			}
		case !errors.Is(gerr, ErrNotFound):
			t.Errorf("%s: a secrets object was written (%v)", c.name, gerr)
		}
	}
}
