package sandbox

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/confine"
	"github.com/mc-build/mc/sched"
)

// The attacks of issue 15, each performed by a stage as an attacker would,
// with mc running as root (as CI runs these tests), and each with its
// positive control: the same stage with the guarantee switched off
// (unconfined, a knob no user can reach) does reach the host, so that the
// test can fail.

// requireRoot fails the test unless it runs as root: the attacks are
// those of a stage of a root mc, and the controls need root to succeed.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the sandbox attack tests run as root (as CI does): mc as root is what they attack")
	}
}

// attack runs cmd as a stage in mode with the guarantees of u switched
// off, and returns its log and whether it succeeded.
func attack(t *testing.T, mode string, u unconfined, j *sched.Job) (string, bool) {
	t.Helper()
	requireRoot(t)
	h := newHarnessUnconfined(t, mode, u)
	res := h.run(context.Background(), j)
	if res.Err != nil && res.ExitCode == 0 {
		t.Fatalf("stage: %v", res.Err)
	}
	return h.log(res), res.ExitCode == 0
}

// off is every guarantee switched off: the sandbox as it was before.
var off = unconfined{userns: true, seccomp: true, etc: true}

func TestSandboxRemountWrite(t *testing.T) {
	target := filepath.Join("/usr", fmt.Sprintf("mc-attack-%d", os.Getpid()))
	t.Cleanup(func() { os.Remove(target) })
	cmd := fmt.Sprintf("mount -o remount,bind,rw /usr && echo pwned > %s", target)
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, ok := attack(t, mode, unconfined{}, job("p", "remount", cmd))
			if ok {
				t.Errorf("the stage remounted /usr read-write: %s", log)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the stage wrote %s on the host (%v)", target, err)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		log, ok := attack(t, "worker", off, job("p", "remount", cmd))
		if b, err := os.ReadFile(target); !ok || err != nil || string(b) != "pwned\n" {
			t.Errorf("unconfined, the attack should reach the host's /usr: ok %v, %q, %v; log %s", ok, b, err, log)
		}
	})
}

// shocker is open_by_handle_at through a bind mount: given the file
// handle of a host file the sandbox does not show (ext4: inode and
// generation), it opens it by way of any directory of the same
// filesystem the stage sees, and prints it.
const shocker = `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
	size_t n = strlen(argv[3]) / 2;
	struct file_handle *h = malloc(sizeof *h + n);
	h->handle_bytes = n;
	h->handle_type = atoi(argv[2]);
	for (size_t i = 0; i < n; i++) sscanf(argv[3] + 2 * i, "%2hhx", &h->f_handle[i]);
	int mnt = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (mnt < 0) { perror("open mount"); return 1; }
	int fd = open_by_handle_at(mnt, h, O_RDONLY);
	if (fd < 0) { perror("open_by_handle_at"); return 1; }
	char buf[256];
	ssize_t r = read(fd, buf, sizeof buf);
	if (r < 0) { perror("read"); return 1; }
	fwrite(buf, 1, r, stdout);
	return 0;
}
`

