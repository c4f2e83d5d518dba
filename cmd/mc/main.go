// Command mc is a build and CI/CD system: BUILD.mc files evaluated into a
// content-addressed action graph, run in parallel, isolated and cached.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/mc-build/mc/exec"
)

func main() {
	// The executor runs this same binary as the PID 1 of its sandboxes.
	if exec.RunnerMain() {
		return
	}
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
