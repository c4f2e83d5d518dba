package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mc-build/mc/sched"
)

// pairs returns the (src, dst) of every occurrence of flag in args.
func pairs(args []string, flag string) [][2]string {
	var r [][2]string
	for i := 0; i+2 < len(args); i++ {
		if args[i] == flag {
			r = append(r, [2]string{args[i+1], args[i+2]})
		}
	}
	return r
}

func TestBwrapRootSystemDirs(t *testing.T) {
	r := newBwrapRoot("", nil)
	binds := pairs(r.args, "--ro-bind")
	links := pairs(r.args, "--symlink")
	for _, d := range hostSystemDirs() {
		t.Run(d, func(t *testing.T) {
			fi, err := os.Lstat(d)
			bound := slices.ContainsFunc(binds, func(p [2]string) bool { return p[1] == d })
			linked := slices.ContainsFunc(links, func(p [2]string) bool { return p[1] == d })
			switch {
			case err != nil:
				if bound || linked {
					t.Errorf("%s does not exist on the host but is in the sandbox", d)
				}
			case fi.Mode()&os.ModeSymlink != 0:
				if !linked && !bound {
					t.Errorf("%s (a symlink) is missing from the sandbox", d)
				}
			case fi.IsDir():
				if !bound || linked {
					t.Errorf("%s: bound %v, symlinked %v; want a read-only bind", d, bound, linked)
				}
			}
		})
	}
	if !slices.Contains(r.args, "--dev") || !slices.Contains(r.args, "--proc") {
		t.Errorf("no /dev or /proc: %q", r.args)
	}
}

func TestBwrapRootPathAndCovers(t *testing.T) {
	tmp := t.TempDir()
	tools := filepath.Join(tmp, "tools", "bin")
	cache := filepath.Join(tmp, "cache")
	for _, d := range []string{tools, filepath.Join(cache, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(tools, filepath.Join(tmp, "link-bin")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		hide       []string
		wantBinds  []string // destinations bound besides the system directories
		wantCovers []string
	}{
		{"system dirs only", "/usr/bin:/bin:relative/bin", []string{cache}, nil, nil},
		{"a tool directory", tools + ":/usr/bin", []string{cache}, []string{tools}, nil},
		{"through a symlink, once", tools + ":" + filepath.Join(tmp, "link-bin"), nil, []string{tools}, nil},
		{"missing directory", filepath.Join(tmp, "nope"), nil, nil, nil},
		{"a directory holding the cache", tmp, []string{cache}, []string{tmp}, []string{cache}},
		{"a directory inside the cache", filepath.Join(cache, "bin"), []string{cache}, nil, nil},
	}
	system := map[string]bool{}
	for _, p := range pairs(newBwrapRoot("", nil).args, "--ro-bind") {
		system[p[1]] = true
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newBwrapRoot(tc.path, tc.hide)
			var binds []string
			for _, p := range pairs(r.args, "--ro-bind") {
				if !system[p[1]] {
					binds = append(binds, p[1])
				}
			}
			var covers []string
			for i, a := range r.args {
				if a == "--tmpfs" {
					covers = append(covers, r.args[i+1])
				}
			}
			if !slices.Equal(binds, tc.wantBinds) {
				t.Errorf("extra binds %q, want %q", binds, tc.wantBinds)
			}
			if !slices.Equal(covers, tc.wantCovers) {
				t.Errorf("covers %q, want %q", covers, tc.wantCovers)
			}
		})
	}
}