func TestSandboxOpenByHandle(t *testing.T) {
	requireRoot(t)
	gcc, err := osexec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc is needed to build the open_by_handle_at attack: apt-get install gcc")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "shocker.c")
	bin := filepath.Join(dir, "shocker")
	writeFile(t, src, shocker)
	if out, err := osexec.Command(gcc, "-O", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	// The secret: a host file no stage sees, on the filesystem of /usr.
	secret := filepath.Join("/var/tmp", fmt.Sprintf("mc-secret-%d", os.Getpid()))
	if err := os.WriteFile(secret, []byte("HOST-SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(secret) })
	var a, b unix.Stat_t
	if unix.Stat(secret, &a) != nil || unix.Stat("/usr", &b) != nil || a.Dev != b.Dev {
		t.Fatalf("%s and /usr are not on one filesystem: the attack needs them to be", secret)
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, secret, 0)
	if err != nil {
		t.Fatalf("name_to_handle_at: %v", err)
	}
	blob, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(h0 *harness) *sched.Job {
		d, err := h0.store.PutBytes(blob)
		if err != nil {
			t.Fatal(err)
		}
		j := job("p", "shocker", fmt.Sprintf("./shocker /usr %d %s", h.Type(), hex.EncodeToString(h.Bytes())))
		j.Inputs = []sched.Input{{Path: "p/shocker", Digest: d, Size: int64(len(blob)), Exec: true}}
		return j
	}
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			hh := newHarness(t, mode)
			res := hh.run(context.Background(), mk(hh))
			log := hh.log(res)
			if res.ExitCode == 0 || strings.Contains(log, "HOST-SECRET") {
				t.Errorf("open_by_handle_at reached the host file: %s", log)
			}
			if !strings.Contains(log, "open_by_handle_at: Operation not permitted") {
				t.Errorf("want EPERM from open_by_handle_at; log %s", log)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		hh := newHarnessUnconfined(t, "worker", off)
		res := hh.run(context.Background(), mk(hh))
		if log := hh.log(res); !strings.Contains(log, "HOST-SECRET") {
			t.Errorf("unconfined, open_by_handle_at should read the host file; log %s", log)
		}
	})
}

func TestSandboxMknodMount(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	// The host's root filesystem's block device, made in the sandbox on a
	// tmpfs the stage mounts (bubblewrap's /dev does not open devices),
	// then read raw: the whole host disk, /root included. REACHED follows
	// the ext4 superblock's magic number read from it.
	cmd := fmt.Sprintf("mkdir -p /tmp/d && mount -t tmpfs none /tmp/d && echo MOUNTED && mknod /tmp/d/disk b %d %d && echo MADE && "+
		"head -c 1082 /tmp/d/disk | tail -c 2 | od -An -tx1 | grep -q '53 ef' && echo REACHED",
		unix.Major(st.Dev), unix.Minor(st.Dev))
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, ok := attack(t, mode, unconfined{}, job("p", "mknod", cmd))
			if ok || strings.Contains(log, "MOUNTED") || strings.Contains(log, "MADE") {
				t.Errorf("the stage mounted a filesystem or made a device node: %s", log)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		// Some machines (this CI's VM) refuse even the host's root to
		// open the disk; the mount and the device node are what the
		// sandbox refuses, and what unconfined succeed.
		log, _ := attack(t, "worker", off, job("p", "mknod", cmd))
		if !strings.Contains(log, "MOUNTED") || !strings.Contains(log, "MADE") {
			t.Errorf("unconfined, the mount and mknod should succeed: %s", log)
		}
		if !strings.Contains(log, "REACHED") {
			t.Logf("the host's disk itself is not readable by root on this machine: %s", log)
		}
	})
}

func TestSandboxProcSys(t *testing.T) {
	const knob = "/proc/sys/kernel/core_uses_pid" // global, harmless
	before, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(knob, before, 0o644) })
	want := "1"
	if strings.TrimSpace(string(before)) == "1" {
		want = "0"
	}
	// Whatever holds /proc/sys read-only, the stage tries to undo it.
	cmd := fmt.Sprintf("mount -o remount,rw /proc/sys 2>/dev/null; echo %s > %s", want, knob)
	changed := func() bool {
		b, err := os.ReadFile(knob)
		return err == nil && strings.TrimSpace(string(b)) == want
	}
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, ok := attack(t, mode, unconfined{}, job("p", "sysctl", cmd))
			if ok || changed() {
				t.Errorf("the stage wrote the host's %s: %s", knob, log)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		if log, ok := attack(t, "worker", off, job("p", "sysctl", cmd)); !ok || !changed() {
			t.Errorf("unconfined, the write should reach the host's kernel: %s", log)
		}
	})
}

