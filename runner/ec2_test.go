package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/ec2double"
)

// startEC2Double starts internal/ec2double (a double of the EC2 control
// plane only) for a test, in a directory of its own, with static
// credentials and no AWS configuration files for the provider to read.
func startEC2Double(t *testing.T) (d *ec2double.Server, dir string, getenv func(string) (string, bool)) {
	t.Helper()
	dir = t.TempDir()
	d, err := ec2double.Start(dir, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	env := map[string]string{"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none")}
	return d, dir, func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestEC2Provider drives the EC2 provider against internal/ec2double, a
// double of the EC2 control plane only: its instances are local process
// groups running the user-data.
func TestEC2Provider(t *testing.T) {
	d, dir, getenv := startEC2Double(t)
	ctx := context.Background()
	p, err := NewEC2(ctx, EC2Options{Region: "us-east-1", AMI: "ami-0abc", InstanceType: "c6i.xlarge",
		Endpoint: d.URL, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	spec := LaunchSpec{Workspace: "w", RunID: "r", JobID: "j", Label: "//p:s", ExpiresAt: time.Now().Add(time.Hour),
		UserData: "#!/bin/sh\ntouch " + marker + "\nsleep 60\n"}

	for _, code := range []string{"InsufficientInstanceCapacity", "RequestLimitExceeded"} {
		t.Run(code, func(t *testing.T) {
			d.FailNext(code, 1)
			if _, err := p.Launch(ctx, spec); !errors.Is(err, ErrCapacity) {
				t.Fatalf("launch error %v, want one wrapping ErrCapacity", err)
			}
		})
	}
	t.Run("launch, list, terminate", func(t *testing.T) {
		id, err := p.Launch(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the user-data did not run")
			}
			time.Sleep(20 * time.Millisecond)
		}
		insts, err := p.List(ctx, "w")
		if err != nil || len(insts) != 1 || insts[0].ID != id || !insts[0].Live() || insts[0].Tags[TagStage] != "//p:s" {
			t.Fatalf("List: %+v, %v; want %s live, tagged", insts, err, id)
		}
		if other, _ := p.List(ctx, "another"); len(other) != 0 {
			t.Fatalf("another workspace lists %+v", other)
		}
		if err := p.Terminate(ctx, []string{id}); err != nil {
			t.Fatal(err)
		}
		insts, _ = p.List(ctx, "w")
		if len(insts) != 1 || insts[0].Live() || len(d.Live()) != 0 {
			t.Fatalf("after Terminate: %+v (double: %v live)", insts, d.Live())
		}
	})
}
