package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mc-build/mc/graph"
)

var shapes = []Params{
	{Packages: 1, Stages: 1, Seed: 1},
	{Packages: 1, Stages: 10, Seed: 2},
	{Packages: 3, Stages: 1, Seed: 3},
	{Packages: 60, Stages: 10, Seed: 1},
	{Packages: 120, Stages: 4, Seed: 99},
}

func shapeName(p Params) string { return fmt.Sprintf("p%d_s%d_seed%d", p.Packages, p.Stages, p.Seed) }

// genRepo generates p into a fresh temp dir and returns the dir.
func genRepo(t *testing.T, p Params) string {
	t.Helper()
	dir := t.TempDir()
	var stderr bytes.Buffer
	args := []string{"-out", dir, "-q",
		"-packages", strconv.Itoa(p.Packages), "-stages", strconv.Itoa(p.Stages),
		"-seed", strconv.FormatUint(p.Seed, 10)}
	if err := run(args, &stderr); err != nil {
		t.Fatalf("run %v: %v (stderr %q)", args, err, stderr.String())
	}
	return dir
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var stageRe = regexp.MustCompile(`^pkg(\d{4}):s(\d{2})$`)

// parseStage parses the edges.txt spelling of a stage.
func parseStage(t *testing.T, s string) StageID {
	t.Helper()
	m := stageRe.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("malformed stage %q", s)
	}
	p, _ := strconv.Atoi(m[1])
	st, _ := strconv.Atoi(m[2])
	return StageID{p, st}
}

// parseEdges reads edges.txt into stage -> deps, keeping the file order of stages.
func parseEdges(t *testing.T, text string) (order []StageID, deps map[StageID][]StageID) {
	t.Helper()
	deps = map[StageID][]StageID{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			t.Fatalf("empty line in edges.txt")
		}
		id := parseStage(t, f[0])
		if _, dup := deps[id]; dup {
			t.Fatalf("stage %v listed twice", id)
		}
		ds := []StageID{}
		for _, d := range f[1:] {
			ds = append(ds, parseStage(t, d))
		}
		order = append(order, id)
		deps[id] = ds
	}
	return order, deps
}

func TestGraphIsAcyclicAndDepsAreEarlier(t *testing.T) {
	for _, p := range shapes {
		t.Run(shapeName(p), func(t *testing.T) {
			dir := genRepo(t, p)
			order, deps := parseEdges(t, readFile(t, filepath.Join(dir, "edges.txt")))
			if got, want := len(order), p.Packages*p.Stages; got != want {
				t.Fatalf("edges.txt lists %d stages, want %d", got, want)
			}
			for id, ds := range deps {
				if id.Pkg >= p.Packages || id.Stage >= p.Stages {
					t.Errorf("stage %v is outside the requested shape", id)
				}
				if len(ds) > maxDeps {
					t.Errorf("%v has %d deps, want at most %d", id, len(ds), maxDeps)
				}
				seen := map[StageID]bool{}
				for _, d := range ds {
					if _, ok := deps[d]; !ok {
						t.Errorf("%v depends on %v, which does not exist", id, d)
					}
					if !(d.Pkg < id.Pkg || (d.Pkg == id.Pkg && d.Stage < id.Stage)) {
						t.Errorf("%v depends on %v, which is not earlier", id, d)
					}
					if seen[d] {
						t.Errorf("%v lists dep %v twice", id, d)
					}
					seen[d] = true
				}
			}
			// Kahn's algorithm: every stage must come out, else there is a cycle.
			indeg := map[StageID]int{}
			rdeps := map[StageID][]StageID{}
			for id, ds := range deps {
				indeg[id] += 0
				for _, d := range ds {
					indeg[id]++
					rdeps[d] = append(rdeps[d], id)
				}
			}
			var queue []StageID
			for id, n := range indeg {
				if n == 0 {
					queue = append(queue, id)
				}
			}
			done := 0
			for len(queue) > 0 {
				id := queue[0]
				queue = queue[1:]
				done++
				for _, r := range rdeps[id] {
					if indeg[r]--; indeg[r] == 0 {
						queue = append(queue, r)
					}
				}
			}
			if done != len(deps) {
				t.Fatalf("topological sort reached %d of %d stages: cycle", done, len(deps))
			}
		})
	}
}

