package builtins

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

func TestLoadWorkspace(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want graph.Workspace // Root is filled in
	}{
		{"empty file", "", graph.Workspace{Name: "<dir>"}},
		{"spec example", `
workspace(
    name = "acme",
    ignore = ["node_modules", "dist"],
    cache = "s3://acme-mc-cache/v1",
    registry = "registry.example.com/acme",
    runners = ec2(
        region = "us-east-2",
        subnet = "subnet-0abc",
        security_groups = ["sg-0abc"],
        ami = "ami-0abc",
        instance_type = "c6i.xlarge",
        max_instances = 20,
        ttl = "2h",
    ),
)
`, graph.Workspace{
			Name: "acme", Ignore: []string{"node_modules", "dist"}, Cache: "s3://acme-mc-cache/v1",
			Registry: "registry.example.com/acme",
			Runners: &graph.EC2Runners{
				Region: "us-east-2", Subnet: "subnet-0abc", SecurityGroups: []string{"sg-0abc"}, AMI: "ami-0abc",
				InstanceType: "c6i.xlarge", MaxInstances: 20, Warm: -1, TTL: 2 * time.Hour,
			},
		}},
		{"ec2 defaults, trailing slash on cache, registry with port", `
r = ec2(region = "eu-central-1", ami = "ami-1", instance_type = "m7g.metal-48xl")
workspace(name = "w", cache = "s3://bucket/", registry = "localhost:5000", runners = r)
`, graph.Workspace{
			Name: "w", Cache: "s3://bucket", Registry: "localhost:5000",
			Runners: &graph.EC2Runners{Region: "eu-central-1", AMI: "ami-1", InstanceType: "m7g.metal-48xl", MaxInstances: 4, Warm: -1, TTL: 2 * time.Hour},
		}},
		{"go-style ttl", `workspace(name = "w", runners = ec2(region = "us-gov-west-1", ami = "ami-1", instance_type = "c6i.large", ttl = "1h30m"))`,
			graph.Workspace{Name: "w", Runners: &graph.EC2Runners{Region: "us-gov-west-1", AMI: "ami-1", InstanceType: "c6i.large", MaxInstances: 4, Warm: -1, TTL: 90 * time.Minute}}},
		{"warm pool cap", `workspace(name = "w", runners = ec2(region = "us-east-2", ami = "ami-1", instance_type = "c6i.large", warm = 0))`,
			graph.Workspace{Name: "w", Runners: &graph.EC2Runners{Region: "us-east-2", AMI: "ami-1", InstanceType: "c6i.large", MaxInstances: 4, Warm: 0, TTL: 2 * time.Hour}}},
		{"None runners", `workspace(name = "w", runners = None)`, graph.Workspace{Name: "w"}},
		{"instance profile ARN", `workspace(name = "w", runners = ec2(region = "us-east-2", ami = "ami-1", instance_type = "c6i.large", instance_profile = "arn:aws:iam::123456789012:instance-profile/mc-runner"))`,
			graph.Workspace{Name: "w", Runners: &graph.EC2Runners{Region: "us-east-2", AMI: "ami-1", InstanceType: "c6i.large", MaxInstances: 4, Warm: -1, TTL: 2 * time.Hour,
				InstanceProfile: "arn:aws:iam::123456789012:instance-profile/mc-runner"}}},
		{"instance profile name", `workspace(name = "w", runners = ec2(region = "us-east-2", ami = "ami-1", instance_type = "c6i.large", instance_profile = "mc-runner"))`,
			graph.Workspace{Name: "w", Runners: &graph.EC2Runners{Region: "us-east-2", AMI: "ami-1", InstanceType: "c6i.large", MaxInstances: 4, Warm: -1, TTL: 2 * time.Hour,
				InstanceProfile: "mc-runner"}}},
		{"untrusted instance profile", `workspace(name = "w", runners = ec2(region = "us-east-2", ami = "ami-1", instance_type = "c6i.large", instance_profile = "mc-runner", untrusted_instance_profile = "mc-runner-untrusted"))`,
			graph.Workspace{Name: "w", Runners: &graph.EC2Runners{Region: "us-east-2", AMI: "ami-1", InstanceType: "c6i.large", MaxInstances: 4, Warm: -1, TTL: 2 * time.Hour,
				InstanceProfile: "mc-runner", UntrustedInstanceProfile: "mc-runner-untrusted"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"WORKSPACE.mc": tt.src})
			got, err := LoadWorkspace(context.Background(), root)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Root = root
			if want.Name == "<dir>" {
				want.Name = filepath.Base(root)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
				if got.Runners != nil && want.Runners != nil {
					t.Errorf("runners: got %+v, want %+v", *got.Runners, *want.Runners)
				}
			}
		})
	}
}

