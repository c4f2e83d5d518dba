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

	"github.com/mc-build/mc/internal/ec2double"
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
	fmt.Printf("remote runners on the EC2 double: %d stages (critical path %d stages), %s of work each, boot %s\n\n",
		stages, depth, *work, *boot)
	fmt.Printf("%6s %12s %12s %8s %14s %10s\n", "N", "makespan (s)", "bound (s)", "ratio", "overhead p50 (s)", "p90 (s)")
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
		cmd.Env = append(os.Environ(), "MC_EC2_ENDPOINT="+d.URL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		if p := os.Getenv("MC_STDERR_DIR"); p != "" { // where to keep mc's stderr (diagnostics)
			_ = os.WriteFile(filepath.Join(p, fmt.Sprintf("stderr-%d.txt", n)), stderr.Bytes(), 0o644)
		}
		if err != nil {
			return fmt.Errorf("N=%d: %v: %s", n, err, tail(stderr.String()))
		}
		if live := d.Live(); len(live) != 0 {
			return fmt.Errorf("N=%d: %d instances still live after the build", n, len(live))
		}
		durations := stageDurations(stdout.Bytes())
		if len(durations) != stages {
			return fmt.Errorf("N=%d: %d stages ran, want %d", n, len(durations), stages)
		}
		total := time.Duration(stages) * *work
		bound := max(time.Duration(depth)**work, total/time.Duration(n)) + *boot
		// A stage's time on its slot beyond its own work: dispatch (inputs
		// uploaded, job written, the waiting agent finding it), input
		// download, sandbox, upload, the result found and the outputs
		// downloaded. Stages whose spare had not finished booting wait
		// for it too: the median leaves those out when the pool works,
		// the 90th percentile shows them.
		sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
		median := durations[len(durations)/2] - *work
		p90 := durations[len(durations)*9/10] - *work
		fmt.Printf("%6d %12.1f %12.1f %7.2fx %14.3f %10.3f\n", n, wall.Seconds(), bound.Seconds(), wall.Seconds()/bound.Seconds(), median.Seconds(), p90.Seconds())
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

// stageDurations returns the run time of every finished stage in a JSON
// event stream.
func stageDurations(events []byte) []time.Duration {
	var out []time.Duration
	for _, line := range bytes.Split(events, []byte("\n")) {
		var e struct {
			Type       string `json:"type"`
			DurationMS int64  `json:"duration_ms"`
		}
		if json.Unmarshal(line, &e) == nil && e.Type == "stage_finished" {
			out = append(out, time.Duration(e.DurationMS)*time.Millisecond)
		}
	}
	return out
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
