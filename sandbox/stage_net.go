package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/confine"
)

// A private stage network (LocalOptions.PrivateNetwork) gives stages with
// network = True a network namespace of their own with NAT to the outside,
// instead of the host's: on a runner or a CI server the host's network
// holds the instance metadata service (169.254.169.254, the instance
// role's credentials) and the agent's own services on loopback.
//
// How it is built, per sandbox worker (once, not per stage):
//
//  1. A holder process (util-linux unshare, then sleep) running as
//     StageNetUID creates a user namespace and, in it, the network
//     namespace. The user namespace is StageNetUID's own, which is what lets
//     pasta, running as that same unprivileged id, join it.
//  2. pasta (Debian's passt) attaches to the holder's namespaces, sets up a
//     tap interface there with the host's addresses and routes, and carries
//     the namespace's traffic out through ordinary sockets of its own,
//     opened as StageNetUID. It is started with every port forward off (-t,
//     -u, -T, -U none: nothing of the host's loopback is spliced in) and
//     --no-map-gw (the gateway address is not the host).
//  3. bubblewrap (the worker, or a stage's own sandbox) is started from a
//     thread that joined that network namespace (stageNet.start), without
//     --unshare-net: the stages see its tap interface and loopback only.
//
// Why the block is on the host and not in the namespace: pasta re-originates
// each connection from a host process, so the metadata service's hop limit
// of 1 does not stop it, and only the host knows which addresses are its
// own (the agent may listen on any of them; inside the namespace they look
// like any outside address). pasta itself has no option refusing
// destinations. (The stage could not undo rules in the namespace either: it
// holds no capability over it, see stageNet.start.) So mc installs an nftables table (stageNetTable) whose rules
// refuse, for sockets owned by StageNetUID only, 169.254.0.0/16 (the
// metadata service, link-local), 127.0.0.0/8 and ::1, 0.0.0.0/8, fe80::/10,
// fd00:ec2::254 (the metadata service over IPv6) and every address of the
// host itself (fib daddr type local: the agent listening on any address).
// StageNetUID is the first id after confine's stage range: no stage and no
// host account has it, so the rules touch nothing else.
//
// Why pasta rather than slirp4netns: slirp4netns has no way to run as
// another id (it would run as root, which a uid rule cannot single out) and
// its --disable-host-loopback does not cover the metadata service or the
// host's other addresses; pasta drops to an id of our choosing before it
// opens a socket, and is faster.
//
// Fail closed: when any part cannot be had (not root, pasta, unshare
// or nft missing, the table not accepted, pasta not attaching), a
// stage with network = True fails with an infrastructure error; it never
// runs on the host's network instead.

// StageNetUID is the host uid (and gid) pasta runs as, and that the
// firewall rules single out.
const StageNetUID = confine.IDBase + confine.IDCount

// stageNetTable is the nftables table mc keeps for private stage networks.
const stageNetTable = "mc_stagenet"

// stageNetRules is the whole table, replaced in one transaction (nft -f is
// atomic): there is no moment without the rules, even when another mc
// process installs them at the same time.
func stageNetRules() string {
	uid := strconv.Itoa(StageNetUID)
	return "table inet " + stageNetTable + "\n" +
		"delete table inet " + stageNetTable + "\n" +
		"table inet " + stageNetTable + " {\n" +
		"\tchain out {\n" +
		"\t\ttype filter hook output priority -10; policy accept;\n" +
		"\t\tmeta skuid " + uid + " ip daddr { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16 } reject\n" +
		"\t\tmeta skuid " + uid + " ip6 daddr { ::/128, ::1/128, fe80::/10, fd00:ec2::254/128 } reject\n" +
		"\t\tmeta skuid " + uid + " fib daddr type local reject\n" +
		"\t}\n" +
		"}\n"
}

// stageNetTools are the programs a private stage network needs.
type stageNetTools struct {
	pasta, unshare, sleep string
}

// stageNetSetup checks the tools and installs the firewall table, once per
// executor.
func (l *Local) stageNetSetup() (*stageNetTools, error) {
	l.net.once.Do(func() {
		l.net.tools, l.net.err = setupStageNet()
	})
	return l.net.tools, l.net.err
}

// localNet is an executor's private network set-up, done once.
type localNet struct {
	once  sync.Once
	tools *stageNetTools
	err   error
}

func setupStageNet() (*stageNetTools, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private stage network needs mc to run as root (pasta runs as a dedicated id, for which mc installs a firewall rule)")
	}
	var t stageNetTools
	for _, p := range []struct {
		dst  *string
		name string
		pkg  string
	}{
		{&t.pasta, "pasta", "passt"},
		{&t.unshare, "unshare", "util-linux"},
		{&t.sleep, "sleep", "coreutils"},
	} {
		path, err := osexec.LookPath(p.name)
		if err != nil {
			return nil, fmt.Errorf("a private stage network needs %s, which is not installed (apt-get install %s)", p.name, p.pkg)
		}
		*p.dst = path
	}
	nft, err := osexec.LookPath("nft")
	if err != nil {
		return nil, errors.New("a private stage network needs nft to keep stages from the metadata service and the host, and it is not installed (apt-get install nftables)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := osexec.CommandContext(ctx, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(stageNetRules())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("installing the firewall rules of private stage networks (nft table inet %s): %v: %s", stageNetTable, err, strings.TrimSpace(string(out)))
	}
	// Read back: the rules must be there, for our id.
	out, err := osexec.CommandContext(ctx, nft, "list", "table", "inet", stageNetTable).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("skuid "+strconv.Itoa(StageNetUID))) || !bytes.Contains(out, []byte("169.254.0.0/16")) {
		return nil, fmt.Errorf("the firewall rules of private stage networks are not in place after installing them (nft list table inet %s: %v)", stageNetTable, err)
	}
	reapOrphanPasta()
	return &t, nil
}

