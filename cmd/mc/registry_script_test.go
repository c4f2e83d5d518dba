package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mc-build/mc/internal/testregistry"
	"github.com/mc-build/mc/oci"
)

// scriptRegistry is one script's registry: a real docker-registry behind a
// reverse proxy on another loopback port, which counts the blob uploads
// mc starts.
type scriptRegistry struct {
	reg     *testregistry.Registry
	addr    string // the proxy's host:port, what mc talks to
	srv     *http.Server
	uploads atomic.Int64
}

// registries holds each running script's registry, by $WORK: testscript
// values can only be set up front, and most scripts need none.
var registries sync.Map

// cmdRegistry drives the script's own registry:
//
//	registry start               start it; set MC_REGISTRY and REGISTRY to its host:port
//	registry digest REPO:TAG F   the registry's manifest digest of REPO:TAG is the content of file F
//	registry uploads N           N blob uploads were started since the last `registry uploads`
func cmdRegistry(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: registry start|digest|uploads ...")
	}
	work := ts.Getenv("WORK")
	var r *scriptRegistry
	if v, ok := registries.Load(work); ok {
		r = v.(*scriptRegistry)
	}
	if args[0] != "start" && r == nil {
		ts.Fatalf("registry %s: no registry (run registry start first)", args[0])
	}
	switch args[0] {
	case "start":
		if r != nil {
			ts.Fatalf("registry start: already started")
		}
		r = startScriptRegistry(ts)
		registries.Store(work, r)
		ts.Defer(func() { registries.Delete(work) })
		ts.Setenv("MC_REGISTRY", r.addr)
		ts.Setenv("REGISTRY", r.addr)
	case "digest":
		if len(args) != 3 {
			ts.Fatalf("usage: registry digest repo:tag file")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got, err := oci.Resolve(ctx, r.reg.Addr+"/"+args[1], oci.Options{Insecure: true, Retries: -1})
		ts.Check(err)
		_, got, _ = strings.Cut(got, "@")
		want := strings.TrimSpace(ts.ReadFile(args[2]))
		if (got == want) == neg {
			ts.Fatalf("registry has %s at %s, file %s holds %s", args[1], got, args[2], want)
		}
	case "uploads":
		if len(args) != 2 {
			ts.Fatalf("usage: registry uploads n")
		}
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		got := r.uploads.Swap(0)
		if (got == int64(want)) == neg {
			ts.Fatalf("%d blob uploads, want %s%d", got, map[bool]string{true: "not ", false: ""}[neg], want)
		}
	default:
		ts.Fatalf("registry: unknown subcommand %q", args[0])
	}
}

// startScriptRegistry starts docker-registry (failing the script, with how
// to install it, when it is missing) and the counting proxy in front of it.
func startScriptRegistry(ts *testscript.TestScript) *scriptRegistry {
	r := &scriptRegistry{reg: testregistry.Start(registryTB{scriptTB{ts: ts}})}
	target, err := url.Parse("http://" + r.reg.Addr)
	ts.Check(err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	r.addr = l.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// An upload starts with POST /v2/<name>/blobs/uploads/; a blob the
		// registry has is found with HEAD and never uploaded.
		if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			r.uploads.Add(1)
		}
		proxy.ServeHTTP(w, req)
	})}
	go r.srv.Serve(l)
	ts.Defer(func() { r.srv.Close() })
	return r
}

// registryTB is scriptTB with the one more method the registry harness
// calls (when it stops, to decide whether to show the registry's log): a
// script cannot tell whether it has failed, so the log is never shown; a
// failure names its cause anyway.
type registryTB struct{ scriptTB }

func (registryTB) Failed() bool { return false }
