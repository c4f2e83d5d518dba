package lang

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindWorkspace(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.mc":        "",
		"a/b/c/":              "",
		"nested/WORKSPACE.mc": "",
		"nested/x/":           "",
		"dir/WORKSPACE.mc/":   "", // a directory does not count
	})
	tests := []struct{ dir, want string }{
		{".", "."},
		{"a/b/c", "."},
		{"nested", "nested"},
		{"nested/x", "nested"},
		{"dir", "."},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := FindWorkspace(filepath.Join(root, tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tt.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestFindWorkspaceMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := os.Stat("/" + WorkspaceFile); err == nil {
		t.Fatalf("/%s exists on this machine; the test cannot run", WorkspaceFile)
	}
	_, err := FindWorkspace(dir)
	if !errors.Is(err, ErrNoWorkspace) {
		t.Fatalf("got %v, want ErrNoWorkspace", err)
	}
	if !strings.Contains(err.Error(), "mc init") {
		t.Errorf("message %q does not say how to create a workspace", err)
	}
}