func TestLoadWorkspaceErrors(t *testing.T) {
	const ec2OK = `region = "us-east-2", ami = "ami-0abc", instance_type = "c6i.xlarge"`
	tests := []struct{ name, src, want string }{
		{"syntax", "workspace(name = )\n", `WORKSPACE.mc:1:18: got ')', want primary expression`},
		{"twice", "workspace(name = \"a\")\nworkspace(name = \"b\")\n", `WORKSPACE.mc:2:10: workspace: called twice (first called at WORKSPACE.mc:1:10)`},
		{"unknown keyword", `workspace(name = "a", ignored = [])`, `WORKSPACE.mc:1:10: workspace: unexpected keyword argument "ignored" (did you mean "ignore"?)`},
		{"missing name", `workspace(cache = "")`, `WORKSPACE.mc:1:10: workspace: missing argument for name`},
		{"bad name", `workspace(name = "a b")`, `WORKSPACE.mc:1:10: workspace: name: invalid workspace name "a b" (letters, digits, . _ -, starting with a letter or digit)`},
		{"bad ignore", `workspace(name = "a", ignore = ["../x"])`, `WORKSPACE.mc:1:10: workspace: ignore: "../x": must be a clean relative path (no empty, "." or ".." components)`},
		{"bad ignore pattern", `workspace(name = "a", ignore = ["[x"])`, `WORKSPACE.mc:1:10: workspace: ignore: "[x": invalid pattern: syntax error in pattern`},
		{"ignore type", `workspace(name = "a", ignore = "dist")`, `WORKSPACE.mc:1:10: workspace: for parameter "ignore": got string, want list of strings`},
		{"cache scheme", `workspace(name = "a", cache = "gs://b")`, `WORKSPACE.mc:1:10: workspace: cache: "gs://b": want "s3://bucket" or "s3://bucket/prefix"`},
		{"cache bucket", `workspace(name = "a", cache = "s3://B")`, `WORKSPACE.mc:1:10: workspace: cache: "s3://B": invalid bucket name "B" (3-63 lowercase letters, digits, . and -)`},
		{"cache prefix", `workspace(name = "a", cache = "s3://bucket/a//b")`, `WORKSPACE.mc:1:10: workspace: cache: "s3://bucket/a//b": the prefix must be a clean path (no empty, '.' or '..' components)`},
		{"registry without host", `workspace(name = "a", registry = "acme")`, `WORKSPACE.mc:1:10: workspace: registry: invalid registry "acme": the first component must be a registry host (with a '.' or a port, or localhost)`},
		{"registry syntax", `workspace(name = "a", registry = "https://r.io")`, `WORKSPACE.mc:1:10: workspace: registry: invalid registry "https://r.io": want host[:port][/path], like "registry.example.com/acme"`},
		{"runners type", `workspace(name = "a", runners = "ec2")`, `WORKSPACE.mc:1:10: workspace: for parameter "runners": got string, want ec2(...)`},
		{"ec2 region", `ec2(region = "Ohio", ami = "ami-1", instance_type = "c6i.large")`, `WORKSPACE.mc:1:4: ec2: region: "Ohio" is not an AWS region name (like "us-east-2")`},
		{"ec2 missing ami", `ec2(region = "us-east-2", instance_type = "c6i.large")`, `WORKSPACE.mc:1:4: ec2: missing argument for ami`},
		{"ec2 ami", `ec2(region = "us-east-2", ami = "ubuntu", instance_type = "c6i.large")`, `WORKSPACE.mc:1:4: ec2: ami: "ubuntu" is not an AMI ID (like "ami-0abc")`},
		{"ec2 subnet", `ec2(` + ec2OK + `, subnet = "sub-1")`, `WORKSPACE.mc:1:4: ec2: subnet: "sub-1" is not a subnet ID (like "subnet-0abc")`},
		{"ec2 security group", `ec2(` + ec2OK + `, security_groups = ["sg-1", "default"])`, `WORKSPACE.mc:1:4: ec2: security_groups: "default" is not a security group ID (like "sg-0abc")`},
		{"ec2 duplicate security group", `ec2(` + ec2OK + `, security_groups = ["sg-1", "sg-1"])`, `WORKSPACE.mc:1:4: ec2: security_groups: "sg-1" is listed twice`},
		{"ec2 instance type", `ec2(region = "us-east-2", ami = "ami-1", instance_type = "large")`, `WORKSPACE.mc:1:4: ec2: instance_type: "large" is not an EC2 instance type (like "c6i.xlarge")`},
		{"ec2 max_instances", `ec2(` + ec2OK + `, max_instances = 0)`, `WORKSPACE.mc:1:4: ec2: max_instances: must be at least 1, got 0`},
		{"ec2 max_instances type", `ec2(` + ec2OK + `, max_instances = "3")`, `WORKSPACE.mc:1:4: ec2: for parameter "max_instances": got string, want int`},
		{"ec2 warm", `ec2(` + ec2OK + `, warm = -3)`, `WORKSPACE.mc:1:4: ec2: warm: must be 0 (no spare runners) or more, got -3`},
		{"ec2 ttl", `ec2(` + ec2OK + `, ttl = "2 hours")`, `WORKSPACE.mc:1:4: ec2: ttl: invalid duration "2 hours" (want a number with a unit, like "90s", "30m" or "2h")`},
		{"ec2 instance profile", `ec2(` + ec2OK + `, instance_profile = "mc runner")`, `WORKSPACE.mc:1:4: ec2: instance_profile: "mc runner" is not an IAM instance profile name or ARN (like "mc-runner")`},
		{"ec2 untrusted instance profile", `ec2(` + ec2OK + `, untrusted_instance_profile = "mc untrusted")`, `WORKSPACE.mc:1:4: ec2: untrusted_instance_profile: "mc untrusted" is not an IAM instance profile name or ARN (like "mc-runner-untrusted")`},
		{"ec2 untrusted instance profile is the trusted one", `ec2(` + ec2OK + `, instance_profile = "mc-runner", untrusted_instance_profile = "mc-runner")`, `WORKSPACE.mc:1:4: ec2: untrusted_instance_profile: "mc-runner" is also instance_profile; untrusted builds' runners need a role that cannot write the trusted tier`},
		{"ec2 ttl zero", `ec2(` + ec2OK + `, ttl = "0s")`, `WORKSPACE.mc:1:4: ec2: ttl: duration "0s" must be positive`},
		{"no load", `load("//x.star", "y")`, `WORKSPACE.mc:1:1: cannot load //x.star: load() is not supported in WORKSPACE.mc`},
		{"no stage", `stage(name = "x", cmd = "y")`, `WORKSPACE.mc:1:1: undefined: stage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"WORKSPACE.mc": tt.src})
			_, err := LoadWorkspace(context.Background(), root)
			var le *lang.Error
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *lang.Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestLoadWorkspaceMissing(t *testing.T) {
	_, err := LoadWorkspace(context.Background(), t.TempDir())
	if !errors.Is(err, lang.ErrNoWorkspace) {
		t.Errorf("got %v, want ErrNoWorkspace", err)
	}
}

func TestReferences(t *testing.T) {
	for _, tt := range []struct {
		ref string
		ok  bool
	}{
		{"alpine", true},
		{"alpine:3.20", true},
		{"library/alpine:latest", true},
		{"docker.io/library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"localhost:5000/app:v1", true},
		{"[::1]:5000/app", true},
		{"ghcr.io/org/repo-name_x/sub.part:tag_1.2-3", true},
		{"a__b/c--d", true},
		{"Alpine", false},
		{"alpine:", false},
		{":tag", false},
		{"alpine:-x", false},
		{"a/", false},
		{"a//b", false},
		{"a_-b", false},
		{"alpine@sha256:abc", false},
		{"https://r.io/x", false},
		{"a:x y", false},
	} {
		err := checkReference(tt.ref)
		if (err == nil) != tt.ok {
			t.Errorf("checkReference(%q) = %v, want ok=%v", tt.ref, err, tt.ok)
		}
	}
}
