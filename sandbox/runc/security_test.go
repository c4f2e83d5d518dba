package runc

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/confine"
)

// The attacks of issue 15, made from inside a container as a stage in an
// image would, with mc (the test) as root. Each runs in three modes:
//
//   - confined: as mc runs every container;
//   - confined with every capability runc knows: the user namespace and
//     the seccomp filter hold on their own, whatever capability set a
//     stage is given;
//   - a positive control, with the protections the attack defeats
//     switched off (Spec.weaken, which only this package's tests can set)
//     and every capability: the same probe then reaches the host, so the
//     test can fail.

// mode is how one attempt is confined.
type mode struct {
	name    string
	caps    []string // nil: the default set
	weaken  weakening
	control bool // the attack must succeed
}

// modes are the three attempts of an attack; off is what the control
// switches off.
func modes(t *testing.T, rt *Runtime, off weakening) []mode {
	all := everyCapability(t, rt)
	return []mode{
		{name: "confined"},
		{name: "confined with every capability", caps: all},
		{name: "control", caps: all, weaken: off, control: true},
	}
}

func (m mode) apply(s *Spec) {
	s.Capabilities = m.caps
	s.weaken = m.weaken
}

// everyCapability is every capability this runc knows and the test has
// in its bounding set (runc fails to give one that mc has not: machines
// and CI containers drop some, e.g. CAP_SYS_RESOURCE).
func everyCapability(t *testing.T, rt *Runtime) []string {
	t.Helper()
	out, err := rt.command("", "features")
	if err != nil {
		t.Fatal(err)
	}
	var f features
	if err := json.Unmarshal(out, &f); err != nil || f.Linux == nil || len(f.Linux.Capabilities) == 0 {
		t.Fatalf("`runc features` lists no capabilities (%v): %s", err, out)
	}
	var caps []string
	for _, c := range f.Linux.Capabilities {
		n, ok := capNumbers[c]
		if !ok {
			continue // newer than this test
		}
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0); err == nil && in == 1 {
			caps = append(caps, c)
		}
	}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_MKNOD", "CAP_SYS_RAWIO"} {
		if !slices.Contains(caps, c) {
			t.Fatalf("the controls need %s, which the test's bounding set lacks", c)
		}
	}
	return caps
}

