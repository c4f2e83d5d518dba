package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/sched"
)

// The private stage network is tested as an attacker on a runner would
// try it, on a network the test builds, never the machine's own (whose
// metadata service, on EC2, is real):
//
//	"instance" netns (stands for the runner)      "outside" netns
//	  mc executor (this test binary, re-run)        198.51.100.254 (gateway)
//	  198.51.100.1/24 --------- veth ------------   169.254.169.254:80  STAND-IN FOR IMDS
//	  192.0.2.1 (another address of the host)       203.0.113.10:80     stands for the internet
//	  agent stand-in: 0.0.0.0:8181 (loopback       169.254.170.2:80    stand-in for the ECS
//	  and every address)                             credentials endpoint (rest of 169.254/16)
//
// The executor runs in the instance namespace (stageNetChildMain), runs a
// stage with network = True that tries each address, and reports which it
// reached: on a worker, in a bubblewrap sandbox of its own, and in an image
// (runc, the busybox image of local_container_test.go, probing with
// busybox's wget). With PrivateNetwork, only the internet; with the host's
// network (the positive control), all of them.

// stageNetChildEnv names the executor's network mode in the re-run test
// binary: "private" or "host".
const stageNetChildEnv = "MC_TEST_STAGENET_CHILD"

// stageNetProbe is the stage: one line per target, "name OK body" or
// "name FAIL", then its network namespace.
const stageNetProbe = `for t in imds=169.254.169.254/latest/meta-data/iam/security-credentials/ ecs=169.254.170.2/v2/credentials loopback=127.0.0.1:8181/ hostaddr=192.0.2.1:8181/ internet=203.0.113.10/; do
  name=${t%%=*}; url=http://${t#*=}
  if body=$(curl -sf -m 3 "$url" 2>/dev/null); then echo "$name OK $body"; else echo "$name FAIL"; fi
done
echo "netns $(readlink /proc/self/ns/net)"`

// stageNetImageProbe is stageNetProbe in the busybox image, which has no
// curl and whose wget crashes without glibc's files: HTTP by hand over nc,
// bounded by timeout because busybox's nc never half-closes and, through
// pasta, then waits for the server's close after the reply has come.
const stageNetImageProbe = `for t in imds=169.254.169.254:80/latest/meta-data/iam/security-credentials/ ecs=169.254.170.2:80/v2/credentials loopback=127.0.0.1:8181/ hostaddr=192.0.2.1:8181/ internet=203.0.113.10:80/; do
  name=${t%%=*}; hp=${t#*=}; host=${hp%%/*}; path=/${hp#*/}
  resp=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$path" | timeout 5 nc -w 3 "${host%:*}" "${host#*:}" 2>/dev/null)
  case "$resp" in
  "HTTP/1."?" 200 "*) echo "$name OK $(echo "$resp" | tail -n 1)" ;;
  *) echo "$name FAIL" ;;
  esac
done
echo "netns $(readlink /proc/self/ns/net)"`

// stageNetModes are where the probe runs: isolatedModes, and "image".
var stageNetModes = append(slices.Clone(isolatedModes), "image")

func TestStageNetPrivate(t *testing.T) {
	requireBwrap(t)
	requireRunc(t)
	if os.Geteuid() != 0 {
		t.Fatal("the private stage network tests run as root (they build network namespaces); run them as root")
	}
	for _, tool := range []string{"ip", "pasta", "nft", "unshare", "nsenter", "curl"} {
		if _, err := osexec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; the private stage network tests need it (apt-get install iproute2 passt nftables util-linux curl)", tool)
		}
	}
	inst, out := buildStageNetTopology(t)
	serveOutside(t, out)

	want := map[string]map[string]string{
		// The guarantee: the metadata stand-in, the agent on loopback and
		// on the host's other address are all unreachable; the internet
		// is reached through the NAT.
		"private": {"imds": "FAIL", "ecs": "FAIL", "loopback": "FAIL", "hostaddr": "FAIL", "internet": "OK internet"},
		// Positive control: the same probe on the host's network reaches
		// everything, so the probe can tell.
		"host": {"imds": "OK role-credentials", "ecs": "OK task-credentials", "loopback": "OK agent", "hostaddr": "OK agent", "internet": "OK internet"},
	}
	for _, netMode := range []string{"private", "host"} {
		t.Run(netMode, func(t *testing.T) {
			// nsenter, not ip netns exec: that one also remounts /sys,
			// which leaves runc (the image mode) without the cgroup mounts.
			cmd := osexec.Command("nsenter", "--net=/run/netns/"+inst, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), stageNetChildEnv+"="+netMode)
			outb, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the executor in the instance namespace failed: %v\n%s", err, outb)
			}
			got := parseStageNetChild(t, string(outb))
			for _, mode := range stageNetModes {
				for target, w := range want[netMode] {
					if g := got[mode+" "+target]; g != w {
						t.Errorf("%s, %s: stage got %q, want %q\n%s", mode, target, g, w, outb)
					}
				}
			}
			hostNS := got["worker hostns"]
			first, second := got["worker netns1"], got["worker netns2"]
			switch netMode {
			case "private":
				if first == "" || first == hostNS {
					t.Errorf("worker stage ran in netns %q, the host's is %q: want a namespace of its own", first, hostNS)
				}
				// Set up once per worker: the next stage on it shares it.
				if second != first {
					t.Errorf("two stages on one worker ran in network namespaces %q and %q: want the worker's one", first, second)
				}
				// Not compared with the worker's: that namespace is gone by
				// then, and the kernel reuses namespace inode numbers.
				for _, mode := range []string{"bwrap", "image"} {
					if own := got[mode+" netns1"]; own == "" || own == hostNS {
						t.Errorf("%s: a stage in a sandbox of its own ran in netns %q (host %q): want one of its own", mode, own, hostNS)
					}
				}
			case "host":
				for _, mode := range stageNetModes {
					if ns := got[mode+" netns1"]; ns != hostNS {
						t.Errorf("%s: on the host's network the stage ran in netns %q, want the host's %q", mode, ns, hostNS)
					}
				}
			}
		})
	}
}

