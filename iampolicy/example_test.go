package iampolicy_test

import (
	"fmt"

	"github.com/mc-build/mc/iampolicy"
)

// The policies of the shared cache s3://acme-mc-cache/v1, as the README
// shows them.
func ExampleJSON() {
	for _, r := range iampolicy.Roles() {
		b, err := iampolicy.JSON(r, "acme-mc-cache", "v1")
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s:\n%s", r, b)
	}
	// Output:
	// writer:
	// {"Version": "2012-10-17", "Statement": [
	//   {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::acme-mc-cache/v1/*"]},
	//   {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::acme-mc-cache"], "Condition": {"StringLike": {"s3:prefix": "v1/*"}}}
	// ]}
	// readonly:
	// {"Version": "2012-10-17", "Statement": [
	//   {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::acme-mc-cache/v1/cas/*", "arn:aws:s3:::acme-mc-cache/v1/ac/*", "arn:aws:s3:::acme-mc-cache/v1/untrusted/cas/*", "arn:aws:s3:::acme-mc-cache/v1/untrusted/ac/*"]},
	//   {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::acme-mc-cache"], "Condition": {"StringLike": {"s3:prefix": "v1/*"}}}
	// ]}
	// untrusted:
	// {"Version": "2012-10-17", "Statement": [
	//   {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::acme-mc-cache/v1/cas/*", "arn:aws:s3:::acme-mc-cache/v1/ac/*", "arn:aws:s3:::acme-mc-cache/v1/untrusted/*"]},
	//   {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::acme-mc-cache/v1/untrusted/*"]},
	//   {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::acme-mc-cache"], "Condition": {"StringLike": {"s3:prefix": "v1/*"}}}
	// ]}
}
