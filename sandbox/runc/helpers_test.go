package runc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/internal/syncbuf"
)

// needRunc is the runc under test. A missing runc fails the test (with
// how to install it), except in -short mode.
func needRunc(t testing.TB) *Runtime {
	t.Helper()
	rt, err := Find(os.LookupEnv)
	if err != nil {
		if testing.Short() {
			t.Skipf("-short: %v", err)
		}
		t.Fatal(err)
	}
	return rt
}

// busyboxPath is the host's static busybox (Debian: busybox-static).
func busyboxPath(t testing.TB) string {
	t.Helper()
	const hint = "install it with `apt-get install busybox-static`"
	p, err := osexec.LookPath("busybox")
	if err != nil {
		p = "/bin/busybox"
	}
	f, err := elf.Open(p)
	if err != nil {
		if testing.Short() {
			t.Skipf("-short: no busybox: %v", err)
		}
		t.Fatalf("a static busybox is needed to build a test image (%v): %s", err, hint)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; a static busybox is needed to build a test image: %s", p, hint)
		}
	}
	return p
}

// busyboxRootfs builds a tiny image in a temporary directory: a static
// busybox in /bin with a symlink per applet, prepared with PrepareRootfs.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb := busyboxPath(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := osexec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, name := range strings.Fields(string(list)) {
		if name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := PrepareRootfs(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// newID is a fresh container id.
func newID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "mc-test-" + hex.EncodeToString(b)
}

// baseSpec runs args in rootfs with a minimal environment, at /.
func baseSpec(t testing.TB, rootfs string, args ...string) Spec {
	return Spec{
		ID:     newID(t),
		Rootfs: rootfs,
		Args:   args,
		Env:    []string{"PATH=/bin", "HOME=/mc/home"},
		Cwd:    "/",
		Tmpfs:  []string{"/mc/home", "/tmp"},
	}
}

// run runs spec to the end and returns its status and output, failing
// the test on an error.
func run(t testing.TB, rt *Runtime, spec Spec, stateDir string) (int, string) {
	t.Helper()
	var out syncbuf.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := rt.Run(ctx, spec, stateDir, &out)
	if err != nil {
		t.Fatalf("Run %v: %v\noutput:\n%s", spec.Args, err, out.String())
	}
	return code, out.String()
}

// assertGone checks that nothing of container id is left: not in runc's
// list, no cgroup, no bundle.
func assertGone(t testing.TB, rt *Runtime, stateDir, id string) {
	t.Helper()
	ids, err := rt.List(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Errorf("runc list: %v, want none", ids)
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			t.Errorf("cgroup %s left", p)
		}
		return nil
	})
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != stateSubdir {
			t.Errorf("%s left in the state directory", e.Name())
		}
	}
}

// processesWith returns the pids of the processes whose command line
// holds arg.
func processesWith(arg string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(cmdline, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}

// snapshot describes every file of a tree: type, mode, size, mtime, link
// target and content hash, by path.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:])
		}
		rel, _ := filepath.Rel(root, p)
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// mustConfinement is what rt confines containers with, failing the test
// when it cannot.
func mustConfinement(t testing.TB, rt *Runtime) confinement {
	t.Helper()
	c, err := rt.confinement()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rootDir is a new temporary directory owned by the host ids of root in
// rt's containers, which may then write to it (as the directories mc
// binds writable are).
func rootDir(t testing.TB, rt *Runtime) string {
	t.Helper()
	uid, gid, err := rt.HostRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// confineUID is the host uid of root in rt's containers (its gid is the
// same number).
func confineUID(t testing.TB, rt *Runtime) int {
	t.Helper()
	uid, _, err := rt.HostRoot()
	if err != nil {
		t.Fatal(err)
	}
	return uid
}