func TestGraphHasCrossPackageEdges(t *testing.T) {
	g, err := Generate(Params{Packages: 60, Stages: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var same, cross int
	for _, st := range g.Stages {
		for _, d := range st.Deps {
			if d.Pkg == st.ID.Pkg {
				same++
			} else {
				cross++
				if st.ID.Pkg-d.Pkg > crossWindow {
					t.Errorf("%v -> %v reaches beyond the %d-package window", st.ID, d, crossWindow)
				}
			}
		}
	}
	if same == 0 || cross == 0 {
		t.Fatalf("want both kinds of edges, got %d same-package and %d cross-package", same, cross)
	}
}

// ninjaEdge is one parsed build statement.
type ninjaEdge struct {
	out    string
	inputs []string
	cmd    string
}

func parseNinja(t *testing.T, text string) (edges []ninjaEdge, defaults []string) {
	t.Helper()
	if !strings.Contains(text, "rule sh\n  command = $cmd\n") {
		t.Fatalf("build.ninja lacks the sh rule")
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "build "):
			outs, ins, ok := strings.Cut(strings.TrimPrefix(line, "build "), ": sh ")
			if !ok {
				t.Fatalf("unexpected build line %q", line)
			}
			edges = append(edges, ninjaEdge{out: outs, inputs: strings.Fields(ins)})
		case strings.HasPrefix(line, "  cmd = "):
			if len(edges) == 0 {
				t.Fatalf("cmd before any build line")
			}
			edges[len(edges)-1].cmd = strings.TrimPrefix(line, "  cmd = ")
		case strings.HasPrefix(line, "default "):
			defaults = append(defaults, strings.Fields(strings.TrimPrefix(line, "default "))...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return edges, defaults
}

// pathStage maps a workspace-relative ninja path to its stage and kind.
var pathRe = regexp.MustCompile(`^(pkg\d{4})/(src|out)/(s\d{2})\.txt$`)

func pathStage(t *testing.T, path string) (StageID, string) {
	t.Helper()
	m := pathRe.FindStringSubmatch(path)
	if m == nil {
		t.Fatalf("unexpected path %q", path)
	}
	return parseStage(t, m[1]+":"+m[3]), m[2]
}

func TestNinjaMatchesEdges(t *testing.T) {
	for _, p := range shapes {
		t.Run(shapeName(p), func(t *testing.T) {
			dir := genRepo(t, p)
			order, want := parseEdges(t, readFile(t, filepath.Join(dir, "edges.txt")))
			edges, defaults := parseNinja(t, readFile(t, filepath.Join(dir, "build.ninja")))
			got := map[StageID][]StageID{}
			var outs []string
			for _, e := range edges {
				id, kind := pathStage(t, e.out)
				if kind != "out" {
					t.Fatalf("edge output %q is not an out/ file", e.out)
				}
				if len(e.inputs) == 0 {
					t.Fatalf("%s has no inputs", e.out)
				}
				if src, kind := pathStage(t, e.inputs[0]); src != id || kind != "src" {
					t.Errorf("%s: first input %q is not its own source", e.out, e.inputs[0])
				}
				ds := []StageID{}
				for _, in := range e.inputs[1:] {
					d, kind := pathStage(t, in)
					if kind != "out" {
						t.Errorf("%s: dep input %q is not an output", e.out, in)
					}
					ds = append(ds, d)
				}
				got[id] = ds
				outs = append(outs, e.out)
				// The command must read exactly the declared inputs, in order.
				wantCmd := "cat " + strings.Join(e.inputs, " ") + " | md5sum > " + e.out
				if e.cmd != wantCmd {
					t.Errorf("%s: cmd %q, want %q", e.out, e.cmd, wantCmd)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("build.ninja has %d edges, edges.txt %d stages", len(got), len(want))
			}
			for _, id := range order {
				if !slices.Equal(got[id], want[id]) {
					t.Errorf("%v: ninja deps %v, edges.txt deps %v", id, got[id], want[id])
				}
			}
			if !slices.Equal(defaults, outs) {
				t.Errorf("default lists %d paths, want all %d outputs in order", len(defaults), len(outs))
			}
		})
	}
}

var buildLineRe = regexp.MustCompile(`^stage\(name = "(s\d{2})", srcs = \["(src/s\d{2}\.txt)"\]` +
	`(?:, deps = \[([^\]]*)\])?, cmd = ("(?:[^"\\]|\\.)*"), outs = \["(out/s\d{2}\.txt)"\]\)$`)

// sandboxToWorkspace rewrites a stage command from its sandbox spelling (cwd
// = its package) to ninja's (cwd = workspace root).
func sandboxToWorkspace(pkg, cmd string) string {
	f := strings.Fields(cmd)
	for i, w := range f {
		switch {
		case strings.HasPrefix(w, "../"):
			f[i] = strings.TrimPrefix(w, "../")
		case strings.HasPrefix(w, "src/"), strings.HasPrefix(w, "out/"):
			f[i] = pkg + "/" + w
		}
	}
	return strings.Join(f, " ")
}

func TestBuildFilesMatchEdgesAndNinja(t *testing.T) {
	for _, p := range shapes {
		t.Run(shapeName(p), func(t *testing.T) {
			dir := genRepo(t, p)
			if ws := readFile(t, filepath.Join(dir, "WORKSPACE.mc")); !strings.Contains(ws, `workspace(name = "bench")`) {
				t.Fatalf("WORKSPACE.mc = %q", ws)
			}
			_, want := parseEdges(t, readFile(t, filepath.Join(dir, "edges.txt")))
			edges, _ := parseNinja(t, readFile(t, filepath.Join(dir, "build.ninja")))
			ninjaCmd := map[string]string{}
			for _, e := range edges {
				ninjaCmd[e.out] = e.cmd
			}
			stages := 0
			for pi := range p.Packages {
				pkg := fmt.Sprintf("pkg%04d", pi)
				text := readFile(t, filepath.Join(dir, pkg, "BUILD.mc"))
				for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
					if strings.HasPrefix(line, "#") {
						continue
					}
					m := buildLineRe.FindStringSubmatch(line)
					if m == nil {
						t.Fatalf("%s/BUILD.mc: unexpected line %q", pkg, line)
					}
					stages++
					id := parseStage(t, pkg+":"+m[1])
					if m[2] != id.Src() || m[5] != id.Out() {
						t.Errorf("%v: srcs %q outs %q", id, m[2], m[5])
					}
					if _, err := os.Stat(filepath.Join(dir, pkg, m[2])); err != nil {
						t.Errorf("%v: source missing: %v", id, err)
					}
					ds := []StageID{}
					if m[3] != "" {
						for _, q := range strings.Split(m[3], ", ") {
							s, err := strconv.Unquote(q)
							if err != nil {
								t.Fatalf("%v: dep %s: %v", id, q, err)
							}
							l, err := graph.ParseLabel(s, pkg)
							if err != nil {
								t.Fatalf("%v: dep %s: %v", id, q, err)
							}
							ds = append(ds, parseStage(t, l.Pkg+":"+l.Name))
						}
					}
					if !slices.Equal(ds, want[id]) {
						t.Errorf("%v: BUILD.mc deps %v, edges.txt deps %v", id, ds, want[id])
					}
					cmd, err := strconv.Unquote(m[4])
					if err != nil {
						t.Fatalf("%v: cmd: %v", id, err)
					}
					// Same bytes in the same order is what makes mc's and
					// ninja's outputs comparable byte for byte.
					out := pkg + "/" + id.Out()
					if got := sandboxToWorkspace(pkg, cmd); got != ninjaCmd[out] {
						t.Errorf("%v: BUILD.mc cmd %q is %q at the root, ninja runs %q", id, cmd, got, ninjaCmd[out])
					}
				}
			}
			if stages != len(want) {
				t.Fatalf("BUILD files declare %d stages, edges.txt %d", stages, len(want))
			}
		})
	}
}

// treeDigest renders every file under dir as "path\ncontent" in walk order.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, path)
		b.WriteString(rel + "\n")
		_, err = io.Copy(&b, f)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDeterministicForSeed(t *testing.T) {
	tests := []struct {
		name     string
		a, b     Params
		wantSame bool
	}{
		{"same seed", Params{40, 10, 7}, Params{40, 10, 7}, true},
		{"other seed", Params{40, 10, 7}, Params{40, 10, 8}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := treeDigest(t, genRepo(t, tc.a))
			b := treeDigest(t, genRepo(t, tc.b))
			if (a == b) != tc.wantSame {
				t.Fatalf("trees equal = %v, want %v", a == b, tc.wantSame)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"-packages", "2"}, "-out is required"},
		{"zero packages", []string{"-out", "X", "-packages", "0"}, "packages must be in 1..10000"},
		{"too many packages", []string{"-out", "X", "-packages", "10001"}, "packages must be in"},
		{"too many stages", []string{"-out", "X", "-stages", "101"}, "stages must be in 1..100"},
		{"stray argument", []string{"-out", "X", "extra"}, "unexpected arguments"},
		{"unknown flag", []string{"-out", "X", "-bogus"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, a := range tc.args {
				if a == "X" {
					tc.args[i] = filepath.Join(dir, "repo")
				}
			}
			err := run(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "repo")); statErr == nil {
				t.Errorf("a rejected run wrote the output dir")
			}
		})
	}
}

func BenchmarkGenerate10k(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		g, err := Generate(Params{Packages: 1000, Stages: 10, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := writeRepo(dir, g); err != nil {
			b.Fatal(err)
		}
	}
}