// reapOrphanPasta ends the pasta processes left by an mc that was killed
// before it could end them: pasta with a PID target never quits on its
// own. One is an orphan when its target (the last argument, a holder) is
// gone or no longer StageNetUID's; pastas of other mc processes, whose
// holders live, are left alone. Best effort: a leftover pasta holds only
// an empty namespace, under the same firewall rules.
func reapOrphanPasta() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if uid, ok := procUID(pid); !ok || uid != StageNetUID {
			continue
		}
		// The pidfd first, what it is after: a signal through it reaches
		// the process read about, or none (never one that got its pid).
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if orphanPasta(pid) {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
		unix.Close(fd)
	}
}

// orphanPasta reports whether pid is a pasta of StageNetUID whose target
// is gone.
func orphanPasta(pid int) bool {
	if uid, ok := procUID(pid); !ok || uid != StageNetUID {
		return false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if len(args) < 2 || !strings.HasPrefix(filepath.Base(args[0]), "pasta") {
		return false
	}
	target, err := strconv.Atoi(args[len(args)-1])
	if err != nil {
		return false
	}
	// A holder that lives (another mc's, or ours) is StageNetUID's and not
	// a zombie (whose mc died before it could reap it).
	uid, ok := procUID(target)
	return !ok || uid != StageNetUID || procZombie(target)
}

// stageNet is one private network namespace, with pasta attached.
type stageNet struct {
	holder *osexec.Cmd
	exited chan struct{}
	pasta  int // pasta's pidfd; -1 when not started
}

// privateNet returns the private network a sandbox for stages with network
// (worker or stage of its own) is to run in, or nil when it runs in the
// host's (no network, or PrivateNetwork off). It fails when a private
// network is asked for and cannot be had, including without bubblewrap.
func (l *Local) privateNet(network, isolated bool) (*stageNet, error) {
	if !network || !l.opts.PrivateNetwork {
		return nil, nil
	}
	if !isolated {
		return nil, errors.New("a stage with network = True needs a private network here, which needs the bubblewrap sandbox, and bubblewrap does not work on this machine")
	}
	t, err := l.stageNetSetup()
	if err != nil {
		return nil, err
	}
	n, err := startStageNet(t)
	if err != nil {
		return nil, fmt.Errorf("setting up the stage's private network: %w", err)
	}
	return n, nil
}

// stageNetStart bounds the start of the holder and of pasta.
const stageNetStart = 30 * time.Second

func startStageNet(t *stageNetTools) (n *stageNet, err error) {
	n = &stageNet{pasta: -1, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	// The holder: unshare, as StageNetUID, makes the user and network
	// namespaces (owned by that id) and becomes sleep, which holds them.
	var stderr bytes.Buffer
	n.holder = &osexec.Cmd{
		Path:   t.unshare,
		Args:   []string{t.unshare, "--user", "--net", "--map-root-user", "--", t.sleep, "infinity"},
		Env:    []string{"PATH=" + defaultPath},
		Stderr: &stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: StageNetUID, Gid: StageNetUID, Groups: []uint32{}},
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	if err := n.holder.Start(); err != nil {
		return n, fmt.Errorf("starting %s: %w", t.unshare, err)
	}
	go func() {
		n.holder.Wait()
		close(n.exited)
	}()
	pid := n.holder.Process.Pid
	// Ready once it is sleep: unshare has made the namespaces and written
	// the id maps before it executes sleep.
	deadline := time.Now().Add(stageNetStart)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == filepath.Base(t.sleep) {
			break
		}
		select {
		case <-n.exited:
			return n, fmt.Errorf("%s, as uid %d, could not make a user and network namespace: %s (unprivileged user namespaces must be allowed: sysctl kernel.unprivileged_userns_clone=1 where it exists, and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10 and later)", t.unshare, StageNetUID, strings.TrimSpace(stderr.String()))
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%s did not make a network namespace in time", t.unshare)
		}
	}
	// pasta puts itself in the background once the namespace is
	// configured: its exit status says whether it is. It writes its pid
	// after dropping to StageNetUID, into a directory of that id's own, in
	// the system's temporary directory: mc's own directories, and $TMPDIR
	// (a runner's is its private 0700 directory), may be closed to other ids.
	pidDir, err := os.MkdirTemp("/tmp", "mc-stagenet-")
	if err != nil {
		return n, err
	}
	defer os.RemoveAll(pidDir)
	if err := os.Chown(pidDir, StageNetUID, StageNetUID); err != nil {
		return n, err
	}
	pidPath := filepath.Join(pidDir, "pasta.pid")
	ctx, cancel := context.WithTimeout(context.Background(), stageNetStart)
	defer cancel()
	pcmd := osexec.CommandContext(ctx, t.pasta,
		"--config-net", "--quiet",
		// Nothing forwarded either way: no host port appears in the
		// namespace, no namespace port on the host, and the gateway
		// address is the real gateway, not the host's loopback.
		"-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw",
		"--runas", fmt.Sprintf("%d:%d", StageNetUID, StageNetUID),
		"-P", pidPath,
		strconv.Itoa(pid))
	pcmd.Env = []string{"PATH=" + defaultPath}
	var pout bytes.Buffer
	pcmd.Stdout, pcmd.Stderr = &pout, &pout
	// The daemon may keep the launcher's output open.
	pcmd.WaitDelay = time.Second
	if err := pcmd.Run(); err != nil {
		return n, fmt.Errorf("pasta: %v: %s", err, pastaMessage(pout.String()))
	}
	raw, err := os.ReadFile(pidPath)
	if err != nil {
		return n, fmt.Errorf("pasta wrote no pid: %w", err)
	}
	ppid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return n, fmt.Errorf("pasta's pid file: %q", raw)
	}
	// A pidfd, so that close kills that pasta and no process that later
	// gets its pid; checked to be StageNetUID's after opening it.
	fd, err := unix.PidfdOpen(ppid, 0)
	if err != nil {
		return n, fmt.Errorf("pasta (pid %d) is gone: %w", ppid, err)
	}
	n.pasta = fd
	if uid, ok := procUID(ppid); !ok || uid != StageNetUID {
		return n, fmt.Errorf("pasta (pid %d) does not run as %d", ppid, StageNetUID)
	}
	return n, nil
}