// capNumbers are the capabilities' numbers, by name.
var capNumbers = map[string]int{
	"CAP_CHOWN":              unix.CAP_CHOWN,
	"CAP_DAC_OVERRIDE":       unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH":    unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER":             unix.CAP_FOWNER,
	"CAP_FSETID":             unix.CAP_FSETID,
	"CAP_KILL":               unix.CAP_KILL,
	"CAP_SETGID":             unix.CAP_SETGID,
	"CAP_SETUID":             unix.CAP_SETUID,
	"CAP_SETPCAP":            unix.CAP_SETPCAP,
	"CAP_LINUX_IMMUTABLE":    unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE":   unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_BROADCAST":      unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN":          unix.CAP_NET_ADMIN,
	"CAP_NET_RAW":            unix.CAP_NET_RAW,
	"CAP_IPC_LOCK":           unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER":          unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE":         unix.CAP_SYS_MODULE,
	"CAP_SYS_RAWIO":          unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT":         unix.CAP_SYS_CHROOT,
	"CAP_SYS_PTRACE":         unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT":          unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN":          unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT":           unix.CAP_SYS_BOOT,
	"CAP_SYS_NICE":           unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE":       unix.CAP_SYS_RESOURCE,
	"CAP_SYS_TIME":           unix.CAP_SYS_TIME,
	"CAP_SYS_TTY_CONFIG":     unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD":              unix.CAP_MKNOD,
	"CAP_LEASE":              unix.CAP_LEASE,
	"CAP_AUDIT_WRITE":        unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL":      unix.CAP_AUDIT_CONTROL,
	"CAP_SETFCAP":            unix.CAP_SETFCAP,
	"CAP_MAC_OVERRIDE":       unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN":          unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG":             unix.CAP_SYSLOG,
	"CAP_WAKE_ALARM":         unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND":      unix.CAP_BLOCK_SUSPEND,
	"CAP_AUDIT_READ":         unix.CAP_AUDIT_READ,
	"CAP_PERFMON":            unix.CAP_PERFMON,
	"CAP_BPF":                unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// buildProbe compiles testdata/probe, statically, for the containers.
func buildProbe(t *testing.T) string {
	t.Helper()
	goBin, err := osexec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "probe")
	cmd := osexec.Command(goBin, "build", "-o", bin, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	return bin
}

// hostSecret writes a file only root may read in a new directory, as
// mc's own files and the host's secrets are, and returns its path and
// content.
func hostSecret(t *testing.T) (path, content string) {
	t.Helper()
	content = "host-secret-" + newID(t)
	path = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, content
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// judge fails the test when the attack's outcome is not the mode's.
func judge(t *testing.T, m mode, escaped bool, code int, out string) {
	t.Helper()
	t.Logf("%s: status %d, reached the host: %v\n%s", m.name, code, escaped, out)
	switch {
	case m.control && !escaped:
		t.Errorf("%s: the probe did not reach the host with the protections off, so the test cannot fail (status %d):\n%s", m.name, code, out)
	case !m.control && escaped:
		t.Errorf("%s: ATTACK SUCCEEDED (status %d):\n%s", m.name, code, out)
	}
}

func TestAttackRemount(t *testing.T) {
	rt := needRunc(t)
	state := t.TempDir()
	for _, m := range modes(t, rt, noUserNS|noSeccomp) {
		t.Run(m.name, func(t *testing.T) {
			// Both are the container's root's: only their read-only
			// mounts keep it from writing.
			rootfs := busyboxRootfs(t)
			ro := rootDir(t, rt)
			spec := baseSpec(t, rootfs, "/bin/sh", "-c",
				"mount -o remount,bind,rw /mc/ro && echo pwned > /mc/ro/f; mount -o remount,bind,rw / && echo pwned > /pwned; true")
			spec.Mounts = []Mount{{Source: ro, Dest: "/mc/ro", ReadOnly: true}}
			m.apply(&spec)
			code, out := run(t, rt, spec, state)
			judge(t, m, exists(filepath.Join(ro, "f")), code, out)
			judge(t, m, exists(filepath.Join(rootfs, "pwned")), code, out)
		})
	}
}

func TestAttackOpenByHandle(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	probe := buildProbe(t)
	state := t.TempDir()
	secret, content := hostSecret(t)
	// The handle of a file the container does not see, on the filesystem
	// of a directory it does.
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, secret, 0)
	if err != nil {
		t.Fatalf("name_to_handle_at on the host: %v", err)
	}
	bound := rootDir(t, rt)
	var a, b syscall.Stat_t
	if syscall.Stat(secret, &a) != nil || syscall.Stat(bound, &b) != nil || a.Dev != b.Dev {
		t.Fatal("the secret and the bound directory must be on one filesystem")
	}
	for _, m := range modes(t, rt, noUserNS|noSeccomp) {
		t.Run(m.name, func(t *testing.T) {
			spec := baseSpec(t, rootfs, "/mc/probe", "handle", "/mc/b", strconv.Itoa(int(h.Type())), hex.EncodeToString(h.Bytes()))
			spec.Mounts = []Mount{{Source: probe, Dest: "/mc/probe", ReadOnly: true}, {Source: bound, Dest: "/mc/b", ReadOnly: true}}
			m.apply(&spec)
			code, out := run(t, rt, spec, state)
			judge(t, m, strings.Contains(out, content), code, out)
			if !m.control && !strings.Contains(out, "open_by_handle_at: operation not permitted") {
				t.Errorf("%s: want EPERM from open_by_handle_at, got:\n%s", m.name, out)
			}
		})
	}
}

// mountOf returns, from /proc/self/mountinfo, the filesystem type of
// mount id, its root within the filesystem and where it is mounted.
func mountOf(t *testing.T, id int) (fstype, root, point string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fs, rest := strings.Fields(pre), strings.Fields(post)
		if len(fs) >= 5 && len(rest) >= 1 && fs[0] == strconv.Itoa(id) {
			return rest[0], fs[3], fs[4]
		}
	}
	t.Fatalf("mount %d is not in /proc/self/mountinfo", id)
	return "", "", ""
}

