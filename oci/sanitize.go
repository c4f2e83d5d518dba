package oci

import (
	"fmt"
	"slices"
	"strings"
)

// cleanEntryName turns a tar entry name into a clean slash path relative to
// the root ("." for the root itself). A leading "/" or "./" is dropped, as
// tar does; a ".." component is rejected outright, even one that would stay
// inside, since no honest layer needs it.
func cleanEntryName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("tar entry name %q is empty or holds a NUL byte", name)
	}
	parts := strings.Split(name, "/")
	if slices.Contains(parts, "..") {
		return "", fmt.Errorf("tar entry %q has a .. component", name)
	}
	parts = slices.DeleteFunc(parts, func(p string) bool { return p == "" || p == "." })
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}