// procUID returns the real uid of process pid.
func procUID(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[0])
			return uid, err == nil
		}
	}
	return 0, false
}

// procZombie reports whether pid has exited and awaits its parent's wait.
func procZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "State:"); ok {
			st := strings.TrimSpace(rest)
			return strings.HasPrefix(st, "Z") || strings.HasPrefix(st, "X")
		}
	}
	return false
}

// pastaMessage drops pasta's complaints about a missing syslog.
func pastaMessage(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "Failed to send") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "; ")
}

// start starts cmd in the private network namespace; cmd.Start() for a
// nil stageNet (the host's network, or none: bubblewrap unshares it).
//
// The process is forked from an OS thread that has joined the namespace
// (setns), so it starts there and any user namespace bubblewrap is given
// (SysProcAttr) is made after: the stage is a member of the network
// namespace but holds no capability over it. The namespace is owned by the
// holder's user namespace, which is neither the stage's nor an ancestor of
// it, so root in the stage cannot change its routes, addresses or firewall
// (CAP_NET_ADMIN there is what it would need). And what keeps it from the
// metadata service is not in the namespace at all but in the host's
// firewall (see above).
//
// The thread then returns to the host's namespace and to Go's pool: it
// must live on, because Pdeathsig is sent when the thread that forked the
// child ends. Only when it cannot go back is it left locked, to die with
// the goroutine rather than serve others from the wrong namespace.
func (n *stageNet) start(cmd *osexec.Cmd) error {
	if n == nil {
		return cmd.Start()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening the host's network namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.holder.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening the private network namespace: %w", err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("joining the private network namespace: %w", err)
			return
		}
		err = cmd.Start()
		if berr := unix.Setns(home, unix.CLONE_NEWNET); berr != nil {
			// Stays locked: the thread ends with this goroutine (and
			// the child with it, by Pdeathsig).
			if err == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
			done <- fmt.Errorf("returning to the host's network namespace: %w", berr)
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// close ends pasta and the holder; the namespace goes with the last
// process in it. Safe on nil and more than once.
func (n *stageNet) close() {
	if n == nil {
		return
	}
	if n.pasta >= 0 {
		unix.PidfdSendSignal(n.pasta, unix.SIGKILL, nil, 0)
		unix.Close(n.pasta)
		n.pasta = -1
	}
	if n.holder != nil && n.holder.Process != nil {
		select {
		case <-n.exited:
		default:
			n.holder.Process.Kill()
			<-n.exited
		}
	}
}

// nsPath names the private network namespace for a process to join (a
// container); "" without one.
func (n *stageNet) nsPath() string {
	if n == nil || n.holder == nil || n.holder.Process == nil {
		return ""
	}
	return fmt.Sprintf("/proc/%d/ns/net", n.holder.Process.Pid)
}

// ParseStageNetwork reads --stage-network: "host" (stages with network =
// True share the host's network) or "private" (LocalOptions.PrivateNetwork).
func ParseStageNetwork(s string) (private bool, err error) {
	switch s {
	case "host":
		return false, nil
	case "private":
		return true, nil
	}
	return false, fmt.Errorf("--stage-network=%s: want host or private", s)
}
