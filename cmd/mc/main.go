// Command mc is a build and CI/CD system: BUILD.mc files evaluated into a
// content-addressed action graph, run in parallel, isolated and cached.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/mc-build/mc/sandbox"
)

func main() {
	// The executor runs this same binary as the PID 1 of its sandboxes.
	if sandbox.RunnerMain() {
		return
	}
	tuneGC()
	// MC_CPUPROFILE=FILE writes a Go CPU profile of this invocation: a
	// developer aid for the benchmarks in bench/.
	if p := os.Getenv("MC_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mc: MC_CPUPROFILE: %v\n", err)
			os.Exit(exitInfra)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "mc: MC_CPUPROFILE: %v\n", err)
			os.Exit(exitInfra)
		}
		code := Main(os.Args[1:], os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// tuneGC trades memory for CPU unless GOGC or GOMEMLIMIT say otherwise: a
// build allocates many short-lived objects while its heap stays small (a
// null build of 10,000 stages peaks under 100 MB), and the collector took
// about a tenth of mc's CPU in the benchmarks at the default GOGC=100. The
// soft limit brings the default back long before memory gets scarce.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(400)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(1 << 30)
	}
}
