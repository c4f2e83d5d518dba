package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mc-build/mc/internal/ec2double"
)

// ec2Doubles holds each script's EC2 double, by $WORK (scripts run in
// parallel, and testscript offers no per-script value a command can set).
var ec2Doubles sync.Map

// cmdEC2double drives the script's test double of the EC2 control plane
// (internal/ec2double: its instances run the real user-data and `mc agent`
// as local processes; only the EC2 API is simulated):
//
//	ec2double start              serve it, set MC_EC2_ENDPOINT (after `s3 start`: instances get AWS_*)
//	ec2double bootdelay DUR      instances stay pending this long
//	ec2double fail CODE N        the next N RunInstances fail with CODE
//	ec2double neverboot N        the next N instances never run their user-data
//	ec2double live N             N instances are pending or running (waits up to 5 s)
//	ec2double launched KEY VAL   every RunInstances request had KEY=VAL
func cmdEC2double(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: ec2double start|bootdelay|fail|neverboot|live|launched ...")
	}
	work := ts.Getenv("WORK")
	if args[0] == "start" {
		var env []string
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
			env = append(env, k+"="+ts.Getenv(k))
		}
		s, err := ec2double.Start(filepath.Join(work, ".ec2"), env)
		ts.Check(err)
		ts.Defer(func() { s.Close(); ec2Doubles.Delete(work) })
		ec2Doubles.Store(work, s)
		ts.Setenv("MC_EC2_ENDPOINT", s.URL)
		return
	}
	v, ok := ec2Doubles.Load(work)
	if !ok {
		ts.Fatalf("ec2double %s: no double (run ec2double start first)", args[0])
	}
	s := v.(*ec2double.Server)
	arg := func(i int) string {
		if len(args) <= i {
			ts.Fatalf("ec2double %s: missing argument", args[0])
		}
		return args[i]
	}
	num := func(i int) int {
		n, err := strconv.Atoi(arg(i))
		ts.Check(err)
		return n
	}
	switch args[0] {
	case "bootdelay":
		d, err := time.ParseDuration(arg(1))
		ts.Check(err)
		s.SetBootDelay(d)
	case "fail":
		s.FailNext(arg(1), num(2))
	case "neverboot":
		s.NeverBoot(num(1))
	case "live":
		want := num(1)
		deadline := time.Now().Add(5 * time.Second)
		for {
			live := s.Live()
			if (len(live) == want) != neg {
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("%d live instances %q, want %d", len(live), live, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "launched":
		key, val := arg(1), arg(2)
		ls := s.Launches()
		if len(ls) == 0 {
			ts.Fatalf("no RunInstances request")
		}
		for i, f := range ls {
			if got := f.Get(key); (got == val) == neg {
				ts.Fatalf("RunInstances request %d: %s=%q, want %q (all: %s)", i+1, key, got, val, strings.Join(keys(f), " "))
			}
		}
	case "tagged":
		// tagged KEY VALUE N: exactly N RunInstances requests tagged the
		// instance KEY=VALUE (since the double started).
		key, val, want := arg(1), arg(2), num(3)
		n := 0
		for _, f := range s.Launches() {
			for i := 1; f.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", i)) != ""; i++ {
				if f.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", i)) == key &&
					f.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Value", i)) == val {
					n++
				}
			}
		}
		if (n == want) == neg {
			ts.Fatalf("%d launches tagged %s=%s, want %d", n, key, val, want)
		}
	default:
		ts.Fatalf("ec2double: unknown subcommand %q", args[0])
	}
}

func keys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