func TestAttackMknodMount(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	secret, content := hostSecret(t)
	// The device of the host filesystem holding the secret, and the
	// secret's path on it.
	var st syscall.Stat_t
	if err := syscall.Stat(secret, &st); err != nil {
		t.Fatal(err)
	}
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	if major == 0 {
		t.Fatalf("%s is on a filesystem without a block device (%d:%d); this attack needs one (run the tests with TMPDIR on a disk)", secret, major, minor)
	}
	_, id, err := unix.NameToHandleAt(unix.AT_FDCWD, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	fstype, root, point := mountOf(t, id)
	onDisk := filepath.Join(root, strings.TrimPrefix(secret, point))
	script := fmt.Sprintf("mknod /dev/hostdisk b %d %d && mkdir /tmp/m && mount -t %s /dev/hostdisk /tmp/m && cat /tmp/m%s", major, minor, fstype, onDisk)
	for _, m := range modes(t, rt, noUserNS|noSeccomp|noDevices) {
		t.Run(m.name, func(t *testing.T) {
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", script)
			m.apply(&spec)
			code, out := run(t, rt, spec, state)
			judge(t, m, strings.Contains(out, content), code, out)
		})
	}
}

func TestAttackProcSys(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	// The value is written back as it is: the host is not changed even
	// when the write goes through (the control). The write's success is
	// what is probed.
	const script = `v=$(cat /proc/sys/vm/overcommit_ratio) && echo "$v" > /proc/sys/vm/overcommit_ratio && echo wrote-sysctl`
	for _, m := range modes(t, rt, noUserNS|noMasks) {
		t.Run(m.name, func(t *testing.T) {
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", script)
			m.apply(&spec)
			code, out := run(t, rt, spec, state)
			judge(t, m, code == 0 && strings.Contains(out, "wrote-sysctl"), code, out)
		})
	}
}

func TestAttackHostSecrets(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	secret, content := hostSecret(t)
	t.Run("root-only file in a bound directory", func(t *testing.T) {
		for _, m := range modes(t, rt, noUserNS) {
			t.Run(m.name, func(t *testing.T) {
				spec := baseSpec(t, rootfs, "/bin/cat", "/mc/in/secret")
				spec.Mounts = []Mount{{Source: filepath.Dir(secret), Dest: "/mc/in", ReadOnly: true}}
				m.apply(&spec)
				code, out := run(t, rt, spec, state)
				judge(t, m, strings.Contains(out, content), code, out)
			})
		}
	})
	t.Run("kernel state in /proc", func(t *testing.T) {
		// /proc/timer_list names the host's processes with timers (and
		// is there on every kernel, unlike /proc/kcore); it is masked
		// with the others.
		const header = "Timer List Version"
		if b, err := os.ReadFile("/proc/timer_list"); err != nil || !strings.Contains(string(b), header) {
			t.Fatalf("the host's /proc/timer_list cannot be read (%v): the probe needs it", err)
		}
		for _, m := range modes(t, rt, noUserNS|noMasks) {
			t.Run(m.name, func(t *testing.T) {
				spec := baseSpec(t, rootfs, "/bin/head", "-n", "1", "/proc/timer_list")
				m.apply(&spec)
				code, out := run(t, rt, spec, state)
				judge(t, m, strings.Contains(out, header), code, out)
			})
		}
	})
}

func TestAttackRefusedSyscalls(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	probe := buildProbe(t)
	state := t.TempDir()
	calls := []string{"keyctl", "io_uring_setup", "name_to_handle_at", "unshare-user"}
	// Only the filter is off in the control: these calls need no
	// privilege, the filter alone refuses them.
	for _, m := range modes(t, rt, noSeccomp) {
		if m.control {
			m.caps = nil
		}
		t.Run(m.name, func(t *testing.T) {
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", "/mc/probe syscalls; if unshare -U true; then echo unshare-user: ok; else echo unshare-user: operation not permitted; fi")
			spec.Mounts = []Mount{{Source: probe, Dest: "/mc/probe", ReadOnly: true}}
			m.apply(&spec)
			code, out := run(t, rt, spec, state)
			for _, c := range calls {
				ok := strings.Contains(out, c+": ok\n")
				if m.control && !ok {
					t.Errorf("%s: %s failed without the filter, so the test cannot fail:\n%s", m.name, c, out)
				}
				if !m.control && !strings.Contains(out, c+": operation not permitted\n") {
					t.Errorf("%s: %s was not refused with EPERM (status %d):\n%s", m.name, c, code, out)
				}
			}
		})
	}
}

// TestUserNamespace checks that root in a container is an unprivileged
// id on the host: its uid map, and the owner on the host of what it
// writes to a bound directory.
func TestUserNamespace(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	for _, m := range modes(t, rt, noUserNS) {
		t.Run(m.name, func(t *testing.T) {
			out := rootDir(t, rt)
			spec := baseSpec(t, rootfs, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map; echo x > /mc/out/f")
			spec.Mounts = []Mount{{Source: out, Dest: "/mc/out"}}
			m.apply(&spec)
			code, text := run(t, rt, spec, state)
			if code != 0 {
				t.Fatalf("status %d:\n%s", code, text)
			}
			fields := strings.Fields(text)
			if len(fields) != 4 || fields[0] != "0" || fields[1] != "0" {
				t.Fatalf("want uid 0 and a one-line uid map, got:\n%s", text)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(out, "f"), &st); err != nil {
				t.Fatal(err)
			}
			hostRoot := fields[2] == "0" || st.Uid == 0 || st.Gid == 0
			judge(t, m, hostRoot, code, text)
			if !m.control {
				want := []string{fmt.Sprint(confine.IDBase), fmt.Sprint(confine.IDCount)}
				if fields[2] != want[0] || fields[3] != want[1] || st.Uid != confine.IDBase || st.Gid != confine.IDBase {
					t.Errorf("uid map %v and file owner %d:%d, want 0 mapped to %s (%s ids) and the file %s's", fields[1:], st.Uid, st.Gid, want[0], want[1], want[0])
				}
			}
		})
	}
}

// TestChownInside is what a package manager or tar does as root in an
// image: give files to other users. With CAP_CHOWN (which a Spec may
// ask for, as before) it works inside, and the owners are shifted ids on
// the host.
func TestChownInside(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	state := t.TempDir()
	ws := rootDir(t, rt)
	spec := baseSpec(t, rootfs, "/bin/sh", "-c",
		"mkdir -p /mc/ws/usr/lib && touch /mc/ws/usr/lib/f && chown -R 100:101 /mc/ws/usr && chmod 4755 /mc/ws/usr/lib/f && stat -c '%u:%g %a' /mc/ws/usr/lib/f")
	spec.Mounts = []Mount{{Source: ws, Dest: "/mc/ws"}}
	spec.Capabilities = append(defaultCaps(), "CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID")
	code, out := run(t, rt, spec, state)
	if code != 0 || out != "100:101 4755\n" {
		t.Fatalf("status %d, output %q; want the file given to 100:101, setuid", code, out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ws, "usr", "lib", "f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != confine.IDBase+100 || st.Gid != confine.IDBase+101 {
		t.Errorf("on the host the file is %d:%d, want %d:%d", st.Uid, st.Gid, confine.IDBase+100, confine.IDBase+101)
	}
}

// TestRefusesUnconfined checks that no container runs where runc cannot
// confine it: a runc too old for `runc features`, or one without user
// namespaces or seccomp, is refused with a message saying what is
// missing (an infrastructure error: mc's exit status 3). The runc here
// is a script printing what such a runc would.
func TestRefusesUnconfined(t *testing.T) {
	rootfs := busyboxRootfs(t)
	real, err := Find(os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	good, err := real.command("", "features")
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(good, &f); err != nil {
		t.Fatal(err)
	}
	linux := f["linux"].(map[string]any)
	edit := func(change func(linux map[string]any)) string {
		var c map[string]any
		json.Unmarshal(good, &c)
		change(c["linux"].(map[string]any))
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if _, ok := linux["seccomp"]; !ok {
		t.Fatalf("this runc's features have no seccomp: %s", good)
	}
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"runc 1.0", "echo 'No help topic for features' >&2; exit 1", "`runc features` failed (runc 1.1 or later is needed)"},
		{"no user namespaces", "cat <<'END'\n" + edit(func(l map[string]any) { l["namespaces"] = []string{"mount", "pid", "network", "ipc", "uts"} }) + "\nEND", "it does not support user namespaces"},
		{"no seccomp", "cat <<'END'\n" + edit(func(l map[string]any) { l["seccomp"] = map[string]any{"enabled": false} }) + "\nEND", "it was built without seccomp"},
		{"no x32", "cat <<'END'\n" + edit(func(l map[string]any) {
			l["seccomp"].(map[string]any)["archs"] = []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"}
		}) + "\nEND", "its seccomp does not know architecture"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "runc")
			// A container started anyway would leave this file.
			ran := filepath.Join(t.TempDir(), "ran")
			script := "#!/bin/sh\nif [ \"$1\" = features ]; then\n" + tt.script + "\nexit 0\nfi\ntouch " + ran + "\n"
			if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			rt := &Runtime{path: p}
			code, err := rt.Run(t.Context(), baseSpec(t, rootfs, "/bin/true"), t.TempDir(), nil)
			if err == nil || code != -1 || !strings.Contains(err.Error(), "cannot confine containers, and mc runs none without") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %d, %v; want a refusal saying %q", code, err, tt.want)
			}
			if exists(ran) {
				t.Error("runc was asked to run the container anyway")
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		// The real runc's features, printed by the same script: accepted.
		p := filepath.Join(t.TempDir(), "runc")
		script := "#!/bin/sh\nif [ \"$1\" = features ]; then\ncat <<'END'\n" + string(good) + "\nEND\nexit 0\nfi\nexit 7\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		rt := &Runtime{path: p}
		if _, err := rt.confinement(); err != nil {
			t.Errorf("the real runc's features are refused: %v", err)
		}
	})
}

// TestRefusesUnshiftedRootfs checks that a rootfs whose owners were not
// shifted (unpacked by an mc before user namespaces) is refused rather
// than run with the image's files nobody's.
func TestRefusesUnshiftedRootfs(t *testing.T) {
	rt := needRunc(t)
	rootfs := busyboxRootfs(t)
	if code, out := run(t, rt, baseSpec(t, rootfs, "/bin/true"), t.TempDir()); code != 0 {
		t.Fatalf("the prepared rootfs does not run: %d %s", code, out)
	}
	if err := os.Lchown(rootfs, 0, 0); err != nil {
		t.Fatal(err)
	}
	code, err := rt.Run(t.Context(), baseSpec(t, rootfs, "/bin/true"), t.TempDir(), nil)
	if err == nil || code != -1 || !strings.Contains(err.Error(), "not prepared by PrepareRootfs for a user namespace") {
		t.Errorf("Run = %d, %v; want the rootfs refused", code, err)
	}
}
