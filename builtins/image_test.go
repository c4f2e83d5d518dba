package builtins

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mc-build/mc/lang"
)

func TestImageOuts(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"image", []string{"image.digest", "image.oci/"}},
		{"api-v2", []string{"api-v2.digest", "api-v2.oci/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ImageOuts(tt.name); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ImageOuts(%q) = %q, want %q", tt.name, got, tt.want)
			}
			p, err := evalOne(t, map[string]string{"a/BUILD.mc": `image(name = "` + tt.name + `")`}, "a")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Targets) != 1 || !reflect.DeepEqual(p.Targets[0].Outs, tt.want) {
				t.Errorf("the image target declares %+v, want outs %q", p.Targets, tt.want)
			}
		})
	}
}

// TestImageBaseReference checks base references against what pulling will
// accept, not only the distribution grammar.
func TestImageBaseReference(t *testing.T) {
	tests := []struct {
		name, base, want string
	}{
		{"tag", "debian:12", ""},
		{"host port and digest", "localhost:5000/tools@sha256:" + hex64, ""},
		{"label", "//images:base", ""},
		{"short digest", "example.com/tools@sha256:0123456789abcdef0123456789abcdef",
			`a/BUILD.mc:1:6: image: base: invalid image reference "example.com/tools@sha256:0123456789abcdef0123456789abcdef": invalid checksum digest length: sha256:0123456789abcdef0123456789abcdef`},
		{"uppercase", "Debian:12",
			`a/BUILD.mc:1:6: image: base: invalid image reference "Debian:12": repository names must be lowercase`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evalOne(t, map[string]string{"a/BUILD.mc": `image(name = "i", base = "` + tt.base + `")`}, "a")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("base %q: %v", tt.base, err)
				}
				return
			}
			var le *lang.Error
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v is not a *lang.Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
