package cas

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
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
	case "hammer":
		worker, err := strconv.Atoi(os.Getenv("MC_CAS_TEST_WORKER"))
		if err != nil {
			return err
		}
		return hammer(ctx, os.Getenv("MC_CAS_TEST_STORE"), os.Getenv("MC_CAS_TEST_DB"), os.Getenv("MC_CAS_TEST_SHARED"), worker)
	case "writer":
		// Write big blobs forever; the test kills us mid-write.
		s, err := OpenStore(os.Getenv("MC_CAS_TEST_STORE"))
		if err != nil {
			return err
		}
		for i := 0; ; i++ {
			if _, err := s.PutBytes(bigContent(i)); err != nil {
				return err
			}
			if i == 0 {
				fmt.Println("started")
			}
		}
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