// parseStageNetChild reads the child's "RESULT mode key value" lines.
func parseStageNetChild(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) == 4 && f[0] == "RESULT" {
			got[f[1]+" "+f[2]] = f[3]
		}
	}
	if len(got) == 0 {
		t.Fatalf("no results from the executor:\n%s", out)
	}
	return got
}

// buildStageNetTopology makes the two namespaces of the picture above and
// returns their names; they go at the end of the test.
func buildStageNetTopology(t *testing.T) (inst, out string) {
	t.Helper()
	id := fmt.Sprint(os.Getpid() % 100000)
	inst, out = "mc-test-inst-"+id, "mc-test-out-"+id
	vi, vo := "mcti"+id, "mcto"+id
	ip := func(args ...string) {
		t.Helper()
		if b, err := osexec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	ip("netns", "add", inst)
	t.Cleanup(func() { osexec.Command("ip", "netns", "del", inst).Run() })
	ip("netns", "add", out)
	t.Cleanup(func() { osexec.Command("ip", "netns", "del", out).Run() })
	ip("link", "add", vi, "type", "veth", "peer", "name", vo)
	ip("link", "set", vi, "netns", inst)
	ip("link", "set", vo, "netns", out)
	ip("-n", inst, "link", "set", "lo", "up")
	ip("-n", inst, "addr", "add", "198.51.100.1/24", "dev", vi)
	ip("-n", inst, "link", "set", vi, "up")
	ip("-n", inst, "addr", "add", "192.0.2.1/32", "dev", "lo") // another address of the host's
	ip("-n", inst, "route", "add", "default", "via", "198.51.100.254")
	ip("-n", out, "link", "set", "lo", "up")
	ip("-n", out, "addr", "add", "198.51.100.254/24", "dev", vo)
	ip("-n", out, "link", "set", vo, "up")
	ip("-n", out, "addr", "add", "169.254.169.254/32", "dev", "lo") // the IMDS stand-in's
	ip("-n", out, "addr", "add", "169.254.170.2/32", "dev", "lo")   // the ECS credentials stand-in's
	ip("-n", out, "addr", "add", "203.0.113.10/32", "dev", "lo")    // the internet's
	return inst, out
}

// serveOutside starts, in the outside namespace, the STAND-IN FOR THE
// INSTANCE METADATA SERVICE (a plain HTTP server on 169.254.169.254 that
// answers as if with the role's credentials) and a server standing for
// the internet. The sockets are made from a thread that joined the
// namespace; they stay in it wherever they are served from.
func serveOutside(t *testing.T, ns string) {
	t.Helper()
	type listeners struct {
		imds, ecs, internet net.Listener
		err                 error
	}
	done := make(chan listeners, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		var l listeners
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err == nil {
			l.imds, err = net.Listen("tcp4", "169.254.169.254:80")
		}
		if err == nil {
			l.ecs, err = net.Listen("tcp4", "169.254.170.2:80")
		}
		if err == nil {
			l.internet, err = net.Listen("tcp4", "203.0.113.10:80")
		}
		l.err = err
		done <- l
	}()
	l := <-done
	if l.err != nil {
		t.Fatalf("starting the outside servers: %v", l.err)
	}
	for ln, body := range map[net.Listener]string{l.imds: "role-credentials", l.ecs: "task-credentials", l.internet: "internet"} {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
}

// stageNetChildMain is the executor side of TestStageNetPrivate, in the
// re-run test binary inside the instance namespace. It reports whether it
// ran (ok) and the exit code.
func stageNetChildMain() (code int, ok bool) {
	netMode := os.Getenv(stageNetChildEnv)
	if netMode == "" {
		return 0, false
	}
	if err := stageNetChild(netMode == "private"); err != nil {
		fmt.Println("child:", err)
		return 1, true
	}
	return 0, true
}

func stageNetChild(private bool) error {
	// The agent's stand-in, on loopback and every address of the host.
	ln, err := net.Listen("tcp4", "0.0.0.0:8181")
	if err != nil {
		return err
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "agent") }))
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	fmt.Printf("RESULT worker hostns %s\n", hostNS)
	for _, mode := range stageNetModes {
		if err := stageNetChildMode(mode, private); err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
	}
	return nil
}

