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
	"strings"
)

//go:embed *.star
var files embed.FS

// Read returns the source of the module name ("go.star").
func Read(name string) ([]byte, error) {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, fmt.Errorf("no such module in mc's standard library (it has %s)", strings.Join(Names(), ", "))
	}
	return b, nil
}

// Names lists the modules, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// Digest identifies this version of the library: caches of evaluated
// BUILD files that loaded it are valid only for the same digest.
func Digest() string {
	h := sha256.New()
	for _, n := range Names() {
		b, _ := fs.ReadFile(files, n)
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
