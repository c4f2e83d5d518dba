package runner

import (
	"os"
	"testing"

	"github.com/mc-build/mc/exec"
)

func TestMain(m *testing.M) {
	// The local executor (in the agent) runs this binary as its sandboxes' PID 1.
	if exec.RunnerMain() {
		return
	}
	os.Exit(m.Run())
}
