package graph

import (
	"context"
	"slices"
	"testing"
)

func linkFixture(t *testing.T) (*Graph, queryFake) {
	t.Helper()
	src := fixture(t)
	all, _ := src.FindPackages(context.Background(), "")
	pkgs, err := Load(context.Background(), src, all)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Link(context.Background(), src, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return g, src
}

func TestChangedTargets(t *testing.T) {
	g, src := linkFixture(t)
	lib := []string{"//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}
	tests := []struct {
		name    string
		changes []FileChange
		want    []string
	}{
		{"nothing", nil, nil},
		{"a source of a filegroup and an image", []FileChange{{Path: "lib/a.txt"}}, []string{"//lib:img", "//lib:srcs"}},
		{"a stage's own source", []FileChange{{Path: "app/main.txt"}}, []string{"//app:app"}},
		{"an untracked file that a stage names", []FileChange{{Path: "app/main.txt", Status: FileAdded}}, []string{"//app:app"}},
		{"a file nothing uses", []FileChange{{Path: "app/notes.txt"}, {Path: "docs/x.md", Status: FileAdded}}, nil},
		{"BUILD.mc", []FileChange{{Path: "app/BUILD.mc"}}, []string{"//app:app", "//app:app_test"}},
		{"a loaded .star file", []FileChange{{Path: "tools/more.star"}}, lib},
		{"a .star file nobody loads", []FileChange{{Path: "tools/other.star"}}, nil},
		{"WORKSPACE.mc", []FileChange{{Path: "WORKSPACE.mc"}}, []string{"//:root", "//app:app", "//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:img", "//lib:lib", "//lib:srcs"}},
		// A deleted file may have been matched by a glob: its package counts.
		{"a deleted file", []FileChange{{Path: "lib/old/c.txt", Status: FileDeleted}}, lib},
		{"a renamed file counts at both paths", []FileChange{
			{Path: "app/sub/x.txt", Status: FileDeleted}, {Path: "app/main.txt", Status: FileAdded}},
			[]string{"//app:app", "//app/sub:sub"}},
		{"a deleted file outside any package but the root", []FileChange{{Path: "docs/x.md", Status: FileDeleted}}, []string{"//:root"}},
		// A new package takes files away from the package around it.
		{"a new BUILD.mc", []FileChange{{Path: "lib/new/BUILD.mc", Status: FileAdded}}, lib},
		{"a deleted BUILD.mc", []FileChange{{Path: "app/gone/BUILD.mc", Status: FileDeleted}}, []string{"//app:app", "//app:app_test"}},
		{"an edited sub-package BUILD.mc leaves its parent alone", []FileChange{{Path: "app/sub/BUILD.mc"}}, []string{"//app/sub:sub"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range g.ChangedTargets(tc.changes, src.IsPackage) {
				got = append(got, l.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ChangedTargets(%v) = %q, want %q", tc.changes, got, tc.want)
			}
		})
	}
}

func TestDependingOn(t *testing.T) {
	g, _ := linkFixture(t)
	roots := mustLabels(t, "", "//:root", "//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:lib")
	tests := []struct {
		name    string
		changed []string
		want    []string
	}{
		{"nothing changed", nil, nil},
		{"a leaf stage", []string{"//lib:gen"}, []string{"//app:app_test", "//app/sub:sub", "//lib:gen", "//lib:lib"}},
		{"through a filegroup", []string{"//lib:srcs"}, []string{"//app:app_test", "//app/sub:sub", "//lib:lib"}},
		{"through an image", []string{"//lib:img"}, []string{"//app:app_test", "//app/sub:sub"}},
		{"a root itself", []string{"//:root"}, []string{"//:root"}},
		{"a dependent only", []string{"//app/sub:sub"}, []string{"//app/sub:sub"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range g.DependingOn(roots, mustLabels(t, "", tc.changed...)) {
				got = append(got, l.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("DependingOn(%q) = %q, want %q", tc.changed, got, tc.want)
			}
		})
	}
}
