package builtins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.starlark.net/starlark"

	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// Defaults of ec2(...) for the settings that may be left out.
const (
	defaultMaxInstances = 4
	defaultRunnerTTL    = "2h"
)

const workspaceKey = "mc.builtins.workspace"

// wsState is what WORKSPACE.mc's evaluation builds.
type wsState struct {
	ws       *graph.Workspace
	declared *graph.Pos // where workspace() was called, once it was
}

// LoadWorkspace evaluates root/WORKSPACE.mc into the workspace settings.
// Without a workspace() call the defaults apply (the name is the root
// directory's name). Mistakes are *lang.Error with positions.
func LoadWorkspace(ctx context.Context, root string) (*graph.Workspace, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("loading workspace: %w", err)
	}
	src, err := os.ReadFile(filepath.Join(abs, lang.WorkspaceFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (in %s)", lang.ErrNoWorkspace, abs)
		}
		return nil, fmt.Errorf("loading workspace: %w", err)
	}
	st := &wsState{ws: &graph.Workspace{Root: abs, Name: filepath.Base(abs)}}
	thread := lang.NewThread(lang.WorkspaceFile, stderrPrint)
	thread.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
		return nil, errors.New("load() is not supported in " + lang.WorkspaceFile)
	}
	thread.SetLocal(workspaceKey, st)
	predeclared := starlark.StringDict{
		"workspace": starlark.NewBuiltin("workspace", workspaceBuiltin),
		"ec2":       starlark.NewBuiltin("ec2", ec2Builtin),
	}
	if _, err := lang.Exec(ctx, thread, lang.WorkspaceFile, src, predeclared); err != nil {
		return nil, err
	}
	return st.ws, nil
}

var (
	workspaceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	bucketRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// workspace(name, ignore, cache, registry, runners) sets the workspace's
// settings; it may be called once.
func workspaceBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "workspace"
	var (
		name, cache, registry string
		ignore                stringList
		runners               runnersArg
	)
	if err := unpackKeywords(thread, fn, args, kwargs,
		"name", &name, "ignore??", &ignore, "cache??", &cache, "registry??", &registry, "runners??", &runners,
	); err != nil {
		return nil, err
	}
	st, ok := thread.Local(workspaceKey).(*wsState)
	if !ok {
		return nil, lang.ThreadErrorf(thread, "workspace() can only be called in %s", lang.WorkspaceFile)
	}
	fail := func(format string, args ...any) error {
		return lang.ThreadErrorf(thread, fn+": "+format, args...)
	}
	if st.declared != nil {
		return nil, fail("called twice (first called at %s)", *st.declared)
	}
	if !workspaceNameRE.MatchString(name) {
		return nil, fail("name: invalid workspace name %q (letters, digits, . _ -, starting with a letter or digit)", name)
	}
	for _, e := range ignore {
		if err := lang.CheckIgnore(e); err != nil {
			return nil, fail("ignore: %q: %v", e, err)
		}
	}
	cache, err := normalizeCacheURL(cache)
	if err != nil {
		return nil, fail("cache: %v", err)
	}
	if registry != "" {
		if err := checkRegistry(registry); err != nil {
			return nil, fail("registry: %v", err)
		}
	}
	ws := st.ws
	ws.Name, ws.Ignore, ws.Cache, ws.Registry, ws.Runners = name, ignore, cache, registry, runners.r
	if s := lang.Stack(thread); len(s) > 0 {
		st.declared = &s[0]
	} else {
		st.declared = &graph.Pos{File: lang.WorkspaceFile}
	}
	return starlark.None, nil
}

// normalizeCacheURL validates cache = "s3://bucket[/prefix]" and drops a
// trailing slash.
func normalizeCacheURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", fmt.Errorf("%q: want \"s3://bucket\" or \"s3://bucket/prefix\"", s)
	}
	rest = strings.TrimSuffix(rest, "/")
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !bucketRE.MatchString(bucket) || strings.Contains(bucket, "..") {
		return "", fmt.Errorf("%q: invalid bucket name %q (3-63 lowercase letters, digits, . and -)", s, bucket)
	}
	if prefix != "" {
		for _, c := range strings.Split(prefix, "/") {
			if c == "" || c == "." || c == ".." {
				return "", fmt.Errorf("%q: the prefix must be a clean path (no empty, '.' or '..' components)", s)
			}
		}
		return "s3://" + bucket + "/" + prefix, nil
	}
	return "s3://" + bucket, nil
}

// ec2Value is the Starlark value of ec2(...): runner settings that only
// workspace(runners = ...) accepts.
type ec2Value struct{ r graph.EC2Runners }

var _ starlark.Value = (*ec2Value)(nil)

func (v *ec2Value) String() string        { return fmt.Sprintf("ec2(region = %q, ...)", v.r.Region) }
func (v *ec2Value) Type() string          { return "ec2" }
func (v *ec2Value) Freeze()               {}
func (v *ec2Value) Truth() starlark.Bool  { return true }
func (v *ec2Value) Hash() (uint32, error) { return 0, errors.New("unhashable type: ec2") }

