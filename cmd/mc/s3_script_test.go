package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mc-build/mc/internal/testminio"
)

// s3Bucket is the bucket every S3 scenario uses; WORKSPACE.mc files name
// s3://mcb/cache.
const (
	s3Bucket = "mcb"
	s3Prefix = "cache/"
)

// scriptTB lets a testscript command use helpers written for testing.TB
// (the MinIO harness). Only the methods those helpers call are provided;
// the embedded nil TB makes any other call fail loudly.
type scriptTB struct {
	testing.TB
	ts *testscript.TestScript
}

func (t scriptTB) Helper()                      {}
func (t scriptTB) Fatal(args ...any)            { t.ts.Fatalf("%s", strings.TrimSpace(fmtArgs(args))) }
func (t scriptTB) Fatalf(f string, args ...any) { t.ts.Fatalf(f, args...) }
func (t scriptTB) Errorf(f string, args ...any) { t.ts.Fatalf(f, args...) }
func (t scriptTB) Skip(args ...any)             { t.ts.Fatalf("skip: %s", fmtArgs(args)) }
func (t scriptTB) Logf(f string, args ...any)   { t.ts.Logf(f, args...) }
func (t scriptTB) Cleanup(f func())             { t.ts.Defer(f) }
func (t scriptTB) Name() string                 { return "script" }
func (t scriptTB) TempDir() string {
	d, err := os.MkdirTemp(t.ts.Getenv("WORK"), ".minio-")
	t.ts.Check(err)
	return d
}

func fmtArgs(args []any) string { return fmt.Sprintln(args...) }

// cmdS3 drives the script's own MinIO server and inspects the bucket:
//
//	s3 start                 start MinIO, create the bucket, set AWS_* and MC_S3_ENDPOINT
//	s3 stop | s3 restart     kill it (as a crash would) | start it again, same data
//	s3 count PREFIX N        N objects under cache/PREFIX
//	s3 tamper PREFIX         replace every object's bytes (same length)
//	s3 truncate PREFIX       cut every object to half its length
//	s3 rm PREFIX             delete every object
//	s3 grep TEXT             some object holds TEXT (with !: none does)
func cmdS3(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: s3 start|stop|restart|count|tamper|truncate|rm|grep ...")
	}
	tb := scriptTB{ts: ts}
	holder := ts.Value(s3Key{}).(*s3Holder)
	srv := holder.srv
	if args[0] != "start" && srv == nil {
		ts.Fatalf("s3 %s: no server (run s3 start first)", args[0])
	}
	list := func(prefix string) []string { return srv.List(tb, s3Bucket, s3Prefix+prefix) }
	switch args[0] {
	case "start":
		srv = testminio.Start(tb)
		srv.MakeBucket(tb, s3Bucket)
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			ts.Setenv(k, v)
		}
		ts.Setenv("AWS_CONFIG_FILE", filepath.Join(ts.Getenv("WORK"), "no-aws-config"))
		ts.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(ts.Getenv("WORK"), "no-aws-credentials"))
		holder.srv = srv
	case "stop":
		srv.Stop(tb)
	case "restart":
		srv.Restart(tb)
	case "count":
		if len(args) != 3 {
			ts.Fatalf("usage: s3 count prefix n")
		}
		want, err := strconv.Atoi(args[2])
		ts.Check(err)
		got := list(args[1])
		if (len(got) == want) == neg {
			ts.Fatalf("%d objects under %s%s, want %d: %q", len(got), s3Prefix, args[1], want, got)
		}
	case "tamper", "truncate", "rm":
		if len(args) != 2 {
			ts.Fatalf("usage: s3 %s prefix", args[0])
		}
		keys := list(args[1])
		if len(keys) == 0 {
			ts.Fatalf("no objects under %s%s", s3Prefix, args[1])
		}
		for _, k := range keys {
			switch args[0] {
			case "rm":
				srv.Delete(tb, s3Bucket, k)
				continue
			}
			b, _ := srv.GetRaw(tb, s3Bucket, k)
			if args[0] == "truncate" {
				b = b[:len(b)/2]
			} else {
				b = bytes.Map(func(r rune) rune { return r ^ 1 }, b)
				if len(b) == 0 {
					b = []byte("x")
				}
			}
			srv.PutRaw(tb, s3Bucket, k, b)
		}
	case "grep":
		if len(args) != 2 {
			ts.Fatalf("usage: s3 grep text")
		}
		var hits []string
		for _, k := range list("") {
			if b, _ := srv.GetRaw(tb, s3Bucket, k); bytes.Contains(b, []byte(args[1])) {
				hits = append(hits, k)
			}
		}
		if (len(hits) > 0) == neg {
			ts.Fatalf("objects holding %q: %q", args[1], hits)
		}
	default:
		ts.Fatalf("s3: unknown subcommand %q", args[0])
	}
}

// s3Key finds the script's s3Holder among testscript's values.
type s3Key struct{}

// s3Holder keeps the script's MinIO server between s3 commands.
type s3Holder struct{ srv *testminio.Server }
