// Command runners is the remote-runner benchmark (issue 7): a generated
// graph built with `mc build --runners=ec2` against internal/ec2double — a
// double of the EC2 control plane only, whose instances are local process
// groups running the real bootstrap and the real `mc agent` after a
// configurable boot delay — for several runner counts N. It prints each
// makespan beside the lower bound max(critical path, total work ÷ N) + one
// boot, and the per-stage overhead. S3 must be reachable (bench/runners.sh
// starts MinIO and sets AWS_*, MC_S3_ENDPOINT).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/internal/ec2double"
	"github.com/mc-build/mc/runner"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/runners:", err)
		os.Exit(1)
	}
}

func run() error {
	mc := flag.String("mc", "", "the mc binary")
	packages := flag.Int("packages", 50, "packages of the generated graph (10 stages each)")
	work := flag.Duration("work", 500*time.Millisecond, "each stage's own work (a sleep)")
	boot := flag.Duration("boot", 2*time.Second, "the double's boot delay")
	ns := flag.String("n", "4,16,64", "runner counts")
	dir := flag.String("dir", "", "work directory")
	bucket := flag.String("bucket", "bench", "bucket of the shared cache")
	notify := flag.Bool("notify", true, "runners can reach the coordinator (MC_RUNNER_NOTIFY: a coordinator in the runners' network); false: S3 polling only")
	baked := flag.Bool("baked", true, "the runners' image holds mc (runner.BakedPath), as a baked AMI would; false: each runner downloads it")
	flag.Parse()
	if *mc == "" || *dir == "" {
		return fmt.Errorf("-mc and -dir are required")
	}
	d, err := ec2double.Start(filepath.Join(*dir, "ec2"), os.Environ())
	if err != nil {
		return err
	}
	defer d.Close()
	d.SetBootDelay(*boot)
	var env []string
	if *notify {
		env = append(env, "MC_RUNNER_NOTIFY=127.0.0.1:0")
	}
	if *baked {
		// Here every "instance" shares this machine's CPU: 500 downloads
		// of a 76 MB binary would measure this machine, not the design.
		b, err := os.ReadFile(*mc)
		if err != nil {
			return err
		}
		ami := filepath.Join(*dir, "ami")
		p := runner.BakedPath(ami, cas.FromBytes(b))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			return err
		}
		env = append(env, "MC_RUNNER_BAKED_DIR="+ami)
	}

	ws := filepath.Join(*dir, "ws")
	gen := osexec.Command("go", "run", "./bench/gen", "-out", ws, "-packages", strconv.Itoa(*packages), "-stages", "10", "-seed", "1")
	if out, err := gen.CombinedOutput(); err != nil {
		return fmt.Errorf("generating: %v: %s", err, out)
	}
	// Each stage does `work` of its own before hashing.
	sleep := strconv.FormatFloat(work.Seconds(), 'f', -1, 64)
	cmdRE := regexp.MustCompile(`cmd = "`)
	files, _ := filepath.Glob(filepath.Join(ws, "pkg*", "BUILD.mc"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f, cmdRE.ReplaceAll(b, []byte(`cmd = "sleep `+sleep+`; `)), 0o644); err != nil {
			return err
		}
	}
	stages, depth, err := graphShape(filepath.Join(ws, "edges.txt"))
	if err != nil {
		return err
	}
	how := "downloaded by each runner"
	if *baked {
		how = "baked into the image"
	}
	reach := "S3 polling only"
	if *notify {
		reach = "wake-ups from the coordinator"
	}
	fmt.Printf("remote runners on the EC2 double: %d stages (critical path %d stages), %s of work each, boot %s, mc %s, %s\n\n",
		stages, depth, *work, *boot, how, reach)
	fmt.Printf("%6s %12s %12s %8s %18s %18s %10s\n", "N", "makespan (s)", "bound (s)", "ratio", "dispatch->run p50", "done->record p50", "ovh p90")
	for _, field := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(field)
		if err != nil {
			return err
		}
		prefix := fmt.Sprintf("s3://%s/n%d", *bucket, n)
		wsFile := fmt.Sprintf(`workspace(name = "bench", cache = %q, runners = ec2(region = "us-east-1", ami = "ami-0abc1234", instance_type = "c6i.large", max_instances = %d, ttl = "30m"))`+"\n", prefix, n)
		if err := os.WriteFile(filepath.Join(ws, "WORKSPACE.mc"), []byte(wsFile), 0o644); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(ws, "mc-out"))
		cmd := osexec.Command(*mc, "build", "-j", strconv.Itoa(n), "--runners=ec2", "--output=json",
			"--cache-dir", filepath.Join(*dir, fmt.Sprintf("cache-%d", n)), "//...")
		cmd.Dir = ws
		cmd.Env = append(append(os.Environ(), env...), "MC_EC2_ENDPOINT="+d.URL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		if p := os.Getenv("MC_STDERR_DIR"); p != "" { // where to keep mc's stderr and events (diagnostics)
			_ = os.WriteFile(filepath.Join(p, fmt.Sprintf("stderr-%d.txt", n)), stderr.Bytes(), 0o644)
			_ = os.WriteFile(filepath.Join(p, fmt.Sprintf("events-%d.json", n)), stdout.Bytes(), 0o644)
		}
		if err != nil {
			return fmt.Errorf("N=%d: %v: %s", n, err, tail(stderr.String()))
		}
		if live := d.Live(); len(live) != 0 {
			return fmt.Errorf("N=%d: %d instances still live after the build", n, len(live))
		}
		st := stageTimes(stdout.Bytes())
		if len(st.total) != stages {
			return fmt.Errorf("N=%d: %d stages ran, want %d", n, len(st.total), stages)
		}
		total := time.Duration(stages) * *work
		bound := max(time.Duration(depth)**work, total/time.Duration(n)) + *boot
		// A stage's time on its slot beyond its own work, in two parts
		// (from the stages' phases, runner phases placed on this clock):
		// dispatch -> running is inputs uploaded, the job written, the
		// waiting agent finding it (or, when its spare had not finished
		// booting, waiting for that), inputs fetched, the sandbox set up;
		// done -> recorded is outputs stored and uploaded, the result found
		// and the outputs downloaded. Medians, and the 90th percentile of
		// the whole, where stages that waited for a boot show.
		fmt.Printf("%6d %12.1f %12.1f %7.2fx %18.3f %18.3f %10.3f\n", n, wall.Seconds(), bound.Seconds(), wall.Seconds()/bound.Seconds(),
			pct(st.before, 50).Seconds(), pct(st.after, 50).Seconds(), (pct(st.total, 90) - *work).Seconds())
	}
	fmt.Println("\ngoal: makespan <= 1.15x the bound")
	return nil
}

