package iampolicy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestPolicyInput: every role gives a valid document that names only the
// bucket asked for; bad names are refused instead of widening a policy.
func TestPolicyInput(t *testing.T) {
	for _, r := range Roles() {
		b, err := JSON(r, "acme-mc-cache", "/v1/")
		if err != nil {
			t.Fatal(err)
		}
		var d Document
		if err := json.Unmarshal(b, &d); err != nil || d.Version != "2012-10-17" || len(d.Statement) == 0 {
			t.Fatalf("%s: %v %+v", r, err, d)
		}
		if want, _ := Policy(r, "acme-mc-cache", "v1"); !reflect.DeepEqual(d, want) {
			t.Fatalf("%s: the JSON decodes to %+v, want %+v", r, d, want)
		}
		for _, s := range d.Statement {
			for _, res := range s.Resource {
				if res != "arn:aws:s3:::acme-mc-cache" && !strings.HasPrefix(res, "arn:aws:s3:::acme-mc-cache/v1/") {
					t.Errorf("%s: resource %s outside the cache", r, res)
				}
			}
		}
	}
	for _, c := range []struct {
		role           Role
		bucket, prefix string
		want           string
	}{
		{Writer, "", "v1", "want a bucket name"},
		{Writer, "b/c", "v1", "want a bucket name"},
		{Writer, "b", "v*", "wildcards"},
		{"admin", "b", "v1", "unknown role"},
	} {
		if _, err := JSON(c.role, c.bucket, c.prefix); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q %q: %v, want %q", c.role, c.bucket, c.prefix, err, c.want)
		}
	}
}
