package main

import (
	"runtime/debug"
	"testing"
)

// TestVersionString: the version line reads the module version and the VCS
// settings the go command stamps into the binary.
func TestVersionString(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/mc-build/mc", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{bi, true, "v1.4.0 (revision 0123456789ab of 2026-12-01T10:00:00Z, modified)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "devel (no VCS revision in the build info)"},
		{nil, false, "devel"},
	} {
		if got := versionString(c.bi, c.ok); got != c.want {
			t.Errorf("versionString = %q, want %q", got, c.want)
		}
	}
}
