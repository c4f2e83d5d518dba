package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalUntrustedIdentity: a local runner of an untrusted build runs
// with the untrusted identity's keys and none of the host's AWS credentials
// (keys, profile, credential files), while a trusted build's runner gets
// the host's (the control); without untrusted keys none is launched.
func TestLocalUntrustedIdentity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=WRITERKEYID", "AWS_SECRET_ACCESS_KEY=trusted-secret-canary",
		"AWS_PROFILE=writer", "AWS_SHARED_CREDENTIALS_FILE=/root/.aws/writer"}
	untrusted := append(base[:len(base):len(base)],
		"MC_UNTRUSTED_AWS_ACCESS_KEY_ID=UNTRUSTEDID", "MC_UNTRUSTED_AWS_SECRET_ACCESS_KEY=untrusted-secret")

	launch := func(env []string, isUntrusted bool) (string, error) {
		out := filepath.Join(t.TempDir(), "env")
		p := &LocalProvider{Dir: filepath.Join(dir, "runners"), Env: env}
		id, err := p.Launch(ctx, LaunchSpec{Workspace: "w", RunID: "r", JobID: "j", Untrusted: isUntrusted,
			ExpiresAt: time.Now().Add(time.Hour), UserData: "#!/bin/sh\nenv > " + out + ".tmp && mv " + out + ".tmp " + out + "\n"})
		if err != nil {
			return "", err
		}
		defer p.Terminate(ctx, []string{id})
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(out); err == nil {
				return string(b), nil
			}
			if time.Now().After(deadline) {
				t.Fatal("the user-data did not run")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	got, err := launch(untrusted, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "AWS_ACCESS_KEY_ID=UNTRUSTEDID\n") || !strings.Contains(got, "AWS_SECRET_ACCESS_KEY=untrusted-secret\n") {
		t.Errorf("the untrusted runner lacks the untrusted identity:\n%s", got)
	}
	for _, bad := range []string{"WRITERKEYID", "trusted-secret-canary", "AWS_PROFILE", "/root/.aws/writer"} {
		if strings.Contains(got, bad) {
			t.Errorf("the untrusted runner got %q:\n%s", bad, got)
		}
	}

	got, err = launch(untrusted, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "AWS_SECRET_ACCESS_KEY=trusted-secret-canary\n") {
		t.Errorf("a trusted runner lacks the host's identity (control):\n%s", got)
	}

	if _, err := launch(base, true); err == nil || !strings.Contains(err.Error(), "MC_UNTRUSTED_AWS_ACCESS_KEY_ID") {
		t.Fatalf("an untrusted launch without untrusted keys: %v, want refused", err)
	}
}
