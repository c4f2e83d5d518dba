// Command api prints a greeting and the version; it stands for a service.
package main

import (
	"fmt"
	"os"

	"example.com/monorepo/lib/gen"
	"example.com/monorepo/lib/greet"
)

func main() {
	name := ""
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Printf("%s (api %s)\n", greet.Hello(name), gen.Version)
}
