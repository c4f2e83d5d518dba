package runc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "runc")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "my-runc")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	tests := []struct {
		name    string
		env     map[string]string
		want    string // the path found, or
		wantErr string // a part of the error
	}{
		{name: "in PATH", env: map[string]string{"PATH": empty + ":" + dir}, want: fake},
		{name: "relative PATH entry ignored", env: map[string]string{"PATH": "relative:" + dir}, want: fake},
		{name: "MC_RUNC path", env: map[string]string{"PATH": dir, "MC_RUNC": other}, want: other},
		{name: "MC_RUNC name", env: map[string]string{"PATH": dir, "MC_RUNC": "my-runc"}, want: other},
		{
			name:    "MC_RUNC missing",
			env:     map[string]string{"PATH": dir, "MC_RUNC": filepath.Join(empty, "runc")},
			wantErr: "runc not found: MC_RUNC=" + filepath.Join(empty, "runc"),
		},
		{
			name:    "MC_RUNC not executable",
			env:     map[string]string{"MC_RUNC": notExec},
			wantErr: "install it with `apt-get install runc`",
		},
		{
			name:    "MC_RUNC name not in PATH",
			env:     map[string]string{"PATH": empty, "MC_RUNC": "nosuch-runc"},
			wantErr: "runc not found: MC_RUNC=nosuch-runc",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := Find(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Find = %v, %v; want an error holding %q", rt, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "apt-get install runc") {
					t.Errorf("error %q does not say how to install runc", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.Path() != tt.want {
				t.Errorf("Find found %s, want %s", rt.Path(), tt.want)
			}
		})
	}
}

// TestFindMissing checks the error on a machine without runc.
func TestFindMissing(t *testing.T) {
	const want = "runc not found: install it with `apt-get install runc`"
	empty := t.TempDir()
	rt, err := find(func(k string) (string, bool) {
		if k == "PATH" {
			return empty, true
		}
		return "", false
	}, empty)
	if err == nil || err.Error() != want {
		t.Errorf("find = %v, %v; want the error %q", rt, err, want)
	}
}
