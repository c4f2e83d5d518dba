// Package stdlib holds the macros shipped inside the mc binary, loaded from
// BUILD.mc and .star files as "@mc//NAME.star" without copying them into a
// workspace. They are ordinary Starlark: whatever they do, a user's own
// macro could do too.
package stdlib

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed *.star
var files embed.FS

// The source of gobuild, the Go builder of go.star's toolchains: one file
// of Go that a stage compiles (stdlib/gobuild holds it and its tests).
//
//go:embed gobuild/main.go
var gobuildGo string

// gobuildModule is the module that hands gobuild's source to go.star.
const gobuildModule = "gobuild.star"

// Read returns the source of the module name ("go.star").
func Read(name string) ([]byte, error) {
	if name == gobuildModule {
		return []byte(gobuildStar()), nil
	}
	b, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, fmt.Errorf("no such module in mc's standard library (it has %s)", strings.Join(Names(), ", "))
	}
	return b, nil
}

// gobuildStar is a Starlark module binding GOBUILD_GO to gobuild's source.
// strconv.Quote's escapes (\n, \t, \", \\, \x, \u) are Starlark's too.
func gobuildStar() string {
	return "\"\"\"The source of gobuild, mc's Go builder (go_toolchain compiles it).\"\"\"\n\nGOBUILD_GO = " + strconv.Quote(gobuildGo) + "\n"
}

// Names lists the modules, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	out := []string{gobuildModule}
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// Digest identifies this version of the library: caches of evaluated
// BUILD files that loaded it are valid only for the same digest.
func Digest() string {
	h := sha256.New()
	for _, n := range Names() {
		b, _ := Read(n)
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
