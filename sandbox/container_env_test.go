package sandbox

import (
	"reflect"
	"testing"
)

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		name         string
		image, stage []string
		want         []string
	}{
		{"the image's PATH replaces the host's",
			[]string{"PATH=/bin", "LANG=C.UTF-8"},
			[]string{"PATH=/usr/local/bin:/usr/bin", "HOME=/mc/home", "MC_PACKAGE=p"},
			[]string{"PATH=/bin", "LANG=C.UTF-8", "HOME=/mc/home", "MC_PACKAGE=p"}},
		{"no PATH in the image: the default",
			nil,
			[]string{"PATH=/host", "HOME=/mc/home"},
			[]string{"PATH=" + defaultImagePath, "HOME=/mc/home"}},
		{"the stage's env wins, once",
			[]string{"PATH=/bin", "GOPATH=/go", "HOME=/root"},
			[]string{"PATH=/host", "HOME=/mc/home", "GOPATH=/mc/cache/go", "PATH=/opt/bin"},
			[]string{"PATH=/opt/bin", "GOPATH=/mc/cache/go", "HOME=/mc/home"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerEnv(tt.image, tt.stage); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
