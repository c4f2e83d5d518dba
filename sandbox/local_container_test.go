package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mc-build/mc/confine"
	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sandbox/runc"
	"github.com/mc-build/mc/sched"
)

// busyboxBin is Debian's static busybox (package busybox-static): the
// only program of the test images.
const busyboxBin = "/bin/busybox"

// requireRunc fails the test when stages cannot run in containers here
// (skipped under -short only).
func requireRunc(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("containers need runc and root; skipped with -short")
	}
	if _, err := runc.Find(os.LookupEnv); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("stages in images run runc as root: run these tests as root")
	}
	if _, err := os.Stat(busyboxBin); err != nil {
		t.Fatalf("the test image is made of %s: apt-get install busybox-static (%v)", busyboxBin, err)
	}
}

// busyboxLayout builds an image of busybox and its applets in /bin, for
// platform, and returns its OCI layout directory.
func busyboxLayout(t *testing.T, platform string) string {
	t.Helper()
	layout, err := makeBusyboxLayout(t.TempDir(), platform)
	if err != nil {
		t.Fatal(err)
	}
	return layout
}

// busyboxApplets are the programs of the test image, links to busybox.
var busyboxApplets = []string{"sh", "ls", "cat", "echo", "env", "sort", "sleep", "tail", "sed", "test", "touch", "nc", "printf", "readlink", "timeout"}

// makeBusyboxLayout is busyboxLayout in dir, for callers without a
// *testing.T (the re-run test binary of stage_net_test.go).
func makeBusyboxLayout(dir, platform string) (string, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return "", err
	}
	src, err := os.Open(busyboxBin)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bin, "busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	if err := dst.Close(); err != nil {
		return "", err
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			return "", err
		}
	}
	layout := filepath.Join(dir, "layout")
	cfg := oci.Config{Env: map[string]string{"PATH": "/bin", "IMAGE_VAR": "from-image"}, Platform: platform}
	if _, err := oci.Build(context.Background(), "", []oci.File{{Dest: "/bin", Src: bin}}, cfg, layout); err != nil {
		return "", err
	}
	return layout, nil
}

// containerHarness is a local executor able to run stages in images, and
// the busybox image as an input.
type containerHarness struct {
	*harness
	rootfs string
	image  sched.Input
}

