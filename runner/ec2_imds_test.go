package runner

import (
	"context"
	"testing"
	"time"
)

// TestEC2LaunchIMDSv2 checks what the provider asks EC2 for (on the EC2
// double, which records every RunInstances request; EC2 itself cannot be
// reached from here): the metadata service with session tokens only
// (IMDSv2) and a PUT response hop limit of 1, so that the token a stage
// would need never crosses into a network namespace of its own.
func TestEC2LaunchIMDSv2(t *testing.T) {
	d, _, getenv := startEC2Double(t)
	ctx := context.Background()
	p, err := NewEC2(ctx, EC2Options{Region: "us-east-1", AMI: "ami-0abc", InstanceType: "c6i.xlarge",
		Endpoint: d.URL, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	spec := LaunchSpec{Workspace: "w", RunID: "r", JobID: "j", Label: "//p:s", ExpiresAt: time.Now().Add(time.Hour),
		UserData: "#!/bin/sh\nexit 0\n"}
	id, err := p.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Terminate(ctx, []string{id})
	ls := d.Launches()
	if len(ls) != 1 {
		t.Fatalf("%d RunInstances requests, want 1", len(ls))
	}
	for k, want := range map[string]string{
		"MetadataOptions.HttpTokens":              "required",
		"MetadataOptions.HttpPutResponseHopLimit": "1",
		"MetadataOptions.HttpEndpoint":            "enabled",
	} {
		if got := ls[0].Get(k); got != want {
			t.Errorf("RunInstances %s = %q, want %q", k, got, want)
		}
	}
}