func TestSandboxHostSecrets(t *testing.T) {
	requireRoot(t)
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	rootEntry, _, _ := strings.Cut(string(shadow), "\n")
	// Something of /root's, which the stage must not see.
	secret := filepath.Join("/root", fmt.Sprintf(".mc-attack-%d", os.Getpid()))
	if err := os.WriteFile(secret, []byte("ROOT-HOME-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(secret) })
	cmd := fmt.Sprintf("cat /etc/shadow; cat %s; cat /etc/passwd", secret)
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, _ := attack(t, mode, unconfined{}, job("p", "secrets", cmd))
			if strings.Contains(log, rootEntry) || strings.Contains(log, "ROOT-HOME-SECRET") {
				t.Errorf("the stage read a host secret: %s", log)
			}
			if !strings.Contains(log, "/etc/shadow: No such file") || !strings.Contains(log, secret+": No such file") {
				t.Errorf("want /etc/shadow and /root absent; log %s", log)
			}
			if !strings.HasSuffix(log, sandboxPasswd) {
				t.Errorf("/etc/passwd is not mc's: %s", log)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		log, _ := attack(t, "worker", off, job("p", "secrets", cmd))
		if !strings.Contains(log, rootEntry) || !strings.Contains(log, "ROOT-HOME-SECRET") {
			t.Errorf("unconfined, /etc/shadow and /root should be readable: %s", log)
		}
	})
}

// TestSandboxHostPrivilege: the stage is root of its user namespace only:
// to the host it is confine.IDBase, and its capabilities count for no
// host file. A root-owned 0600 file put where the stage can reach it (its
// cache mount) stays unreadable and unchanged.
func TestSandboxHostPrivilege(t *testing.T) {
	cmd := `id -u; grep CapEff /proc/self/status; touch "$C/made"; cat "$C/victim"; echo pwned >> "$C/victim"`
	run := func(t *testing.T, mode string, u unconfined) (log, victim string, owner uint32) {
		requireRoot(t)
		h := newHarnessUnconfined(t, mode, u)
		mount := filepath.Join(h.l.opts.MountsDir, "c")
		if err := os.MkdirAll(mount, 0o755); err != nil {
			t.Fatal(err)
		}
		// Given to the stages' id already, as mc does: only victim is not.
		if err := os.Lchown(mount, confine.IDBase, confine.IDBase); err != nil {
			t.Fatal(err)
		}
		vpath := filepath.Join(mount, "victim")
		writeFile(t, vpath, "ROOT-ONLY\n")
		if err := os.Chmod(vpath, 0o600); err != nil {
			t.Fatal(err)
		}
		j := job("p", "priv", cmd)
		j.CacheMounts = map[string]string{"C": "c"}
		res := h.run(context.Background(), j)
		b, _ := os.ReadFile(vpath)
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(mount, "made"), &st); err != nil {
			t.Fatalf("the stage's file: %v; log %s", err, h.log(res))
		}
		return h.log(res), string(b), st.Uid
	}
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, victim, owner := run(t, mode, unconfined{})
			// Root inside, with every capability there...
			if !strings.HasPrefix(log, "0\nCapEff:\t000001ffffffffff\n") {
				t.Errorf("want uid 0 with all capabilities inside: %s", log)
			}
			// ...which are nothing on the host: an unprivileged id there.
			if owner != confine.IDBase {
				t.Errorf("the stage's file is owned by host uid %d, want %d", owner, confine.IDBase)
			}
			if strings.Contains(log, "ROOT-ONLY") || victim != "ROOT-ONLY\n" {
				t.Errorf("the stage read or changed a root-owned host file: %s; file now %q", log, victim)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		log, victim, owner := run(t, "worker", off)
		if !strings.Contains(log, "ROOT-ONLY") || victim == "ROOT-ONLY\n" || owner != 0 {
			t.Errorf("unconfined, the stage should be the host's root, read and change the file: %s; file now %q, made by uid %d", log, victim, owner)
		}
	})
}

