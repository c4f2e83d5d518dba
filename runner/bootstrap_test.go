package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
)

// TestBootstrap runs the local variant of the user-data with sh, fetching a
// fake mc (a shell script recording its arguments) through curl's file://.
func TestBootstrap(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required by the bootstrap test: apt-get install curl")
	}
	fake := []byte("#!/bin/sh\necho \"$@\" > \"$OUT\"\n")
	for _, tc := range []struct {
		name    string
		digest  cas.Digest
		baked   bool // the image holds the binary: nothing to download
		wantRun bool
	}{
		{"digest matches", cas.FromBytes(fake), false, true},
		{"digest mismatch", cas.FromBytes([]byte("other")), false, false},
		{"baked into the image", cas.FromBytes(fake), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "blob")
			if err := os.WriteFile(bin, fake, 0o644); err != nil {
				t.Fatal(err)
			}
			url := "file://" + bin
			baked := filepath.Join(dir, "ami")
			if tc.baked {
				p := BakedPath(baked, tc.digest)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, fake, 0o755); err != nil {
					t.Fatal(err)
				}
				url = "file://" + filepath.Join(dir, "nothing-to-download")
			}
			out := filepath.Join(dir, "args")
			script := Bootstrap(BootstrapSpec{BinaryURL: url, BinaryDigest: tc.digest, BakedDir: baked,
				AgentArgs: []string{"--run", "r'1", "--job", "j 2"}, TTL: time.Minute, Local: true})
			if strings.Contains(script, "AWS_SECRET") {
				t.Fatal("user-data mentions credentials")
			}
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env = append(os.Environ(), "OUT="+out, "TMPDIR="+dir)
			// The script powers off by killing its own process group: give
			// it one.
			cmd.SysProcAttr = newGroup()
			_ = cmd.Run()
			got, err := os.ReadFile(out)
			if !tc.wantRun {
				if err == nil {
					t.Fatalf("mc ran despite a digest mismatch: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("mc did not run: %v", err)
			}
			if want := "agent --run r'1 --job j 2\n"; string(got) != want {
				t.Fatalf("mc ran with %q, want %q", got, want)
			}
		})
	}
}