// graphShape reads bench/gen's edges.txt: the number of stages and the
// length (in stages) of the longest chain.
func graphShape(path string) (stages, depth int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	level := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() { // dependencies come before dependents
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		l := 1
		for _, dep := range fields[1:] {
			l = max(l, level[dep]+1)
		}
		level[fields[0]] = l
		depth = max(depth, l)
		stages++
	}
	return stages, depth, sc.Err()
}

// times are per-stage durations from a JSON event stream.
type times struct {
	total, before, after []time.Duration
}

// stageTimes reads every finished stage's duration and, from its phases,
// dispatch -> running and done -> recorded.
func stageTimes(events []byte) times {
	var t times
	for _, line := range bytes.Split(events, []byte("\n")) {
		var e struct {
			Type       string `json:"type"`
			DurationMS int64  `json:"duration_ms"`
			Phases     []struct {
				Name       string    `json:"name"`
				Start      time.Time `json:"start"`
				DurationUS int64     `json:"duration_us"`
			} `json:"phases"`
		}
		if json.Unmarshal(line, &e) != nil || e.Type != "stage_finished" {
			continue
		}
		t.total = append(t.total, time.Duration(e.DurationMS)*time.Millisecond)
		var first, runStart, runEnd, last time.Time
		for _, p := range e.Phases {
			end := p.Start.Add(time.Duration(p.DurationUS) * time.Microsecond)
			if first.IsZero() {
				first = p.Start
			}
			if p.Name == "running" {
				runStart, runEnd = p.Start, end
			}
			last = end
		}
		if !runStart.IsZero() {
			t.before = append(t.before, runStart.Sub(first))
			t.after = append(t.after, last.Sub(runEnd))
		}
	}
	return t
}

// pct is the p-th percentile of ds (0 when empty).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
