package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mc agent and mc serve run others' code: without a working sandbox they
// refuse to start (exit 3) and say what is missing and how to install it.
// The attack is the machine without bubblewrap (a PATH without bwrap); the
// positive control is the same command with it, which gets past the check.

func TestAgentServeRefuseWithoutSandbox(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is not installed; the positive controls need it: apt-get install bubblewrap")
	}
	noBwrap := []string{"PATH=" + t.TempDir()} // empty: no bwrap, nothing else
	agentArgs := []string{"agent", "--cache", "s3://bucket/prefix", "--endpoint", "http://127.0.0.1:1",
		"--run", "r1", "--job", "j1", "--dir", t.TempDir(), "--idle-timeout", "1s", "--stage-network=host"}
	serveArgs := func() []string {
		return []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--addr-file", filepath.Join(t.TempDir(), "addr"), "--stage-network=host"}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"agent", agentArgs},
		{"serve", serveArgs()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := mcCmd(t, t.TempDir(), noBwrap, tc.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitInfra {
				t.Fatalf("mc %s without bubblewrap: %v, want exit %d\n%s", tc.name, err, exitInfra, out)
			}
			for _, want := range []string{"no working sandbox", "bubblewrap", "apt-get install bubblewrap"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("mc %s without bubblewrap said %q, want it to name %q", tc.name, out, want)
				}
			}
		})
	}

	// With bubblewrap but without pasta, the private stage network the
	// server asks for by default cannot be had: the same refusal.
	t.Run("serve without pasta", func(t *testing.T) {
		bin := pathWithout(t, "pasta", "passt")
		args := serveArgs()
		args = args[:len(args)-1] // the default: --stage-network=private
		out, err := mcCmd(t, t.TempDir(), []string{"PATH=" + bin}, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInfra || !strings.Contains(string(out), "apt-get install passt") {
			t.Fatalf("mc serve without pasta: %v, want exit %d naming passt\n%s", err, exitInfra, out)
		}
	})

	// Positive controls: with bubblewrap the same commands get past the
	// check. The agent then fails on its (unreachable) cache, not on the
	// sandbox; the server starts listening.
	t.Run("agent with bwrap", func(t *testing.T) {
		out, _ := mcCmd(t, t.TempDir(), nil, agentArgs...).CombinedOutput()
		if strings.Contains(string(out), "sandbox") || strings.Contains(string(out), "bubblewrap") {
			t.Errorf("mc agent with bubblewrap refused on the sandbox:\n%s", out)
		}
	})
	t.Run("serve with bwrap", func(t *testing.T) {
		args := serveArgs()
		addr := args[6]
		cmd := mcCmd(t, t.TempDir(), nil, args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(addr); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("mc serve with bubblewrap did not start:\n%s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// A bad --stage-network is a usage error (exit 2), for every command that
// takes it.
func TestStageNetworkFlag(t *testing.T) {
	for _, args := range [][]string{
		{"build", "--stage-network=none", "//..."},
		{"agent", "--cache", "s3://b/p", "--run", "r", "--job", "j", "--stage-network=none"},
		{"serve", "--data-dir", t.TempDir(), "--stage-network=none"},
	} {
		out, err := mcCmd(t, t.TempDir(), nil, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "want host or private") {
			t.Errorf("mc %s: %v\n%s\nwant exit %d naming host and private", strings.Join(args, " "), err, out, exitUsage)
		}
	}
}

// pathWithout returns a directory of links to every program of the
// system's directories but those named, standing for a machine without
// them.
func pathWithout(t *testing.T, names ...string) string {
	t.Helper()
	bin := t.TempDir()
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(dir)
		if err != nil || !filepath.IsAbs(dir) {
			continue
		}
		for _, e := range ents {
			skip := false
			for _, n := range names {
				skip = skip || strings.HasPrefix(e.Name(), n)
			}
			if skip {
				continue
			}
			// The first directory's program wins, as on PATH.
			if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(bin, e.Name())); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
		}
	}
	if _, err := exec.LookPath(filepath.Join(bin, "bwrap")); err != nil {
		t.Fatal("no bwrap on PATH: the test needs it")
	}
	return bin
}