// TestSandboxToolchains: ordinary toolchains work in the confined
// sandbox, root inside included (tar restoring owners).
func TestSandboxToolchains(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"go", "python3", "gcc", "git", "tar", "node"} {
		if _, err := osexec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; this test needs it", tool)
		}
	}
	tests := []struct {
		name, cmd, want string
		mounts          map[string]string
	}{
		{"go build with a cache mount", "export GOTOOLCHAIN=local GOFLAGS=-mod=mod; mkdir g && cd g && go mod init example.com/x >/dev/null 2>&1 && " +
			"printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(\"go-ok\") }\\n' > main.go && go build -o x . && ./x && test -n \"$(ls $GOCACHE)\" && echo cached",
			"go-ok\ncached\n", map[string]string{"GOCACHE": "go-build"}},
		{"python3", "python3 -c 'import ssl, json; print(\"py-ok\")'", "py-ok\n", nil},
		{"gcc", "printf 'int main(void){return 0;}' > m.c && gcc m.c -o m && ./m && echo gcc-ok", "gcc-ok\n", nil},
		{"git", "git init -q r && cd r && git -c user.name=a -c user.email=a@example.com commit -q --allow-empty -m x && git log --oneline | wc -l", "1\n", nil},
		{"tar chown as root inside", "id -u; echo hi > f && chown 1234:1234 f && tar cf a.tar f && mkdir x && tar xpf a.tar -C x && stat -c %u:%g x/f",
			"0\n1234:1234\n", nil},
		{"node", "node -e 'console.log(\"node-ok\")'", "node-ok\n", nil},
	}
	for _, mode := range isolatedModes {
		h := newHarness(t, mode)
		for _, tc := range tests {
			if mode != "worker" && tc.mounts != nil {
				continue // a cold go build is long: once is enough
			}
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				j := job("p", "tool", tc.cmd)
				j.CacheMounts = tc.mounts
				res := h.run(context.Background(), j)
				mustSucceed(t, h, res)
				if got := h.log(res); got != tc.want {
					t.Errorf("log %q, want %q", got, tc.want)
				}
			})
		}
	}
}

// TestSandboxMissing: without bubblewrap, SandboxRequired refuses to run
// a stage, naming what is missing and how to install it, and
// SandboxAuto runs it unisolated, says so once, and reports it
// (Sandboxed) so that the caller keeps its results apart.
func TestSandboxMissing(t *testing.T) {
	for _, mode := range []SandboxMode{SandboxRequired, SandboxAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			h := &harness{t: t, dir: dir}
			store, err := cas.OpenStore(filepath.Join(dir, "cas"))
			if err != nil {
				t.Fatal(err)
			}
			h.store = store
			var warns []string
			l, err := NewLocal(LocalOptions{Store: store, SandboxDir: filepath.Join(dir, "sb"), MountsDir: filepath.Join(dir, "m"),
				Sandbox: mode, Warn: func(m string) { warns = append(warns, m) }})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.bwrap = "" // as on a machine without bubblewrap
			h.l = l
			res, err := l.Run(context.Background(), job("p", "x", "echo ran"))
			ok, why := l.Sandboxed()
			if ok || !errors.Is(why, ErrNoSandbox) || !strings.Contains(why.Error(), "apt-get install bubblewrap") {
				t.Errorf("Sandboxed() = %v, %v; want false and ErrNoSandbox naming apt-get install bubblewrap", ok, why)
			}
			switch mode {
			case SandboxRequired:
				if !errors.Is(err, ErrNoSandbox) || res != nil {
					t.Errorf("Run = %+v, %v; want ErrNoSandbox", res, err)
				}
				if len(warns) != 0 {
					t.Errorf("warnings %q: a refusal is an error, not a warning", warns)
				}
			case SandboxAuto:
				if err != nil || res.ExitCode != 0 || h.log(res) != "ran\n" {
					t.Fatalf("Run = %+v, %v", res, err)
				}
				if len(warns) != 1 || !strings.Contains(warns[0], "WITHOUT ISOLATION") {
					t.Errorf("warnings %q, want one saying stages run without isolation", warns)
				}
			}
		})
	}
}

