package runner

import (
	"os"
	"testing"

	"github.com/mc-build/mc/sandbox"
)

func TestMain(m *testing.M) {
	// The local executor (in the agent) runs this binary as its sandboxes' PID 1.
	if sandbox.RunnerMain() {
		return
	}
	os.Exit(m.Run())
}
