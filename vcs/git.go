// Package vcs asks the version control system (git) which files of a
// workspace differ from a revision. It shells out to git itself, so the
// answer is exactly git's: tracked changes (staged or not), renames,
// deletions and untracked files that are not ignored.
package vcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Status says how a file differs from the revision.
type Status int

const (
	Modified Status = iota // content or type changed
	Added                  // new, untracked, or the new name of a rename or copy
	Deleted                // gone, or the old name of a rename
)

func (s Status) String() string {
	switch s {
	case Added:
		return "added"
	case Deleted:
		return "deleted"
	}
	return "modified"
}

// Change is one file that differs; Path is relative to the directory
// Changes was asked about, slash-separated.
type Change struct {
	Path   string
	Status Status
}

// Error is a problem the user has to fix: git is missing, the directory
// is not in a git checkout, or the revision does not name a commit.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Changes returns the files under dir that differ between revision rev and
// the working tree, sorted by path: `git diff --name-status -M REV` (both
// names of a rename) plus `git ls-files --others --exclude-standard`.
// dir may be a subdirectory of the checkout; paths are relative to it and
// files outside it are left out.
func Changes(ctx context.Context, dir, rev string) ([]Change, error) {
	if rev == "" || strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, "\x00\n") {
		return nil, &Error{Msg: fmt.Sprintf("invalid git revision %q", rev)}
	}
	if _, err := git(ctx, dir, "rev-parse", "--show-toplevel"); err != nil {
		return nil, notCheckout(dir, err)
	}
	out, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &Error{Msg: fmt.Sprintf("unknown git revision %q: it names no commit of the checkout at %s", rev, dir)}
		}
		return nil, err
	}
	commit := strings.TrimSpace(string(out))
	diff, err := git(ctx, dir, "diff", "--name-status", "-z", "-M", "--relative", "--no-color", "--no-ext-diff", commit, "--")
	if err != nil {
		return nil, fmt.Errorf("git diff %s: %w", rev, err)
	}
	byPath := map[string]Status{}
	add := func(p string, s Status) {
		if prev, ok := byPath[p]; ok && prev != s {
			s = Modified // e.g. renamed away and re-created: it differs
		}
		byPath[p] = s
	}
	if err := parseNameStatus(diff, add); err != nil {
		return nil, fmt.Errorf("git diff %s: %w", rev, err)
	}
	others, err := git(ctx, dir, "ls-files", "--others", "--exclude-standard", "-z")
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	for _, p := range strings.Split(string(others), "\x00") {
		if p != "" {
			add(p, Added)
		}
	}
	changes := make([]Change, 0, len(byPath))
	for p, s := range byPath {
		changes = append(changes, Change{Path: p, Status: s})
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// parseNameStatus reads `git diff --name-status -z` output: a status
// (M, A, D, T, U, X, or R/C with a score) and a path, or two for R and C.
func parseNameStatus(out []byte, add func(string, Status)) error {
	f := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(f) == 1 && f[0] == "" {
		return nil
	}
	for i := 0; i < len(f); {
		st := f[i]
		if st == "" {
			return fmt.Errorf("unexpected output at field %d", i)
		}
		n := 1
		if st[0] == 'R' || st[0] == 'C' {
			n = 2
		}
		if i+n >= len(f) {
			return fmt.Errorf("truncated output after status %q", st)
		}
		switch st[0] {
		case 'A':
			add(f[i+1], Added)
		case 'D':
			add(f[i+1], Deleted)
		case 'R':
			add(f[i+1], Deleted)
			add(f[i+2], Added)
		case 'C':
			add(f[i+2], Added)
		default: // M, T (type change), U (unmerged), X
			add(f[i+1], Modified)
		}
		i += n + 1
	}
	return nil
}

// git runs git in dir and returns its standard output. A failure carries
// git's own message.
func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	// Reading must not take the index lock a concurrent git command holds.
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, &Error{Msg: "git is not installed (changed, affected and --affected-since need it)"}
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, &gitError{msg: msg, err: err}
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// gitError is a failed git command with what it printed.
type gitError struct {
	msg string
	err error
}

func (e *gitError) Error() string { return e.msg }
func (e *gitError) Unwrap() error { return e.err }

func notCheckout(dir string, err error) error {
	var ve *Error
	if errors.As(err, &ve) {
		return err
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &Error{Msg: fmt.Sprintf("%s is not in a git checkout (%v)", dir, err)}
	}
	return err
}