// TestProbeSandbox: the probe for mc serve and mc agent finds the sandbox
// here, and finds it missing without bubblewrap, naming the fix.
func TestProbeSandbox(t *testing.T) {
	requireBwrap(t)
	if err := ProbeSandbox(context.Background()); err != nil {
		t.Fatalf("ProbeSandbox with bubblewrap: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	err := ProbeSandbox(context.Background())
	if !errors.Is(err, ErrNoSandbox) || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Errorf("ProbeSandbox without bubblewrap = %v, want ErrNoSandbox naming apt-get install bubblewrap", err)
	}
}

// TestUserNSProblem: where the kernel refuses user namespaces, the
// refusal names the setting and its fix. The settings are read from a map
// (a double of /proc/sys: changing the real ones would disable user
// namespaces for the whole machine); the probe's use of it is
// TestSandboxMissing's path.
func TestUserNSProblem(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		settings map[string]string
		want     string
	}{
		{"enabled", false, map[string]string{"/proc/sys/user/max_user_namespaces": "15000"}, ""},
		{"disabled for all", true, map[string]string{"/proc/sys/user/max_user_namespaces": "0"}, "sysctl -w user.max_user_namespaces="},
		{"Debian's switch", false, map[string]string{"/proc/sys/kernel/unprivileged_userns_clone": "0"}, "sysctl -w kernel.unprivileged_userns_clone=1"},
		{"Ubuntu's AppArmor", false, map[string]string{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1"}, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"},
		{"AppArmor, mc as root", true, map[string]string{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := userNSProblemIn(tc.root, func(p string) string { return tc.settings[p] })
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("userNSProblemIn = %q, want one naming %q", got, tc.want)
			}
		})
	}
}