// runnersArg unpacks workspace(runners = ec2(...)).
type runnersArg struct{ r *graph.EC2Runners }

func (a *runnersArg) Unpack(v starlark.Value) error {
	e, ok := v.(*ec2Value)
	if !ok {
		return fmt.Errorf("got %s, want ec2(...)", v.Type())
	}
	r := e.r
	r.SecurityGroups = append([]string(nil), e.r.SecurityGroups...)
	a.r = &r
	return nil
}

var (
	regionRE       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	subnetRE       = regexp.MustCompile(`^subnet-[0-9a-f]+$`)
	securityRE     = regexp.MustCompile(`^sg-[0-9a-f]+$`)
	amiRE          = regexp.MustCompile(`^ami-[0-9a-f]+$`)
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	// An IAM instance profile: a name, or an ARN of one.
	instanceProfileRE = regexp.MustCompile(`^([\w+=,.@-]{1,128}|arn:aws[\w-]*:iam::\d{12}:instance-profile/[\w+=,.@/-]{1,128})$`)
)

// ec2(region, subnet, security_groups, ami, instance_type, max_instances,
// warm, ttl, instance_profile, untrusted_instance_profile) describes remote runners on EC2.
func ec2Builtin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "ec2"
	var (
		region, subnet, ami, instanceType string
		instanceProfile, untrustedProfile string
		securityGroups                    stringList
		maxInstances                      = defaultMaxInstances
		warm                              = -1
		ttl                               = defaultRunnerTTL
	)
	if err := unpackKeywords(thread, fn, args, kwargs,
		"region", &region, "ami", &ami, "instance_type", &instanceType,
		"subnet??", &subnet, "security_groups??", &securityGroups,
		"max_instances??", &maxInstances, "warm??", &warm, "ttl??", &ttl, "instance_profile??", &instanceProfile,
		"untrusted_instance_profile??", &untrustedProfile,
	); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return lang.ThreadErrorf(thread, fn+": "+format, args...)
	}
	if !regionRE.MatchString(region) {
		return nil, fail("region: %q is not an AWS region name (like \"us-east-2\")", region)
	}
	if subnet != "" && !subnetRE.MatchString(subnet) {
		return nil, fail("subnet: %q is not a subnet ID (like \"subnet-0abc\")", subnet)
	}
	seen := map[string]bool{}
	for _, sg := range securityGroups {
		if !securityRE.MatchString(sg) {
			return nil, fail("security_groups: %q is not a security group ID (like \"sg-0abc\")", sg)
		}
		if seen[sg] {
			return nil, fail("security_groups: %q is listed twice", sg)
		}
		seen[sg] = true
	}
	if !amiRE.MatchString(ami) {
		return nil, fail("ami: %q is not an AMI ID (like \"ami-0abc\")", ami)
	}
	if !instanceTypeRE.MatchString(instanceType) {
		return nil, fail("instance_type: %q is not an EC2 instance type (like \"c6i.xlarge\")", instanceType)
	}
	if instanceProfile != "" && !instanceProfileRE.MatchString(instanceProfile) {
		return nil, fail("instance_profile: %q is not an IAM instance profile name or ARN (like \"mc-runner\")", instanceProfile)
	}
	if untrustedProfile != "" && !instanceProfileRE.MatchString(untrustedProfile) {
		return nil, fail("untrusted_instance_profile: %q is not an IAM instance profile name or ARN (like \"mc-runner-untrusted\")", untrustedProfile)
	}
	if untrustedProfile != "" && untrustedProfile == instanceProfile {
		return nil, fail("untrusted_instance_profile: %q is also instance_profile; untrusted builds' runners need a role that cannot write the trusted tier", untrustedProfile)
	}
	if maxInstances <= 0 {
		return nil, fail("max_instances: must be at least 1, got %d", maxInstances)
	}
	if warm < -1 {
		return nil, fail("warm: must be 0 (no spare runners) or more, got %d", warm)
	}
	d, err := parseDuration(ttl)
	if err != nil {
		return nil, fail("ttl: %v", err)
	}
	return &ec2Value{r: graph.EC2Runners{
		Region:                   region,
		Subnet:                   subnet,
		SecurityGroups:           securityGroups,
		AMI:                      ami,
		InstanceType:             instanceType,
		MaxInstances:             maxInstances,
		Warm:                     warm,
		TTL:                      d,
		InstanceProfile:          instanceProfile,
		UntrustedInstanceProfile: untrustedProfile,
	}}, nil
}

// stderrPrint is where print() in WORKSPACE.mc goes.
func stderrPrint(pos graph.Pos, msg string) {
	fmt.Fprintf(os.Stderr, "DEBUG: %s: %s\n", pos, msg)
}
