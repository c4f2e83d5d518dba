package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/confine"
)

// What holds a stage in under bubblewrap, besides the namespaces and the
// filesystem of sandbox.go: a user namespace in which it is root but that
// gives it no privilege over the host, no_new_privs (bubblewrap always
// sets it), and the seccomp filter of package confine. See
// docs/security.md.

// unconfined switches a guarantee off. It exists for the tests' positive
// controls (the same attack succeeding without the guarantee shows that
// the test can fail) and is set by no option: nothing a user can reach
// runs a stage with less than the whole confinement.
type unconfined struct {
	// userns: mc as root runs bubblewrap with no user namespace: stages
	// run as the host's root with all its capabilities, as before issue 15.
	userns  bool
	seccomp bool // no seccomp filter
	etc     bool // the host's whole /etc and /root are visible
	disown  bool // outputs stay the stages' id's when stored (no disown)
}

// ErrNoSandbox is a sandbox required (LocalOptions.Sandbox) but not
// available here. The error wrapping it says what is missing and how to
// install or enable it.
var ErrNoSandbox = errors.New("no working sandbox")

// SandboxMode says what to do where stages cannot run in a sandbox.
type SandboxMode int

const (
	// SandboxAuto runs stages without isolation where no sandbox works
	// (a laptop without bubblewrap, macOS): for a developer's own build of
	// their own code. The executor warns, and such results must stay on
	// the machine and apart from sandboxed ones: see Local.Sandboxed.
	SandboxAuto SandboxMode = iota
	// SandboxRequired refuses to run a stage without a sandbox: Run fails
	// with an error wrapping ErrNoSandbox. For mc serve, runners,
	// untrusted code and CI scripts (--sandbox=required).
	SandboxRequired
)

// ParseSandboxMode reads the --sandbox flag: auto or required.
func ParseSandboxMode(s string) (SandboxMode, error) {
	switch s {
	case "auto", "":
		return SandboxAuto, nil
	case "required":
		return SandboxRequired, nil
	}
	return 0, fmt.Errorf("--sandbox=%s: want auto or required", s)
}

func (m SandboxMode) String() string {
	if m == SandboxRequired {
		return "required"
	}
	return "auto"
}

// Sandboxed reports whether stages run in the sandbox, probing it on the
// first call; when they do not, err says why (wrapping ErrNoSandbox).
// Results of stages run without it must never be shared or reused by a
// build that runs in one: the caller keeps them apart (cmd/mc mixes a
// marker into the platform of their action keys and writes nothing to a
// shared cache).
func (l *Local) Sandboxed() (ok bool, err error) {
	l.probeOnce.Do(l.probe)
	if l.root != nil {
		return true, nil
	}
	return false, l.noSandbox
}

// HiddenPath lists the directories of the host's PATH that a stage does
// not see: those below home directories (~/go/bin, ~/.cargo/bin, pyenv's
// shims), and those inside mc's own cache. A tool found there outside mc
// is not found by a stage; an error message can say so. Empty when
// stages run without a sandbox, or every directory is visible.
func (l *Local) HiddenPath() []string {
	l.probeOnce.Do(l.probe)
	if l.root == nil {
		return nil
	}
	var hidden []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(l.path) {
		if !filepath.IsAbs(dir) || seen[dir] {
			continue
		}
		seen[dir] = true
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue // missing on the host too
		}
		if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
			continue
		}
		if !l.root.sees(real) && !l.root.sees(dir) || under(real, l.hide) {
			hidden = append(hidden, dir)
		}
	}
	return hidden
}

// sysProcAttr is how bubblewrap is started: a session of its own (a
// process group to kill whole, and no controlling terminal to read from
// or inject input into), dying with mc even when mc is killed without a
// chance to clean up.
func (r *bwrapRoot) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}

// The user namespaces of stages when mc runs as root.
//
// Bubblewrap cannot make them: run by root it maps the namespace's root
// to the host's root, whose files a stage would then own. Nor can mc
// start bubblewrap as root of a namespace mapping only unprivileged ids:
// bubblewrap resolves the paths it binds and creates its root as that
// id, which may not search the directories above mc's cache (/root is
// 0700) and is refused files of ids the namespace does not map.
//
// So mc makes two, once per executor (newStageUserNS), and hands them to
// bubblewrap:
//
//   - setup (--userns): id 0 is the host's root and 1..IDCount are host
//     ids confine.IDBase..: bubblewrap, still the host's root, sets the
//     sandbox up from in there, and the mount, PID, IPC, UTS and network
//     namespaces it makes belong to setup;
//   - stage (--userns2), a child of setup: ids 0..IDCount-1 are setup's
//     1..IDCount, so host ids confine.IDBase..; bubblewrap enters it
//     before running the sandbox's first program, with its capabilities
//     there kept across exec (--cap-add ALL: ambient).
//
// That program is mc's own (a worker's runner, or execAsRoot before a
// stage's shell): it turns into uid and gid 0 of the stage namespace with
// no supplementary group (becomeRoot) before any code of the stage runs.
// The stage is then host id confine.IDBase, root of a namespace that owns
// no other: its capabilities count for no host file (their owners are not
// mapped), and for none of its mount, network or PID namespaces (setup
// owns them: it cannot mount or reconfigure its network even without the
// seccomp filter).
//
// Capabilities in the stage namespace are not dropped (--cap-drop): root
// inside needs them for what builds do as root (tar restoring owners, a
// package manager changing users), and they reach only files of the
// stage's own ids. Where no user namespace can be had mc runs no stage in
// a sandbox at all (ErrNoSandbox) rather than as a host root with its
// capabilities dropped, which would still own every root-owned host file
// it sees.

