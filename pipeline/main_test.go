package pipeline

import (
	"os"
	"testing"

	"github.com/mc-build/mc/sandbox"
)

func TestMain(m *testing.M) {
	// The executor runs this test binary as the PID 1 of its sandboxes.
	if sandbox.RunnerMain() {
		return
	}
	os.Exit(m.Run())
}
