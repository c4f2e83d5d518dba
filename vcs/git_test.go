package vcs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repo is a git repository made by a test.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required by the vcs tests")
	}
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	// No user or system configuration: the test sees git's defaults.
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func show(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Status.String()+" "+c.Path)
	}
	return out
}

func TestChanges(t *testing.T) {
	r := newRepo(t)
	r.write(".gitignore", "mc-out/\n*.log\n")
	r.write("ws/WORKSPACE.mc", "")
	r.write("ws/a/BUILD.mc", "")
	r.write("ws/a/keep.txt", "keep\n")
	r.write("ws/a/edit.txt", "one\n")
	r.write("ws/a/gone.txt", "gone\n")
	r.write("ws/a/move me.txt", "a file with a long enough body to be detected as renamed\n")
	r.write("ws/tools/defs.star", "x = 1\n")
	r.write("outside/o.txt", "outside\n")
	base := r.commit("base")

	ctx := context.Background()
	ws := filepath.Join(r.dir, "ws")
	got, err := Changes(ctx, ws, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a clean checkout has changes: %q", show(got))
	}

	r.write("ws/a/edit.txt", "two\n")        // modified, not staged
	r.write("ws/tools/defs.star", "x = 2\n") // modified, staged below
	r.git("add", "ws/tools/defs.star")
	os.Remove(filepath.Join(r.dir, "ws/a/gone.txt")) // deleted
	if err := os.MkdirAll(filepath.Join(r.dir, "ws/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("mv", "ws/a/move me.txt", "ws/b/moved.txt")           // renamed
	r.write("ws/new/untracked.txt", "new\n")                    // untracked
	r.write("ws/mc-out/a/out.txt", "ignored\n")                 // ignored: not a change
	r.write("ws/a/build.log", "ignored\n")                      // ignored
	r.write("outside/o.txt", "changed outside the workspace\n") // not in ws
	r.write("outside/new.txt", "untracked outside\n")           // not in ws
	want := []string{
		"deleted a/gone.txt", "modified a/edit.txt", "deleted a/move me.txt", "added b/moved.txt",
		"added new/untracked.txt", "modified tools/defs.star",
	}
	slices.SortFunc(want, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' ')+1:], b[strings.IndexByte(b, ' ')+1:])
	})
	for _, rev := range []string{"HEAD", base, "main", base[:10]} {
		got, err := Changes(ctx, ws, rev)
		if err != nil {
			t.Fatalf("Changes(%s): %v", rev, err)
		}
		if !slices.Equal(show(got), want) {
			t.Errorf("Changes(%s) = %q\nwant %q", rev, show(got), want)
		}
	}

	// Committed changes count against an older revision, not against HEAD.
	r.commit("second")
	got, err = Changes(ctx, ws, "HEAD")
	if err != nil || len(got) != 0 {
		t.Fatalf("Changes(HEAD) after committing = %q, %v; want none", show(got), err)
	}
	got, err = Changes(ctx, ws, "HEAD~1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(show(got), want) {
		t.Errorf("Changes(HEAD~1) = %q\nwant %q", show(got), want)
	}

	// The whole repository as the workspace sees the paths outside ws too.
	got, err = Changes(ctx, r.dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if s := show(got); !slices.Contains(s, "modified outside/o.txt") || !slices.Contains(s, "added outside/new.txt") || !slices.Contains(s, "modified ws/a/edit.txt") {
		t.Errorf("Changes at the repository root = %q", s)
	}
}

func TestChangesErrors(t *testing.T) {
	r := newRepo(t)
	r.write("f.txt", "x\n")
	r.commit("one")
	ctx := context.Background()
	tests := []struct {
		name, dir, rev, want string
	}{
		{"not a checkout", t.TempDir(), "HEAD", "is not in a git checkout"},
		{"unknown revision", r.dir, "no-such-branch", `unknown git revision "no-such-branch"`},
		{"not a commit", r.dir, "HEAD~5", `unknown git revision "HEAD~5"`},
		{"an option is not a revision", r.dir, "--output=/tmp/x", `invalid git revision "--output=/tmp/x"`},
		{"empty", r.dir, "", `invalid git revision ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Changes(ctx, tc.dir, tc.rev)
			var ve *Error
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Changes(%s) = %v, want a *vcs.Error containing %q", tc.rev, err, tc.want)
			}
		})
	}
}

func TestParseNameStatus(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		bad      bool
	}{
		{"empty", "", nil, false},
		{"all kinds", "M\x00a\x00A\x00b\x00D\x00c\x00R087\x00d\x00e\x00C100\x00f\x00g\x00T\x00h\x00",
			[]string{"modified a", "added b", "deleted c", "deleted d", "added e", "added g", "modified h"}, false},
		{"names with spaces and newlines", "M\x00a b\nc\x00", []string{"modified a b\nc"}, false},
		{"truncated rename", "R100\x00only\x00", nil, true},
		{"empty status", "\x00a\x00", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := parseNameStatus([]byte(tc.in), func(p string, s Status) { got = append(got, s.String()+" "+p) })
			if (err != nil) != tc.bad {
				t.Fatalf("error %v, want error %v", err, tc.bad)
			}
			if !tc.bad && !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
