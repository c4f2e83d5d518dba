package runner

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// EC2Options configure NewEC2: the settings of ec2(...) in WORKSPACE.mc.
type EC2Options struct {
	Region         string
	Subnet         string
	SecurityGroups []string
	AMI            string
	InstanceType   string
	DiskGB         int // root volume size; 0: 30
	// InstanceProfile is the IAM instance profile (name or ARN) whose role
	// gives the agent its S3 access; "" for none (the AMI must then bring
	// credentials of its own).
	InstanceProfile string
	// UntrustedInstanceProfile is the instance profile of untrusted builds'
	// runners (LaunchSpec.Untrusted), whose role cannot write the trusted
	// tier (iampolicy.Untrusted). Without it an untrusted
	// build's runner is not launched at all: never with the trusted one.
	UntrustedInstanceProfile string
	// Endpoint overrides the EC2 API endpoint (MC_EC2_ENDPOINT: the test
	// double of the control plane).
	Endpoint string
	// Getenv looks up AWS_* credentials; nil: os.LookupEnv. What it leaves
	// unset the SDK's default chain resolves.
	Getenv func(string) (string, bool)
}

// EC2 is the Provider of EC2 instances.
type EC2 struct {
	o      EC2Options
	client *ec2.Client
}

var _ Provider = (*EC2)(nil)

// capacityCodes are the EC2 error codes retried later (ErrCapacity).
var capacityCodes = map[string]bool{
	"InsufficientInstanceCapacity": true, "InsufficientCapacity": true, "RequestLimitExceeded": true,
	"Throttling": true, "ThrottlingException": true, "InsufficientHostCapacity": true,
}

// NewEC2 returns the EC2 provider. The SDK's own retries are off: capacity
// and throttling errors come back as ErrCapacity, which the executor retries
// with its backoff and reports.
func NewEC2(ctx context.Context, o EC2Options) (*EC2, error) {
	if o.UntrustedInstanceProfile != "" && o.UntrustedInstanceProfile == o.InstanceProfile {
		return nil, fmt.Errorf("ec2: the untrusted instance profile %q is also the trusted one; untrusted builds' runners need a role that cannot write the trusted tier", o.InstanceProfile)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	lookup := func(k string) string { v, _ := getenv(k); return v }
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = 60 * time.Second })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc), config.WithRegion(o.Region), config.WithRetryMaxAttempts(1),
	}
	if id, secret := lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, lookup("AWS_SESSION_TOKEN"))))
	}
	if f := lookup("AWS_CONFIG_FILE"); f != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{f}))
	}
	if f := lookup("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{f}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("ec2: %w", err)
	}
	client := ec2.NewFromConfig(cfg, func(c *ec2.Options) {
		if o.Endpoint != "" {
			c.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return &EC2{o: o, client: client}, nil
}

// Name is "ec2".
func (p *EC2) Name() string { return "ec2" }

// Launch runs one instance: IMDSv2 required, terminated on shutdown, root
// volume deleted on termination, instance and volume tagged.
func (p *EC2) Launch(ctx context.Context, spec LaunchSpec) (string, error) {
	itype, ami, disk := p.o.InstanceType, p.o.AMI, p.o.DiskGB
	if spec.InstanceType != "" {
		itype = spec.InstanceType
	}
	if spec.AMI != "" {
		ami = spec.AMI
	}
	if spec.DiskGB > 0 {
		disk = spec.DiskGB
	}
	if disk <= 0 {
		disk = 30
	}
	var tags []types.Tag
	for k, v := range spec.Tags() {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(ami),
		InstanceType: types.InstanceType(itype),
		MinCount:     aws.Int32(1), MaxCount: aws.Int32(1),
		UserData:                          aws.String(base64.StdEncoding.EncodeToString([]byte(spec.UserData))),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		// IMDSv2 only, and its answers go no further than one hop: not
		// into a stage's network namespace, were a stage to reach it.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens: types.HttpTokensStateRequired, HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String("/dev/xvda"),
			Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(int32(disk)), DeleteOnTermination: aws.Bool(true),
				VolumeType: types.VolumeTypeGp3},
		}},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
		// A request repeated (by a network retry) launches one instance.
		ClientToken: aws.String(fmt.Sprintf("%s/%s/%d", spec.RunID, spec.JobID, spec.Try)),
	}
	if p.o.Subnet != "" {
		in.SubnetId = aws.String(p.o.Subnet)
	}
	ip := p.o.InstanceProfile
	if spec.Untrusted {
		if p.o.UntrustedInstanceProfile == "" {
			return "", errors.New("ec2: an untrusted build's runner needs its own instance profile (untrusted_instance_profile in ec2(...), or MC_EC2_UNTRUSTED_INSTANCE_PROFILE), whose role cannot write the trusted tier; not launched with the trusted one")
		}
		ip = p.o.UntrustedInstanceProfile
	}
	if strings.HasPrefix(ip, "arn:") {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(ip)}
	} else if ip != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(ip)}
	}
	if len(p.o.SecurityGroups) > 0 {
		in.SecurityGroupIds = p.o.SecurityGroups
	}
	out, err := p.client.RunInstances(ctx, in)
	if err != nil {
		return "", wrapCapacity(err)
	}
	if len(out.Instances) != 1 || out.Instances[0].InstanceId == nil {
		return "", fmt.Errorf("ec2 RunInstances: %d instances in the answer, want 1", len(out.Instances))
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

func wrapCapacity(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && capacityCodes[ae.ErrorCode()] {
		return fmt.Errorf("ec2: %s: %w", ae.ErrorCode(), ErrCapacity)
	}
	return fmt.Errorf("ec2: %w", err)
}

// Terminate terminates the instances.
func (p *EC2) Terminate(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := p.client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceID.NotFound" {
			return nil
		}
		return fmt.Errorf("ec2 TerminateInstances: %w", err)
	}
	return nil
}

// List returns the instances tagged mc:workspace=workspace.
func (p *EC2) List(ctx context.Context, workspace string) ([]Instance, error) {
	var out []Instance
	pg := ec2.NewDescribeInstancesPaginator(p.client, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + TagWorkspace), Values: []string{workspace}}},
	})
	// Unlike launches, a listing is safe to repeat: a connection reset on a
	// kept-alive connection (seen from a loaded machine) is retried.
	retries := func(o *ec2.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = 3 })
	}
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx, retries)
		if err != nil {
			return nil, fmt.Errorf("ec2 DescribeInstances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				in := Instance{ID: aws.ToString(i.InstanceId), Tags: map[string]string{}, Launched: aws.ToTime(i.LaunchTime)}
				if i.State != nil {
					in.State = string(i.State.Name)
				}
				for _, t := range i.Tags {
					in.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
				out = append(out, in)
			}
		}
	}
	return out, nil
}

// Reach says how to get onto a kept instance.
func (p *EC2) Reach(id string) string {
	return fmt.Sprintf("EC2 instance %s (%s): `aws ssm start-session --region %s --target %s`, or ssh to its private address; it terminates itself at its TTL, or run `mc runners reap --runners=ec2 --all`",
		id, p.o.Region, p.o.Region, id)
}
