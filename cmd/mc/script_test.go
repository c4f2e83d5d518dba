package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mc-build/mc/sandbox"
)

// TestMain lets the scripts run "mc" as a real subprocess of the test binary,
// so exit codes, signals and stderr are exactly what a user sees.
func TestMain(m *testing.M) {
	// The executor runs this test binary as the PID 1 of its sandboxes.
	if sandbox.RunnerMain() {
		return
	}
	testscript.Main(m, map[string]func(){
		"mc": func() {
			// MC_TEST_STATUS names a file that receives the exit status,
			// for the `status` command: testscript itself only tells
			// success from failure, and a background mc's status is
			// otherwise lost.
			status := os.Getenv("MC_TEST_STATUS")
			if status != "" {
				os.Remove(status)
			}
			code := Main(os.Args[1:], os.Stdout, os.Stderr)
			if status != "" {
				_ = os.WriteFile(status, []byte(strconv.Itoa(code)+"\n"), 0o644) // a missing file makes `status` fail
			}
			os.Exit(code)
		},
	})
}

// TestScripts runs testdata/script/*.txtar: end-to-end CLI scenarios.
func TestScripts(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap (bwrap) is required by the sandbox tests: apt-get install bubblewrap")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, ".cache"))
			e.Setenv("HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("GOTOOLCHAIN", "local")
			e.Setenv("MC_TEST_STATUS", filepath.Join(e.WorkDir, ".mcstatus"))
			e.Values[s3Key{}] = &s3Holder{}
			for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT"} {
				if v, ok := os.LookupEnv(k); ok {
					e.Setenv(k, v)
				}
			}
			return os.MkdirAll(filepath.Join(e.WorkDir, "home"), 0o755)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":   cmdWaitfile,
			"countlines": cmdCountlines,
			"chmodx":     cmdChmodx,
			"status":     cmdStatus,
			"events":     cmdEvents,
			"labels":     cmdLabels,
			"noproc":     cmdNoproc,
			"emptydir":   cmdEmptydir,
			"tracecheck": cmdTracecheck, // profile_check_test.go
			"statcached": cmdStatcached, // cache_test.go
			"inode":      cmdInode,
			"blob":       cmdBlob,       // verify_script_test.go
			"sha256":     cmdSha256,     // verify_script_test.go
			"s3":         cmdS3,         // s3_script_test.go
			"registry":   cmdRegistry,   // registry_script_test.go
			"runnerproc": cmdRunnerproc, // runners_script_test.go
			"ec2double":  cmdEC2double,  // ec2double_script_test.go
			"logearly":   cmdLogearly,   // runners_script_test.go
			"eventkey":   cmdEventkey,   // tier_script_test.go
		},
	})
}

// waitfile PATH [SECONDS]: wait until PATH exists (default 30 s).
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: waitfile path [seconds]")
	}
	limit := 30 * time.Second
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		limit = time.Duration(n) * time.Second
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			if neg {
				ts.Fatalf("%s exists", args[0])
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !neg {
		ts.Fatalf("%s did not appear within %s", args[0], limit)
	}
}

// countlines FILE N: FILE has exactly N lines.
func cmdCountlines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: countlines file n")
	}
	data := ts.ReadFile(args[0])
	n := strings.Count(data, "\n")
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	if (n == want) == neg {
		ts.Fatalf("%s has %d lines, want %s%d", args[0], n, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// chmodx FILE: make FILE executable.
func cmdChmodx(ts *testscript.TestScript, neg bool, args []string) {
	for _, a := range args {
		ts.Check(os.Chmod(ts.MkAbs(a), 0o755))
	}
}

// status N: the last mc command (foreground or background, once waited
// for) exited with status N.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: status n")
	}
	data, err := os.ReadFile(ts.Getenv("MC_TEST_STATUS"))
	if err != nil {
		ts.Fatalf("no exit status recorded (did mc finish?): %v", err)
	}
	got := strings.TrimSpace(string(data))
	if (got == args[0]) == neg {
		ts.Fatalf("mc exited with status %s, want %s%s", got, map[bool]string{true: "not ", false: ""}[neg], args[0])
	}
}

// jsonEvents parses the `mc --output=json` event lines of file ("stdout"
// is the last command's standard output).
func jsonEvents(ts *testscript.TestScript, file string) []map[string]any {
	var evs []map[string]any
	for i, line := range strings.Split(ts.ReadFile(file), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			ts.Fatalf("%s:%d: not a JSON event: %v: %s", file, i+1, err, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

// events FILE TYPE N: FILE holds exactly N events of TYPE.
func cmdEvents(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: events file type n")
	}
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	n := 0
	for _, ev := range jsonEvents(ts, args[0]) {
		if ev["type"] == args[1] {
			n++
		}
	}
	if (n == want) == neg {
		ts.Fatalf("%s has %d %s events, want %s%d", args[0], n, args[1], map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// labels FILE TYPE [LABEL...]: the labels of FILE's events of TYPE are
// exactly the given ones (in any order; none: there is no such event).
func cmdLabels(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: labels file type [label...]")
	}
	var got []string
	for _, ev := range jsonEvents(ts, args[0]) {
		if ev["type"] == args[1] {
			l, _ := ev["label"].(string)
			got = append(got, l)
		}
	}
	want := append([]string(nil), args[2:]...)
	sort.Strings(got)
	sort.Strings(want)
	if slices.Equal(got, want) == neg {
		ts.Fatalf("%s events in %s: %q, want %s%q", args[1], args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// noproc SUBSTRING: no process has SUBSTRING in its command line or its
// environment; with !, some process has. A stage exports a variable holding
// its script's $WORK, which makes the substring unique to one script run
// even when several test runs share the machine. A process killed a moment
// ago may take a little while to leave /proc: the check is retried for 2 s.
func cmdNoproc(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: noproc substring")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		found := procsWith(ts, args[0])
		if (len(found) == 0) != neg {
			return
		}
		if time.Now().After(deadline) {
			if neg {
				ts.Fatalf("no process has %q in its command line", args[0])
			}
			ts.Fatalf("processes left with %q in their command line:\n%s", args[0], strings.Join(found, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procsWith lists the processes (other than this one) whose command line
// or environment contains s, as "PID: cmdline".
func procsWith(ts *testscript.TestScript, s string) []string {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	ts.Check(err)
	self := strconv.Itoa(os.Getpid())
	var found []string
	for _, d := range dirs {
		pid := filepath.Base(d)
		if pid == self {
			continue
		}
		// Either file vanishes when the process is gone meanwhile.
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		environ, _ := os.ReadFile(filepath.Join(d, "environ"))
		if strings.Contains(string(cmdline), s) || strings.Contains(string(environ), s) {
			found = append(found, pid+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// emptydir DIR: DIR exists and holds nothing (with !: holds something).
func cmdEmptydir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: emptydir dir")
	}
	ents, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	if (len(ents) == 0) == neg {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		ts.Fatalf("%s holds %q", args[0], names)
	}
}

// inode PATH FILE: write PATH's inode number (not following a symlink) to
// FILE, to compare with cmp.
func cmdInode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: inode path file")
	}
	fi, err := os.Lstat(ts.MkAbs(args[0]))
	ts.Check(err)
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		ts.Fatalf("%s: no inode number", args[0])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strconv.FormatUint(st.Ino, 10)+"\n"), 0o644))
}
