package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
//
// When mc is root it starts bubblewrap in a user namespace of its own
// making, in which uid and gid 0..IDCount-1 are host ids IDBase..
// (package confine). Bubblewrap cannot make that one: run by root it maps
// the namespace's root to the host's root, whose files a stage would then
// own. Bubblewrap runs as root of the namespace, sets up the others as it
// does for any caller (they belong to the namespace), and the stage is
// root in it: host id confine.IDBase, with capabilities over its own
// namespaces only, void for every host file (their owners are not
// mapped).
//
// Capabilities are not dropped (--cap-drop): root inside needs them for
// what builds do as root (tar restoring owners, a package manager
// changing users), and they reach only what the namespace owns. Where no
// user namespace can be had mc runs no stage in a sandbox at all
// (ErrNoSandbox) rather than as a host root with its capabilities
// dropped, which would still own every root-owned host file it sees.
func (r *bwrapRoot) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if r.mapped && !r.unconfined.userns {
		ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: confine.IDBase, Size: confine.IDCount}}
		a.Cloneflags = syscall.CLONE_NEWUSER
		a.UidMappings, a.GidMappings = ids, ids
		// setgroups stays refused in the namespace: a process there could
		// otherwise drop a supplementary group that denies it a file.
		a.GidMappingsEnableSetgroups = false
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	return a
}

// reachable checks that the stages' host id can search every directory
// above dir: bubblewrap, running as that id, binds dir by its path. A
// cache below a private home (/root is 0700) is not: mc says so, with the
// fix, rather than run stages unconfined.
func reachable(dir string) error {
	var st unix.Stat_t
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		ok := st.Mode&0o001 != 0 ||
			st.Uid == confine.IDBase && st.Mode&0o100 != 0 ||
			st.Gid == confine.IDBase && st.Mode&0o010 != 0
		if !ok {
			return fmt.Errorf("the stages' host user (uid %d) cannot reach %s: %s is not searchable by others; "+
				"put mc's cache elsewhere (--cache-dir /var/cache/mc, or XDG_CACHE_HOME) or allow the search (chmod o+x %s)",
				confine.IDBase, dir, d, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// owner is the host uid and gid of the stage's root, which must own what
// a stage writes: the sandbox's workspace, home and /tmp, the directories
// mc makes in the workspace, the cache mounts. -1 when mc is not root: the
// caller is root of the stage's namespace and owns them already. Inputs,
// hard links to store blobs, stay mc's: root of the namespace has no
// power over a file whose owner it does not map.
func (l *Local) owner() int {
	if l.root != nil && l.root.mapped {
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

// ownSandbox gives a new sandbox's top directories to the stage's root.
func (l *Local) ownSandbox(sb *sandboxDirs) error {
	if l.owner() >= 0 {
		// Searchable (not readable: the log is there) by bubblewrap,
		// which binds the directories below as the stages' id.
		if err := os.Chmod(sb.dir, 0o711); err != nil {
			return err
		}
	}
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
func userNSProblem(root bool) string {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
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
			"allow them for bubblewrap with an AppArmor profile granting `userns` to /usr/bin/bwrap (see docs/security.md), or run mc as root"
	}
	return ""
}
