package runner

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestEC2UntrustedProfile: an untrusted build's runner is launched with the
// untrusted instance profile (whose role cannot write the trusted tier,
// TestPoliciesOnMinIO) and tagged mc:tier=untrusted; a trusted one with the
// trusted profile (the control); and without an untrusted profile no
// untrusted runner is launched at all, rather than one with the trusted
// role. internal/ec2double is a double of the EC2 control plane only.
func TestEC2UntrustedProfile(t *testing.T) {
	d, _, getenv := startEC2Double(t)
	ctx := context.Background()
	open := func(untrustedProfile string) *EC2 {
		p, err := NewEC2(ctx, EC2Options{Region: "us-east-1", AMI: "ami-0abc", InstanceType: "c6i.xlarge",
			Endpoint: d.URL, Getenv: getenv, InstanceProfile: "mc-trusted", UntrustedInstanceProfile: untrustedProfile})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := LaunchSpec{Workspace: "w", RunID: "r", JobID: "j", Label: "//p:s", ExpiresAt: time.Now().Add(time.Hour),
		UserData: "#!/bin/sh\nexit 0\n"}
	untrusted := spec
	untrusted.Untrusted = true

	p := open("mc-untrusted")
	for _, c := range []struct {
		spec    LaunchSpec
		profile string
		tier    string
	}{
		{spec, "mc-trusted", ""},
		{untrusted, "mc-untrusted", UntrustedTier},
	} {
		n := len(d.Launches())
		id, err := p.Launch(ctx, c.spec)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Terminate(ctx, []string{id})
		ls := d.Launches()
		if len(ls) != n+1 {
			t.Fatalf("%d RunInstances requests, want %d", len(ls), n+1)
		}
		if got := ls[n].Get("IamInstanceProfile.Name"); got != c.profile {
			t.Errorf("untrusted=%v: instance profile %q, want %q", c.spec.Untrusted, got, c.profile)
		}
		insts, err := p.List(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			if in.ID == id && in.Tags[TagTier] != c.tier {
				t.Errorf("untrusted=%v: tag %s=%q, want %q", c.spec.Untrusted, TagTier, in.Tags[TagTier], c.tier)
			}
		}
	}

	if _, err := NewEC2(ctx, EC2Options{Region: "us-east-1", Endpoint: d.URL, Getenv: getenv,
		InstanceProfile: "mc-trusted", UntrustedInstanceProfile: "mc-trusted"}); err == nil {
		t.Fatal("the trusted profile accepted as the untrusted one")
	}
	n := len(d.Launches())
	_, err := open("").Launch(ctx, untrusted)
	if err == nil || !strings.Contains(err.Error(), "needs its own instance profile") {
		t.Fatalf("an untrusted launch without an untrusted profile: %v, want refused", err)
	}
	if len(d.Launches()) != n {
		t.Fatal("a RunInstances request was made anyway")
	}
}
