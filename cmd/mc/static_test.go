package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// staticBuildArgs build mc as a runner fetches it: one static executable
// (go-sqlite3 needs cgo, so glibc is linked statically), which must start on
// any stock Linux AMI.
var staticBuildArgs = []string{"build", "-tags", "netgo,osusergo",
	"-ldflags", "-linkmode external -extldflags -static -s -w"}

// TestStaticBinaryBareRoot builds the static mc and runs it in an empty root
// filesystem (chroot: no libc, no /etc, no /bin): `mc version` works and
// `mc agent` starts far enough to check its flags.
func TestStaticBinaryBareRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test chroots: run it as root (as ./scripts/test does in CI)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is required to build the static binary")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "mc")
	build := exec.Command(goBin, append(staticBuildArgs, "-o", bin, ".")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the root holds %d entries, want only mc (%v)", len(entries), err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"version", []string{"version"}, 0, "mc "},
		{"agent starts", []string{"agent"}, 2, "--cache, --run and --job are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/mc", tc.args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			cmd.Dir = "/"
			cmd.Env = []string{}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("running mc in the bare root: %v", err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.want) {
				t.Fatalf("mc %s in a bare root: exit %d, output %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, tc.wantCode, tc.want)
			}
		})
	}
}