// runnerEnv values besides "1" (a worker's runner).
const (
	runnerExec  = "exec"  // execAsRoot
	runnerHold  = "hold"  // holdSetupNS
	runnerHold2 = "hold2" // holdUserNS, in the stage namespace
)

// stageUserNS are the two user namespaces of stages when mc is root.
type stageUserNS struct{ setup, stage *os.File }

func (ns *stageUserNS) close() {
	ns.setup.Close()
	ns.stage.Close()
}

// newStageUserNS makes the stages' user namespaces: the runner (mc's own
// executable) is started in a new one (setup) and starts itself in
// another (stage) within it; both hold their namespace until mc has it
// open.
func newStageUserNS(runner string) (ns *stageUserNS, err error) {
	if runner == "" {
		return nil, errors.New("cannot find mc's own executable to make the stages' user namespace")
	}
	wrap := func(err error) error { return fmt.Errorf("creating the stages' user namespace: %w", err) }
	ids := []syscall.SysProcIDMap{
		{ContainerID: 0, HostID: 0, Size: 1},
		{ContainerID: 1, HostID: confine.IDBase, Size: confine.IDCount},
	}
	in, hold, err := os.Pipe()
	if err != nil {
		return nil, wrap(err)
	}
	defer in.Close()
	defer hold.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, wrap(err)
	}
	defer outR.Close()
	// The stage namespace's holder only waits for its stdin to close: cat
	// does, in a millisecond where mc's own start takes 30-50 ms before
	// the first stage of a build; mc (hold2) where there is no cat.
	args := []string{runner}
	if cat, err := osexec.LookPath("cat"); err == nil && filepath.IsAbs(cat) {
		args = append(args, cat)
	}
	var errs strings.Builder
	cmd := &osexec.Cmd{
		Path: runner, Args: args, Env: []string{runnerEnv + "=" + runnerHold},
		Stdin: in, Stdout: outW, Stderr: &errs,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids,
			// setgroups stays allowed (and so in the stage namespace):
			// becomeRoot clears the groups bubblewrap leaves to the stage
			// (the host root's).
			GidMappingsEnableSetgroups: true,
			Pdeathsig:                  syscall.SIGKILL,
		},
	}
	err = cmd.Start()
	outW.Close()
	if err != nil {
		return nil, wrap(err)
	}
	defer func() {
		hold.Close()
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = wrap(fmt.Errorf("%v: %s", werr, strings.TrimSpace(errs.String())))
		}
		if err != nil && ns != nil {
			ns.close()
			ns = nil
		}
	}()
	var pid int
	if _, err := fmt.Fscan(outR, &pid); err != nil {
		return nil, wrap(fmt.Errorf("no stage namespace made: %s", strings.TrimSpace(errs.String())))
	}
	setup, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, wrap(err)
	}
	stage, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		setup.Close()
		return nil, wrap(err)
	}
	return &stageUserNS{setup: setup, stage: stage}, nil
}

// holdSetupNS runs in the setup namespace: it starts holder (args[0], cat:
// it holds the namespace until its stdin is closed), else holdUserNS, in
// the stage namespace, says its PID and waits for mc to have both open
// (stdin closed).
func holdSetupNS(args []string, in io.Reader, out, errw io.Writer) int {
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1, Size: confine.IDCount}}
	cmd := osexec.Command("/proc/self/exe")
	cmd.Env = []string{runnerEnv + "=" + runnerHold2}
	if len(args) > 0 {
		cmd = osexec.Command(args[0])
		cmd.Env = []string{}
	}
	cmd.Stderr = errw
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids,
		GidMappingsEnableSetgroups: true, Pdeathsig: syscall.SIGKILL,
	}
	w, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintf(errw, "mc sandbox: %v\n", err)
		return 2
	}
	fmt.Fprintln(out, cmd.Process.Pid)
	io.Copy(io.Discard, in)
	w.Close()
	cmd.Wait()
	return 0
}

// holdUserNS holds the stage namespace until stdin is closed.
func holdUserNS(in io.Reader) int {
	io.Copy(io.Discard, in)
	return 0
}