// TestSandboxSeccomp: every stage runs with no_new_privs and the seccomp
// filter of confine: a refused call (unshare of a user namespace, the way
// to a fresh set of capabilities) fails; unconfined, it succeeds.
func TestSandboxSeccomp(t *testing.T) {
	cmd := "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare --user true && echo UNSHARED"
	for _, mode := range isolatedModes {
		t.Run(mode, func(t *testing.T) {
			log, _ := attack(t, mode, unconfined{}, job("p", "seccomp", cmd))
			if !strings.HasPrefix(log, "NoNewPrivs:\t1\nSeccomp:\t2\n") || strings.Contains(log, "UNSHARED") {
				t.Errorf("want no_new_privs, a seccomp filter and unshare refused: %s", log)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		if log, _ := attack(t, "worker", unconfined{seccomp: true}, job("p", "seccomp", cmd)); !strings.Contains(log, "UNSHARED") {
			t.Errorf("without the filter, unshare should succeed: %s", log)
		}
	})
}

// TestSandboxOutputsDisowned: an output a stage made becomes mc's before
// it is stored, so that a later stage given it as an input cannot change
// the stored blob in place (it could, owning it).
func TestSandboxOutputsDisowned(t *testing.T) {
	requireRoot(t)
	type run struct {
		mode string
		u    unconfined
	}
	for _, r := range []run{{"worker", unconfined{}}, {"bwrap", unconfined{}}, {"control", unconfined{disown: true}}} {
		mode := r.mode
		if mode == "control" {
			mode = "worker"
		}
		t.Run(r.mode, func(t *testing.T) {
			h := newHarnessUnconfined(t, mode, r.u)
			j := job("p", "make", "echo made > out.txt && mkdir -p d && echo deep > d/f.txt")
			j.Outs = []string{"p/out.txt", "p/d/"}
			res := h.run(context.Background(), j)
			mustSucceed(t, h, res)
			var blob cas.Digest
			for _, o := range res.Outputs {
				if o.Path == "p/out.txt" {
					blob = o.Digest
				}
			}
			var st unix.Stat_t
			if err := unix.Stat(h.store.Path(blob), &st); err != nil {
				t.Fatal(err)
			}
			next := job("p", "tamper", "chmod u+w in.txt && echo tampered >> in.txt")
			next.Inputs = []sched.Input{{Path: "p/in.txt", Digest: blob, Size: 5}}
			if r.mode == "control" {
				// The stage owns the blob: it changes it (which mc
				// finds afterwards: the input-modified check).
				if int(st.Uid) != confine.IDBase {
					t.Errorf("unconfined, the blob should be the stages' (uid %d), is %d", confine.IDBase, st.Uid)
				}
				if res := h.run(context.Background(), next); res.ExitCode != 0 {
					t.Errorf("unconfined, the stage should change its input: %s", h.log(res))
				}
				return
			}
			if int(st.Uid) != os.Geteuid() {
				t.Errorf("the stored blob is owned by uid %d, want mc's %d", st.Uid, os.Geteuid())
			}
			res = h.run(context.Background(), next)
			if res.ExitCode == 0 {
				t.Errorf("a later stage changed the stored output: %s", h.log(res))
			}
			if b, err := h.store.ReadBytes(blob); err != nil || string(b) != "made\n" {
				t.Errorf("stored output now %q, %v", b, err)
			}
		})
	}
}

// TestProbedFailsClosed: with a recorded probe (Probed) the executor skips
// its trial sandbox, so the first stage's bubblewrap start is the test; a
// bubblewrap that fails after all then fails the stage, which never runs
// on the host. The controls: without Probed the trial does run (one more
// bubblewrap start), and the same broken bubblewrap in auto mode lets the
// stage run on the host, where it leaves its mark.
func TestProbedFailsClosed(t *testing.T) {
	requireBwrap(t)
	realBwrap, err := osexec.LookPath("bwrap")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	marker := filepath.Join(dir, "ran-on-host")
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho >>"+starts+"\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	counting := script("bwrap", `exec `+realBwrap+` "$@"`)
	broken := script("bwrap-broken", "echo 'bwrap: broken after the probe' >&2; exit 1")
	// run runs one stage that tries to leave a mark on the host, and
	// returns its outcome and how many times bubblewrap started.
	run := func(bwrap string, mode SandboxMode, probed bool) (h *harness, res *sched.Result, runErr error, n int) {
		t.Helper()
		os.Remove(marker)
		if err := os.WriteFile(starts, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		h = &harness{t: t, dir: t.TempDir()}
		if h.store, err = cas.OpenStore(filepath.Join(h.dir, "cas")); err != nil {
			t.Fatal(err)
		}
		l, err := NewLocal(LocalOptions{Store: h.store, SandboxDir: filepath.Join(h.dir, "sb"), MountsDir: filepath.Join(h.dir, "m"),
			Sandbox: mode, Probed: probed, Warn: func(string) {}})
		if err != nil {
			t.Fatal(err)
		}
		l.bwrap = bwrap
		h.l = l
		res, runErr = l.Run(context.Background(), job("p", "x", "touch "+marker+" 2>/dev/null; echo ran"))
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		b, err := os.ReadFile(starts)
		if err != nil {
			t.Fatal(err)
		}
		return h, res, runErr, strings.Count(string(b), "\n")
	}
	onHost := func() bool { _, err := os.Stat(marker); return err == nil }

	h, res, err, n := run(counting, SandboxRequired, true)
	if err != nil || res.Err != nil || h.log(res) != "ran\n" {
		t.Fatalf("Probed, working bubblewrap: %+v, %v", res, err)
	}
	if n != 1 || onHost() {
		t.Errorf("Probed: bubblewrap started %d times (want 1: the worker, no trial), on the host: %v", n, onHost())
	}
	if _, res, err, n = run(counting, SandboxRequired, false); err != nil || res.Err != nil || n != 2 {
		t.Errorf("not Probed: %+v, %v, bubblewrap started %d times, want 2 (the trial and the worker)", res, err, n)
	}

	_, res, err, _ = run(broken, SandboxRequired, true)
	if err == nil && res.Err == nil {
		t.Errorf("Probed, broken bubblewrap: the stage succeeded (%+v)", res)
	}
	if onHost() {
		t.Error("Probed, broken bubblewrap: the stage ran on the host")
	}
	if _, err := NewLocal(LocalOptions{Store: h.store, SandboxDir: dir, MountsDir: dir, Probed: true}); err == nil {
		t.Error("NewLocal accepted Probed in auto mode")
	}

	// The control: the broken bubblewrap, probed, in auto mode.
	if _, res, err, _ = run(broken, SandboxAuto, false); err != nil || res.Err != nil || !onHost() {
		t.Errorf("control (auto mode, not Probed): %+v, %v, on the host: %v; want the stage run on the host", res, err, onHost())
	}
}
