// Package iampolicy writes the IAM policies of the identities that use a
// shared cache (s3://bucket/prefix): the one statement of who may read and
// write what, used by the documentation and tested against a real S3
// server (MinIO) with real users.
//
// The layout they guard (README, runner/doc.go, cas/tier.go):
//
//	prefix/cas/, prefix/ac/            the trusted tier: blobs, action results
//	prefix/runs/                       trusted builds' runner jobs (sealed secrets included)
//	prefix/untrusted/{cas,ac,runs}/    the untrusted tier: untrusted builds write only here
//
// Three identities:
//
//   - Writer: trusted builds (a developer's, pushes to the default branch,
//     releases), their coordinators and their runners (the EC2 instance
//     profile of ec2(instance_profile=…)). Everything under the prefix.
//   - ReadOnly: builds that write nothing (--cache-write=false). They read
//     the blobs and results of both tiers and nothing of runs/: job specs,
//     logs and secrets objects stay unreadable to them.
//   - Untrusted: untrusted builds (mc build --untrusted, mc serve's pull
//     requests), their coordinators and their runners (the instance profile
//     of ec2(untrusted_instance_profile=…)). They read the trusted tier's
//     blobs and results, never its runs/, and write only prefix/untrusted/.
//
// Runner secrets are sealed to the runner's key (runner/sealed.go) whatever
// the policy; the policies add that only trusted identities can read the
// sealed objects or write the heartbeat whose key they are sealed to.
package iampolicy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Role names one of the identities.
type Role string

const (
	Writer    Role = "writer"
	ReadOnly  Role = "readonly"
	Untrusted Role = "untrusted"
)

// Roles are all the roles, in the order the documentation shows them.
func Roles() []Role { return []Role{Writer, ReadOnly, Untrusted} }

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Document.
type Statement struct {
	Effect    string                    `json:"Effect"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// Policy returns role's policy for the shared cache s3://bucket/prefix.
func Policy(role Role, bucket, prefix string) (Document, error) {
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || strings.ContainsAny(bucket, "/*?") {
		return Document{}, fmt.Errorf("iampolicy: bucket %q: want a bucket name", bucket)
	}
	if strings.ContainsAny(prefix, "*?") {
		return Document{}, fmt.Errorf("iampolicy: prefix %q: wildcards would widen the policy", prefix)
	}
	obj := func(sub string) string { return "arn:aws:s3:::" + bucket + "/" + join(prefix, sub) }
	// s3:ListBucket: without it S3 answers a missing object with 403
	// instead of 404, which mc must count as a failure, not a miss.
	list := Statement{Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{"arn:aws:s3:::" + bucket},
		Condition: map[string]map[string]any{"StringLike": {"s3:prefix": join(prefix, "*")}}}
	// What every identity reads: the blobs and results of both tiers.
	results := []string{obj("cas/*"), obj("ac/*"), obj("untrusted/cas/*"), obj("untrusted/ac/*")}
	var st []Statement
	switch role {
	case Writer:
		st = []Statement{
			{Effect: "Allow", Action: []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, Resource: []string{obj("*")}},
			list,
		}
	case ReadOnly:
		st = []Statement{
			{Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: results},
			list,
		}
	case Untrusted:
		st = []Statement{
			{Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{obj("cas/*"), obj("ac/*"), obj("untrusted/*")}},
			{Effect: "Allow", Action: []string{"s3:PutObject", "s3:DeleteObject"}, Resource: []string{obj("untrusted/*")}},
			list,
		}
	default:
		return Document{}, fmt.Errorf("iampolicy: unknown role %q (want %s, %s or %s)", role, Writer, ReadOnly, Untrusted)
	}
	return Document{Version: "2012-10-17", Statement: st}, nil
}

// JSON is role's policy as JSON, ready for IAM (or MinIO): one statement a
// line, as the README shows it.
func JSON(role Role, bucket, prefix string) ([]byte, error) {
	d, err := Policy(role, bucket, prefix)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\"Version\": %q, \"Statement\": [\n", d.Version)
	for i, s := range d.Statement {
		line, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		b.WriteString("  ")
		b.Write(spaced(line))
		if i < len(d.Statement)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return []byte(b.String()), nil
}

// spaced puts a space after the colons and commas of compact JSON that are
// not inside strings.
func spaced(compact []byte) []byte {
	out := make([]byte, 0, len(compact)+len(compact)/8)
	inString, escaped := false, false
	for _, c := range compact {
		out = append(out, c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ':' || c == ','):
			out = append(out, ' ')
		}
	}
	return out
}

func join(prefix, sub string) string {
	if prefix == "" {
		return sub
	}
	return prefix + "/" + sub
}
