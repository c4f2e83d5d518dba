package testminio

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/madmin-go/v3"
)

// User is an IAM user of the server, made with AddUser: its own access key,
// restricted by its policy, as a real deployment's identities are.
type User struct {
	AccessKey, SecretKey string
	srv                  *Server
}

// AddUser creates a user with fresh random credentials and the policy
// document policyJSON (named policyName) attached, through MinIO's admin
// API: the server enforces it on every request the user signs.
func (s *Server) AddUser(t testing.TB, policyName string, policyJSON []byte) *User {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatalf("testminio: endpoint %q: %v", s.Endpoint, err)
	}
	adm, err := madmin.New(u.Host, s.AccessKey, s.SecretKey, false)
	if err != nil {
		t.Fatalf("testminio: admin client: %v", err)
	}
	user := &User{AccessKey: "u" + randomHex(t, 8), SecretKey: randomHex(t, 20), srv: s}
	// A server just started may still be loading its IAM subsystem: a
	// policy it accepted can be "not found" for a moment. Try again until
	// opTimeout, then fail with the last error.
	deadline := time.Now().Add(opTimeout)
	for {
		err := s.addUser(adm, user, policyName, policyJSON)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testminio: %v\n%s", err, policyJSON)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return user
}

func (s *Server) addUser(adm *madmin.AdminClient, user *User, policyName string, policyJSON []byte) error {
	ctx, cancel := opContext()
	defer cancel()
	if err := adm.AddCannedPolicy(ctx, policyName, policyJSON); err != nil {
		return fmt.Errorf("add policy %s: %w", policyName, err)
	}
	if err := adm.AddUser(ctx, user.AccessKey, user.SecretKey); err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policyName}, User: user.AccessKey}); err != nil {
		return fmt.Errorf("attach policy %s: %w", policyName, err)
	}
	return nil
}

// Env is the environment a client needs to reach the server as u.
func (u *User) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + u.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + u.SecretKey,
		"AWS_REGION=us-east-1",
		"MC_S3_ENDPOINT=" + u.srv.Endpoint,
	}
}

// Getenv looks up a variable in Env.
func (u *User) Getenv(key string) (string, bool) {
	for _, kv := range u.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// Client is an S3 client signing as u.
func (u *User) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(u.srv.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(u.AccessKey, u.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}
