// Command mc is a build and CI/CD system: BUILD.mc files evaluated into a
// content-addressed action graph, run in parallel, isolated and cached.
package main

import (
	"os"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
