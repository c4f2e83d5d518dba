package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"registry.example.com/acme/api:1", true},
		{"127.0.0.1:5000/x@" + digest, true},
		{"localhost:5000/a/b/c:v1.2-rc_3", true},
		{"alpine", true},
		{"alpine:3.20@" + digest, true},
		{"UPPER/case", false},
		{"x:", false},
		{"x@", false},
		{"x@sha256:short", false},
		{"x@md5:" + strings.Repeat("0", 32), false},
		{"", false},
		{"a b:1", false},
		{"x:" + strings.Repeat("t", 129), false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			err := ParseReference(tc.ref)
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseReference(%q) = %v, want nil", tc.ref, err)
				}
				return
			}
			var re *ReferenceError
			if !errors.As(err, &re) || re.Ref != tc.ref || re.Reason == "" {
				t.Fatalf("ParseReference(%q) = %v, want a *ReferenceError with a reason", tc.ref, err)
			}
		})
	}
}

func TestDigestTag(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	if got, want := DigestTag(d), "sha256-"+strings.Repeat("ab", 32); got != want {
		t.Errorf("DigestTag = %q, want %q", got, want)
	}
}