func TestBwrapArgs(t *testing.T) {
	r := newBwrapRoot("", nil)
	r.seccomp = []byte{0, 0, 0, 0, 0, 0, 0, 0}
	dir := t.TempDir()
	sb := &sandboxDirs{ws: filepath.Join(dir, "ws"), home: filepath.Join(dir, "home"), tmp: filepath.Join(dir, "tmp")}
	cache := filepath.Join(dir, "go")
	for _, d := range []string{sb.ws, sb.home, sb.tmp, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		mapped  bool
		job     *sched.Job
		mounts  []cacheMount
		want    []string // in this order, without the descriptor numbers
		notWant []string
	}{
		{
			name: "no network, not root",
			job:  &sched.Job{Pkg: "svc/api"},
			want: []string{"--unshare-user --uid 0 --gid 0", "--seccomp", "--bind " + sb.tmp + " /tmp", "--ro-bind-data /etc/passwd",
				"--ro-bind-data /etc/group", "--bind " + sb.ws + " /mc/ws", "--bind " + sb.home + " /mc/home",
				"--unshare-pid", "--die-with-parent", "--chdir /mc/ws/svc/api", "--unshare-net", "-- /bin/sh -c :"},
		},
		{
			name:    "network, root package, a cache mount, mc as root",
			mapped:  true,
			job:     &sched.Job{Network: true},
			mounts:  []cacheMount{{env: "GOCACHE", host: cache, inside: "/mc/cache/go"}},
			want:    []string{"--userns", "--userns2", "--cap-add ALL", "--seccomp", "--bind " + cache + " /mc/cache/go", "--chdir /mc/ws -- /proc/self/fd/3 /bin/sh -c :"},
			notWant: []string{"--unshare-net", "--unshare-user"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.userns, r.runner = nil, ""
			if tc.mapped {
				f, err := os.Open("/proc/self/ns/user")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				r.userns, r.runner = &stageUserNS{setup: f, stage: f}, "/proc/self/exe"
			}
			c, err := r.bwrapArgs("bwrap", sb, tc.job, tc.mounts, nil, shellArgs(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			args := c.args
			// Every descriptor named is one passed, in order from 3.
			var norm []string
			next := 3
			if tc.mapped {
				next = 4 // descriptor 3 is the runner
			}
			for i := 0; i < len(args); i++ {
				norm = append(norm, args[i])
				switch args[i] {
				case "--userns", "--userns2", "--ro-bind-data", "--seccomp":
					if i+1 >= len(args) || args[i+1] != fmt.Sprint(next) {
						t.Fatalf("%s names descriptor %q, want %d", args[i], args[i+1], next)
					}
					next++
					i++
				}
			}
			if next-3 != len(c.files) {
				t.Errorf("%d descriptors named, %d passed", next-3, len(c.files))
			}
			line := strings.Join(norm, " ")
			if args[0] != "bwrap" {
				t.Errorf("argv[0] = %q", args[0])
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(line[at:], w)
				if i < 0 {
					t.Errorf("%q missing or out of order in %q", w, line)
					continue
				}
				at += i
			}
			for _, w := range tc.notWant {
				if strings.Contains(line, w) {
					t.Errorf("%q in %q", w, line)
				}
			}
		})
	}
}

func TestHiddenDirs(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"/c/mc/sandbox", "/c/mc/mounts", "/c/mc/cas"}, []string{"/c/mc"}},
		{[]string{"/a/sandbox", "/b/mounts", "/a/cas"}, []string{"/a/sandbox", "/b/mounts", "/a/cas"}},
		{[]string{"/sandbox", "/mounts", "/cas"}, []string{"/sandbox", "/mounts", "/cas"}},
	}
	for _, tc := range tests {
		if got := hiddenDirs(tc.in...); !slices.Equal(got, tc.want) {
			t.Errorf("hiddenDirs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShellArgs(t *testing.T) {
	tests := []struct {
		cmds []string
		want []string
	}{
		{nil, []string{"/bin/sh", "-c", ":"}},
		{[]string{"make"}, []string{"/bin/sh", "-c", "make"}},
		{[]string{"a", "b c"}, []string{"/bin/sh", "-c", `for c in "$@"; do /bin/sh -c "$c" || exit; done`, "mc", "a", "b c"}},
	}
	for _, tc := range tests {
		if got := shellArgs(tc.cmds); !slices.Equal(got, tc.want) {
			t.Errorf("shellArgs(%q) = %q, want %q", tc.cmds, got, tc.want)
		}
	}
}

func TestCheckJobPaths(t *testing.T) {
	tests := []struct {
		name string
		job  sched.Job
		ok   bool
	}{
		{"fine", sched.Job{Pkg: "a/b", Inputs: []sched.Input{{Path: "a/b/c.go"}}, Outs: []string{"a/b/out/", "a/b/x"},
			CacheMounts: map[string]string{"GOCACHE": "go-build"}}, true},
		{"root package", sched.Job{Pkg: "", Outs: []string{"x"}}, true},
		{"dotdot package", sched.Job{Pkg: "../a"}, false},
		{"absolute input", sched.Job{Inputs: []sched.Input{{Path: "/etc/passwd"}}}, false},
		{"unclean input", sched.Job{Inputs: []sched.Input{{Path: "a//b"}}}, false},
		{"empty output", sched.Job{Outs: []string{"/"}}, false},
		{"escaping output", sched.Job{Outs: []string{"a/../../b"}}, false},
		{"cache name path", sched.Job{CacheMounts: map[string]string{"X": "../x"}}, false},
		{"cache env with =", sched.Job{CacheMounts: map[string]string{"X=Y": "x"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkJobPaths(&tc.job)
			if (err == nil) != tc.ok {
				t.Errorf("checkJobPaths = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
