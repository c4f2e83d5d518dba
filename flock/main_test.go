package flock

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Tests that need a second process re-run this test binary with
// helperEnv set to a role; TestMain then plays that role instead of testing.
const helperEnv = "MC_CAS_TEST_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		if err := runHelper(role); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(role string) error {
	ctx := context.Background()
	switch role {
	case "lock":
		// Take the lock, say so, hold it until stdin closes.
		unlock, err := Lock(ctx, os.Getenv("MC_CAS_TEST_LOCK"))
		if err != nil {
			return err
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		return unlock()
	}
	return fmt.Errorf("unknown role %q", role)
}

// helper starts this test binary in the given role with extra environment.
func helper(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}