func newContainerHarness(t *testing.T, platform string) *containerHarness {
	t.Helper()
	requireRunc(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	h := newHarness(t, "direct", func(o *LocalOptions) { o.RootfsDir = rootfs })
	d, _, err := h.store.PutTree(busyboxLayout(t, platform), false)
	if err != nil {
		t.Fatal(err)
	}
	return &containerHarness{harness: h, rootfs: rootfs, image: sched.Input{Path: "tools/bb.oci", Digest: d, IsTree: true}}
}

// job is a stage of package app running cmds in the busybox image.
func (h *containerHarness) job(name string, cmds ...string) *sched.Job {
	j := job("app", name, cmds...)
	j.Image, j.ImageLayout = "//tools:bb", h.image.Path
	j.Inputs = []sched.Input{h.image, h.input("app/in.txt", "input\n", false)}
	return j
}

// run runs j, which must not fail for infrastructure reasons, and checks
// that nothing of it is left: no sandbox, no container.
func (h *containerHarness) run(ctx context.Context, j *sched.Job) *sched.Result {
	h.t.Helper()
	res, err := h.l.Run(ctx, j)
	if err != nil {
		h.t.Fatalf("Run: %v", err)
	}
	h.checkNoContainer()
	return res
}

func (h *containerHarness) checkNoContainer() {
	h.t.Helper()
	ents, err := os.ReadDir(h.l.opts.SandboxDir)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != runcStateDir {
			h.t.Errorf("sandbox dir holds %s after the stage", e.Name())
		}
	}
	state := filepath.Join(h.l.opts.SandboxDir, runcStateDir)
	ents, err = os.ReadDir(filepath.Join(state, "state"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	if len(ents) > 0 {
		h.t.Errorf("runc still has container %s", ents[0].Name())
	}
	if bundles, _ := filepath.Glob(filepath.Join(state, "bundle-*")); len(bundles) > 0 {
		h.t.Errorf("bundles left: %v", bundles)
	}
}

func (h *containerHarness) output(res *sched.Result, path string) string {
	h.t.Helper()
	for _, o := range res.Outputs {
		if o.Path == path {
			b, err := h.store.ReadBytes(o.Digest)
			if err != nil {
				h.t.Fatal(err)
			}
			return string(b)
		}
	}
	h.t.Fatalf("no output %s in %+v", path, res.Outputs)
	return ""
}

func TestLocalContainer(t *testing.T) {
	h := newContainerHarness(t, "linux/amd64")
	t.Run("sees the image, its workspace and its environment only", func(t *testing.T) {
		j := h.job("look",
			"test ! -e /usr && test ! -e /home",
			"ls / > out/root.txt",
			"cat in.txt > out/copy.txt",
			"env | sort > out/env.txt",
			`echo "token=$TOKEN"`,
			"touch $CACHE/was-here",
		)
		j.Outs = []string{"app/out/root.txt", "app/out/copy.txt", "app/out/env.txt"}
		j.Env = map[string]string{"FOO": "bar"}
		j.Secrets = map[string]string{"TOKEN": "s3cr3t-value"}
		j.CacheMounts = map[string]string{"CACHE": "c1"}
		res := h.run(context.Background(), j)
		mustSucceed(t, h.harness, res)
		if got := h.output(res, "app/out/root.txt"); got != "bin\ndev\netc\nmc\nproc\nsys\ntmp\n" {
			t.Errorf("/ holds %q, want the image's /bin and the mount points", got)
		}
		if got := h.output(res, "app/out/copy.txt"); got != "input\n" {
			t.Errorf("input read as %q", got)
		}
		env := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSpace(h.output(res, "app/out/env.txt")), "\n") {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		want := map[string]string{
			"PATH": "/bin", "IMAGE_VAR": "from-image", "HOME": "/mc/home", "FOO": "bar", "TOKEN": "s3cr3t-value",
			"CACHE": "/mc/cache/c1", "MC_WORKSPACE": "/mc/ws", "MC_PACKAGE": "app", "MC_TARGET": "//app:look",
			"PWD": "/mc/ws/app",
		}
		for k, v := range env {
			switch w, ok := want[k]; {
			case !ok && (k == "SHLVL" || k == "_"): // the shell's own
			case !ok:
				t.Errorf("unexpected variable %s=%s", k, v)
			case v != w:
				t.Errorf("%s=%q, want %q", k, v, w)
			}
		}
		for k := range want {
			if _, ok := env[k]; !ok {
				t.Errorf("variable %s missing", k)
			}
		}
		if log := h.log(res); !strings.Contains(log, "token=****\n") {
			t.Errorf("the secret is not masked in the log: %q", log)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "mounts", "c1", "was-here")); err != nil {
			t.Errorf("the cache mount did not keep the file: %v", err)
		}
	})
	t.Run("root inside is nobody outside, and the outputs are mc's", func(t *testing.T) {
		j := h.job("ids", "cat /proc/self/uid_map > out/map.txt", "touch $CACHE/by-root", "mkdir -p out/tree && echo x > out/tree/f")
		j.Outs = []string{"app/out/map.txt", "app/out/tree/"}
		j.CacheMounts = map[string]string{"CACHE": "ids"}
		res := h.run(context.Background(), j)
		mustSucceed(t, h.harness, res)
		if got := strings.Fields(h.output(res, "app/out/map.txt")); !slices.Equal(got, []string{"0", fmt.Sprint(confine.IDBase), fmt.Sprint(confine.IDCount)}) {
			t.Errorf("uid_map %q, want 0 mapped to %d", got, confine.IDBase)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(h.dir, "mounts", "ids", "by-root"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != confine.IDBase || st.Gid != confine.IDBase {
			t.Errorf("a file root made in the cache mount is owned by %d:%d on the host, want %d", st.Uid, st.Gid, confine.IDBase)
		}
		for _, o := range res.Outputs {
			if o.IsDir {
				continue
			}
			if err := syscall.Stat(h.store.Path(o.Digest), &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != os.Geteuid() {
				t.Errorf("stored output %s is owned by %d, want mc's %d: the next stage could change it", o.Path, st.Uid, os.Geteuid())
			}
		}
	})
	t.Run("network", func(t *testing.T) {
		for _, network := range []bool{false, true} {
			j := h.job(fmt.Sprint("net-", network), "tail -n +3 /proc/net/dev | sed 's/:.*//; s/ //g' > out/ifaces.txt")
			j.Outs = []string{"app/out/ifaces.txt"}
			j.Network = network
			res := h.run(context.Background(), j)
			mustSucceed(t, h.harness, res)
			got := h.output(res, "app/out/ifaces.txt")
			if !network && got != "lo\n" {
				t.Errorf("without network the interfaces are %q, want lo only", got)
			}
			if network {
				host, err := os.ReadFile("/proc/net/dev")
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range strings.Fields(got) {
					if !strings.Contains(string(host), f+":") {
						t.Errorf("with network the container has %s, which the host has not", f)
					}
				}
			}
		}
	})
	failures := []struct {
		name    string
		cmd     string
		timeout time.Duration
		code    int
		err     string
	}{
		{"exit status", "exit 3", 0, 3, "exit status 3"},
		{"timeout", "echo started; sleep 60", time.Second, -1, "timed out after 1s"},
		{"a command missing in the image", "make all", 0, 127, "exit status 127"},
		// Inputs are read-only, and mc's: root in the container's user
		// namespace may not even chmod them (it could before it had one;
		// the change was then found afterwards).
		{"writing an input", "chmod u+w in.txt && echo more >> in.txt", 0, 1, "exit status 1"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			j := h.job("fail", f.cmd)
			j.Timeout = f.timeout
			start := time.Now()
			res := h.run(context.Background(), j)
			if took := time.Since(start); f.timeout > 0 && took > f.timeout+10*time.Second {
				t.Errorf("a %v timeout took %v", f.timeout, took)
			}
			if res.ExitCode != f.code || res.Err == nil || res.Err.Error() != f.err {
				t.Errorf("code %d, err %v; want %d, %s", res.ExitCode, res.Err, f.code, f.err)
			}
		})
	}
	t.Run("cancel kills the container", func(t *testing.T) {
		j := h.job("slow", "echo started; sleep 60")
		live := &signalWriter{want: "started", ready: make(chan struct{})}
		j.Log = live
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-live.ready:
			case <-time.After(20 * time.Second):
			}
			cancel()
		}()
		res, err := h.l.Run(ctx, j)
		if !errors.Is(err, context.Canceled) || res != nil {
			t.Fatalf("Run = %v, %v; want context.Canceled", res, err)
		}
		h.checkNoContainer()
	})
	ents, err := os.ReadDir(h.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("rootfs dir holds %d entries, want the one image unpacked once", len(ents))
	}
}

// TestLocalContainerRootfsOnce runs stages in one image at once on a
// fresh cache: one unpacked filesystem, nothing half done left.
func TestLocalContainerRootfsOnce(t *testing.T) {
	h := newContainerHarness(t, "linux/amd64")
	var wg sync.WaitGroup
	results := make([]*sched.Result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = h.l.Run(context.Background(), h.job(fmt.Sprint("s", i), "cat in.txt"))
		}()
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("stage %d: %v", i, errs[i])
		}
		mustSucceed(t, h.harness, res)
	}
	h.checkNoContainer()
	ents, err := os.ReadDir(h.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 1 || len(names[0]) != 64+len(runc.RootfsSuffix()) || !strings.HasSuffix(names[0], runc.RootfsSuffix()) {
		t.Errorf("rootfs dir holds %q, want one unpacked image named by its digest", names)
	}
}

