package sandbox

import (
	"os"
	"testing"
)

// TestMain lets the test binary be a sandbox worker's runner: the executor
// starts its own executable as one.
func TestMain(m *testing.M) {
	if RunnerMain() {
		return
	}
	if code, ok := stageNetChildMain(); ok { // stage_net_test.go
		os.Exit(code)
	}
	os.Exit(m.Run())
}