func stageNetChildMode(mode string, private bool) error {
	dir, err := os.MkdirTemp("", "mc-stagenet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		return err
	}
	l, err := NewLocal(LocalOptions{Store: store, SandboxDir: filepath.Join(dir, "sandbox"),
		MountsDir: filepath.Join(dir, "mounts"), RootfsDir: filepath.Join(dir, "rootfs"), PrivateNetwork: private,
		Warn: func(msg string) { fmt.Println("warning:", msg) }})
	if err != nil {
		return err
	}
	defer l.Close()
	if !l.Isolated() {
		return fmt.Errorf("bubblewrap does not work here")
	}
	if mode == "bwrap" {
		p := l.workers()
		p.mu.Lock()
		p.disabled = true
		p.mu.Unlock()
	}
	var image sched.Input
	if mode == "image" {
		layout, err := makeBusyboxLayout(dir, "")
		if err != nil {
			return err
		}
		d, _, err := store.PutTree(layout, false)
		if err != nil {
			return err
		}
		image = sched.Input{Path: "tools/bb.oci", Digest: d, IsTree: true}
	}
	runs := 2 // the second stage only tells its namespace (same worker or not)
	if mode == "image" {
		runs = 1
	}
	for run := 1; run <= runs; run++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		j := job("p", "probe", stageNetProbe)
		if run == 2 {
			j = job("p", "probe", `echo "netns $(readlink /proc/self/ns/net)"`)
		}
		if mode == "image" {
			j = job("p", "probe", stageNetImageProbe)
			j.Image, j.ImageLayout, j.Inputs = "//tools:bb", image.Path, []sched.Input{image}
		}
		j.Network = true
		res, err := l.Run(ctx, j)
		cancel()
		if err != nil {
			return err
		}
		log, err := store.ReadBytes(res.Log)
		if err != nil {
			return err
		}
		if res.Err != nil || res.ExitCode != 0 {
			return fmt.Errorf("probe stage failed: %v, code %d:\n%s", res.Err, res.ExitCode, log)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
			name, rest, _ := strings.Cut(line, " ")
			if name == "netns" {
				fmt.Printf("RESULT %s netns%d %s\n", mode, run, rest)
			} else {
				fmt.Printf("RESULT %s %s %s\n", mode, name, rest)
			}
		}
	}
	if mode == "worker" {
		p := l.workers()
		p.mu.Lock()
		ok := p.started && !p.disabled
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("the stages did not run on a worker")
		}
	}
	return nil
}

// An mc killed outright leaves its pasta running (pasta with a PID
// target never quits); the next executor to set up private networks ends
// it, and leaves alone the pasta of a network still in use.
func TestStageNetOrphanPastaReaped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the private stage network tests run as root; run them as root")
	}
	var tools stageNetTools
	for dst, name := range map[*string]string{&tools.pasta: "pasta", &tools.unshare: "unshare", &tools.sleep: "sleep"} {
		p, err := osexec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is not installed (apt-get install passt util-linux coreutils)", name)
		}
		*dst = p
	}
	orphan, err := startStageNet(&tools)
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.close()
	live, err := startStageNet(&tools)
	if err != nil {
		t.Fatal(err)
	}
	defer live.close()
	// As when mc dies: its holder goes, its pasta stays.
	orphan.holder.Process.Kill()
	<-orphan.exited
	if err := unix.PidfdSendSignal(orphan.pasta, 0, nil, 0); err != nil {
		t.Fatalf("the orphan's pasta is already gone (%v): the test shows nothing", err)
	}
	reapOrphanPasta()
	deadline := time.Now().Add(5 * time.Second)
	for unix.PidfdSendSignal(orphan.pasta, 0, nil, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the orphaned pasta still runs after reapOrphanPasta")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.PidfdSendSignal(live.pasta, 0, nil, 0); err != nil {
		t.Fatalf("the pasta of a network in use was ended too: %v", err)
	}
}
