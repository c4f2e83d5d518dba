// Package starfmt formats BUILD.mc, WORKSPACE.mc and .star files as
// buildifier formats BUILD files (with buildtools' own formatter), and
// finds the files `mc fmt` is asked to format.
package starfmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	buildifier "github.com/bazelbuild/buildtools/build"

	"github.com/mc-build/mc/builtins"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/graph"
	"github.com/mc-build/mc/lang"
)

// Run is `mc fmt [--check] [FILE|DIR|PATTERN]...` run in dir: it formats
// the files args name (listing each changed one on stdout), or with check
// only lists those not formatted (errkind.ErrStageFailed when any).
func Run(ctx context.Context, dir string, stdout, stderr io.Writer, args []string, check bool) error {
	files, err := fmtFiles(ctx, dir, args)
	if err != nil {
		return err
	}
	var unformatted, broken int
	for _, f := range files {
		name := displayPath(dir, f)
		data, err := os.ReadFile(f)
		if err != nil {
			return errkind.Infra(err)
		}
		out, err := Format(name, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			broken++
			continue
		}
		if bytes.Equal(out, data) {
			continue
		}
		unformatted++
		fmt.Fprintln(stdout, name)
		if !check {
			if err := writeAtomic(f, out); err != nil {
				return errkind.Infra(err)
			}
		}
	}
	switch {
	case broken > 0:
		return errkind.Usagef("fmt: %d file(s) could not be parsed", broken)
	case check && unformatted > 0:
		fmt.Fprintf(stderr, "mc: %d file(s) not formatted (run mc fmt)\n", unformatted)
		return errkind.ErrStageFailed
	}
	return nil
}

// Format parses data as the kind of file name says (WORKSPACE.mc,
// a .star module, otherwise a BUILD file) and returns it formatted.
func Format(name string, data []byte) ([]byte, error) {
	var (
		f   *buildifier.File
		err error
	)
	switch base := path.Base(filepath.ToSlash(name)); {
	case base == lang.WorkspaceFile:
		f, err = buildifier.ParseWorkspace(name, data)
	case strings.HasSuffix(base, ".star"):
		f, err = buildifier.ParseBzl(name, data)
	default:
		f, err = buildifier.ParseBuild(name, data)
	}
	if err != nil {
		return nil, err
	}
	return buildifier.Format(f), nil
}

// isStarlarkFile reports whether a file found by a walk is one fmt formats.
func isStarlarkFile(name string) bool {
	return name == lang.BuildFile || name == lang.WorkspaceFile || strings.HasSuffix(name, ".star")
}

// fmtFiles resolves fmt's arguments to absolute file paths, sorted and
// unique: no argument is the whole workspace; a pattern (//x/..., //x, :all)
// its packages' directories; a directory is walked; a file is taken as is.
func fmtFiles(ctx context.Context, dir string, args []string) ([]string, error) {
	var ws *graph.Workspace
	workspace := func() (*graph.Workspace, error) {
		if ws != nil {
			return ws, nil
		}
		root, err := lang.FindWorkspace(dir)
		if err != nil {
			return nil, err
		}
		if ws, err = builtins.LoadWorkspace(ctx, root); err != nil {
			return nil, err
		}
		return ws, nil
	}
	seen := map[string]bool{}
	var files []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	walk := func(dir string, recursive bool) error {
		w, err := workspace()
		if err != nil {
			return err
		}
		return walkStarlark(w, dir, recursive, add)
	}
	if len(args) == 0 {
		w, err := workspace()
		if err != nil {
			return nil, err
		}
		if err := walk(w.Root, true); err != nil {
			return nil, err
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "//") || strings.HasPrefix(a, ":") || strings.Contains(a, "...") {
			w, err := workspace()
			if err != nil {
				return nil, err
			}
			rel, err := filepath.Rel(w.Root, dir)
			if err != nil {
				return nil, err
			}
			if rel = filepath.ToSlash(rel); rel == "." {
				rel = ""
			}
			p, err := graph.ParsePattern(a, rel)
			if err != nil {
				return nil, err
			}
			dir := filepath.Join(w.Root, filepath.FromSlash(p.Label.Pkg))
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return nil, errkind.Usagef("fmt: %s: there is no directory //%s", a, p.Label.Pkg)
			}
			if err := walk(dir, p.Kind == graph.PatternRecursive); err != nil {
				return nil, err
			}
			continue
		}
		f := a
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, errkind.Usagef("fmt: %v", err)
		}
		if !fi.IsDir() {
			add(filepath.Clean(f))
			continue
		}
		if err := walk(filepath.Clean(f), true); err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

// walkStarlark calls add for every BUILD.mc, WORKSPACE.mc and .star file in
// dir (and, if recursive, below it), skipping what evaluation never walks:
// hidden directories, mc-out at the root and the workspace's ignore entries.
func walkStarlark(ws *graph.Workspace, dir string, recursive bool, add func(string)) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, rerr := filepath.Rel(ws.Root, p)
		if rerr != nil || strings.HasPrefix(rel, "..") {
			rel = "" // outside the workspace: no ignore rules apply
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if p == dir {
				return nil
			}
			if !recursive || strings.HasPrefix(d.Name(), ".") || rel == lang.OutDir || (rel != "" && lang.Ignored(ws.Ignore, rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if isStarlarkFile(d.Name()) && (d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0) && (rel == "" || !lang.Ignored(ws.Ignore, rel)) {
			add(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finding BUILD files under %s: %w", dir, err)
	}
	return nil
}

// displayPath is f relative to the directory mc runs in, when below it.
func displayPath(dir, f string) string {
	if rel, err := filepath.Rel(dir, f); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return f
}

// writeAtomic replaces f with data through a temporary file in the same
// directory and a rename, keeping f's permissions.
func writeAtomic(f string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(f); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(f), "."+filepath.Base(f)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f); err != nil {
		return errors.Join(fmt.Errorf("replacing %s", f), err)
	}
	return nil
}