func TestLocalContainerErrors(t *testing.T) {
	t.Run("runc missing", func(t *testing.T) {
		h := newContainerHarness(t, "linux/amd64")
		t.Setenv("MC_RUNC", "/nonexistent/runc")
		_, err := h.l.Run(context.Background(), h.job("x", "true"))
		if err == nil || !strings.Contains(err.Error(), "apt-get install runc") {
			t.Errorf("err = %v, want an infrastructure error saying how to install runc", err)
		}
	})
	t.Run("a runc that cannot confine containers", func(t *testing.T) {
		// A runc without seccomp (a stand-in script printing its
		// features): no stage runs, an infrastructure error says why.
		h := newContainerHarness(t, "linux/amd64")
		dir := t.TempDir()
		ran := filepath.Join(dir, "ran")
		script := "#!/bin/sh\nif [ \"$1\" = features ]; then\n" +
			`echo '{"linux":{"namespaces":["mount","user","pid"],"seccomp":{"enabled":false}}}'` +
			"\nexit 0\nfi\ntouch " + ran + "\nexit 1\n"
		if err := os.WriteFile(filepath.Join(dir, "runc"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("MC_RUNC", filepath.Join(dir, "runc"))
		res, err := h.l.Run(context.Background(), h.job("x", "true"))
		if err == nil || res != nil || !strings.Contains(err.Error(), "cannot confine containers") || !strings.Contains(err.Error(), "built without seccomp") {
			t.Errorf("Run = %+v, %v; want an infrastructure error saying runc lacks seccomp", res, err)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Error("the stage ran anyway")
		}
	})
	t.Run("an image for another platform", func(t *testing.T) {
		h := newContainerHarness(t, "linux/arm64")
		res := h.run(context.Background(), h.job("x", "true"))
		if res.Err == nil || !strings.Contains(res.Err.Error(), "is for linux/arm64; this machine runs linux/amd64") {
			t.Errorf("result error %v, want the platforms named", res.Err)
		}
	})
	t.Run("no rootfs directory", func(t *testing.T) {
		h := newContainerHarness(t, "linux/amd64")
		h.l.opts.RootfsDir = ""
		_, err := h.l.Run(context.Background(), h.job("x", "true"))
		if err == nil || !strings.Contains(err.Error(), "RootfsDir") {
			t.Errorf("err = %v", err)
		}
	})
}
