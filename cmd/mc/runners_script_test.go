package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdRunnerproc finds and kills this script's runner processes (local
// runners are process groups on this machine):
//
//	runnerproc wait TEXT [SECONDS]   a process whose command line holds TEXT exists
//	runnerproc kill TEXT             SIGKILL the script's processes whose command line holds TEXT
//	runnerproc int TEXT              SIGINT them (Ctrl-C)
//
// "The script's" means their environment mentions $WORK, so that scripts
// running in parallel do not kill each other's processes.
func cmdRunnerproc(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: runnerproc wait|kill text [seconds]")
	}
	work := ts.Getenv("WORK")
	// A failing script must not leave its runners behind: whatever of it
	// still runs at the end (agents, stages) is killed. (Registered once per
	// use; killing twice is harmless.)
	ts.Defer(func() {
		for _, pid := range scriptProcs("", work) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	switch args[0] {
	case "wait":
		limit := 30 * time.Second
		if len(args) > 2 {
			n, err := strconv.Atoi(args[2])
			ts.Check(err)
			limit = time.Duration(n) * time.Second
		}
		deadline := time.Now().Add(limit)
		for len(scriptProcs(args[1], "")) == 0 {
			if time.Now().After(deadline) {
				ts.Fatalf("no process with %q in its command line within %s", args[1], limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "kill", "int":
		sig := syscall.SIGKILL
		if args[0] == "int" {
			sig = syscall.SIGINT
		}
		pids := scriptProcs(args[1], work)
		if len(pids) == 0 {
			ts.Fatalf("no process of this script has %q in its command line", args[1])
		}
		for _, pid := range pids {
			ts.Logf("signalling %d (%s)", pid, sig)
			_ = syscall.Kill(pid, sig)
		}
	default:
		ts.Fatalf("runnerproc: unknown subcommand %q", args[0])
	}
}

// scriptProcs returns the PIDs of processes (not this one) whose command
// line holds text and, unless env is "", whose environment holds env.
func scriptProcs(text, env string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), text) {
			continue
		}
		if env != "" {
			e, err := os.ReadFile(filepath.Join(d, "environ"))
			if err != nil || !strings.Contains(string(e), env) {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// cmdLogearly FILE TEXT SECONDS: in the JSON events of FILE, the log line
// holding TEXT was shown at least SECONDS before its stage finished: logs
// stream while a stage runs on a runner.
func cmdLogearly(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: logearly file text seconds")
	}
	secs, err := strconv.ParseFloat(args[2], 64)
	ts.Check(err)
	var logAt, doneAt time.Time
	var label string
	evs := jsonEvents(ts, args[0])
	for _, ev := range evs {
		if ev["type"] == "log" && strings.Contains(fmt.Sprint(ev["line"]), args[1]) && logAt.IsZero() {
			logAt, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
			label = fmt.Sprint(ev["label"])
		}
	}
	for _, ev := range evs {
		if ev["type"] == "stage_finished" && fmt.Sprint(ev["label"]) == label {
			doneAt, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
		}
	}
	if logAt.IsZero() || doneAt.IsZero() {
		ts.Fatalf("no log line holding %q, or its stage did not finish", args[1])
	}
	if early := doneAt.Sub(logAt); (early.Seconds() >= secs) == neg {
		ts.Fatalf("%q was shown %s before %s finished, want at least %gs", args[1], early, label, secs)
	}
}