// becomeRoot makes the process uid and gid 0 of its user namespace, with
// no supplementary group, where it is not already (mc as root: bubblewrap
// ran it with the host root's ids, not mapped in the stage namespace).
// Not root by mc (bubblewrap mapped the caller to 0), or with isolation
// switched off (tests only), it is root already: nothing to do.
func becomeRoot() error {
	if os.Getuid() == 0 && os.Getgid() == 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("clearing the groups in the sandbox: %w", err)
	}
	if err := syscall.Setresgid(0, 0, 0); err != nil {
		return fmt.Errorf("becoming gid 0 in the sandbox: %w", err)
	}
	if err := syscall.Setresuid(0, 0, 0); err != nil {
		return fmt.Errorf("becoming uid 0 in the sandbox: %w", err)
	}
	return nil
}

// execAsRoot runs before a stage's shell in a sandbox of its own: it
// becomes root of the namespace (becomeRoot), closes the descriptors it
// was run from and execs argv, in its environment without runnerEnv.
func execAsRoot(argv []string, errw io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(errw, "mc sandbox: %v\n", err)
		return 2
	}
	if len(argv) == 0 {
		return fail(errors.New("no command"))
	}
	if err := becomeRoot(); err != nil {
		return fail(err)
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(err)
	}
	os.Unsetenv(runnerEnv)
	err := syscall.Exec(argv[0], argv, os.Environ())
	return fail(fmt.Errorf("running %s: %w", argv[0], err))
}

// owner is the host uid and gid of the stage's root, which must own what
// a stage writes: the sandbox's workspace, home and /tmp, the directories
// mc makes in the workspace, the cache mounts. -1 when mc is not root: the
// caller is root of the stage's namespace and owns them already. Inputs,
// hard links to store blobs, stay mc's: root of the namespace has no
// power over a file whose owner it does not map.
func (l *Local) owner() int {
	if l.root != nil && l.root.userns != nil {
		return confine.IDBase
	}
	return -1
}

// own gives the directory p (made by mc for a stage) to the stage's root.
func (l *Local) own(p string) error {
	id := l.owner()
	if id < 0 {
		return nil
	}
	if err := unix.Lchown(p, id, id); err != nil {
		return fmt.Errorf("giving %s to the sandbox's user: %w", p, err)
	}
	return nil
}

// disown gives an output the stage made (p, a file or a tree) back to mc
// before it is moved into the store: a blob owned by the stages' id could
// be changed in place by a later stage given it as an input. The stage is
// over: no process of its is left to race the change.
func (l *Local) disown(p string) error {
	if l.owner() < 0 || l.unconfined.disown {
		return nil
	}
	uid, gid := os.Geteuid(), os.Getegid()
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return unix.Lchown(q, uid, gid)
	})
}

// ownSandbox gives a new sandbox's top directories to the stage's root.
func (l *Local) ownSandbox(sb *sandboxDirs) error {
	for _, d := range []string{sb.ws, sb.home, sb.tmp} {
		if err := l.own(d); err != nil {
			return err
		}
	}
	return nil
}

// ownMount makes the cache mount directory host (MountsDir/<name>) and
// gives it to the stage's root. A cache mount filled before mc confined
// stages (or by mc running as another user) is given over whole, once:
// its top directory says whether that was done.
func (l *Local) ownMount(host string) error {
	if err := os.MkdirAll(host, 0o755); err != nil {
		return err
	}
	id := l.owner()
	if id < 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		return err
	}
	if int(st.Uid) == id && int(st.Gid) == id {
		return nil
	}
	err := filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == host {
			return nil // last: it marks the whole as done
		}
		return unix.Lchown(p, id, id)
	})
	if err != nil {
		return fmt.Errorf("giving the cache mount %s to the sandbox's user: %w", host, err)
	}
	return l.own(host)
}

// pipeOf returns the reading end of a pipe holding b (which must fit in
// the pipe's buffer: a few kilobytes at most), for bubblewrap's --seccomp
// and --ro-bind-data.
func pipeOf(b []byte) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating a pipe for the sandbox: %w", err)
	}
	_, err = w.Write(b)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("writing a pipe for the sandbox: %w", err)
	}
	return r, nil
}

// userNSProblem explains why user namespaces cannot be made here, when a
// kernel setting says so, and names the fix; "" when none does.
func userNSProblem(root bool) string { return userNSProblemIn(root, readSysctl) }

func readSysctl(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// userNSProblemIn is userNSProblem reading the kernel's settings with read.
func userNSProblemIn(root bool, read func(path string) string) string {
	if read("/proc/sys/user/max_user_namespaces") == "0" {
		return "user namespaces are disabled (sysctl user.max_user_namespaces=0); enable them: sysctl -w user.max_user_namespaces=15000"
	}
	if root {
		return ""
	}
	if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
		return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0); enable them: sysctl -w kernel.unprivileged_userns_clone=1"
	}
	if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
		return "AppArmor forbids unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1, the default of Ubuntu 23.10 and later); " +
			"allow them: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile granting userns to bwrap (see docs/security.md), or run mc as root"
	}
	return ""
}

// ProbeSandbox reports whether stages can run in the sandbox on this
// machine: CheckSandbox without a private stage network.
func ProbeSandbox(ctx context.Context) error { return CheckSandbox(ctx, false) }
