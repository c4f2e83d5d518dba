package runc

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mc-build/mc/confine"
)

// TestRefused checks the specs Run refuses before starting runc (the
// runtime here does not exist).
func TestRefused(t *testing.T) {
	rt := &Runtime{path: "/nonexistent/runc"}
	rootfs := t.TempDir()
	if err := PrepareRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, filepath.Join(rootfs, "opt"))
	unprepared := t.TempDir()
	src := t.TempDir()
	good := func() Spec {
		return Spec{ID: "mc-1", Rootfs: rootfs, Args: []string{"/bin/true"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	}
	tests := []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{name: "empty id", edit: func(s *Spec) { s.ID = "" }, want: "invalid container id"},
		{name: "id with slash", edit: func(s *Spec) { s.ID = "a/b" }, want: "invalid container id"},
		{name: "id dot dot", edit: func(s *Spec) { s.ID = ".." }, want: "invalid container id"},
		{name: "id too long", edit: func(s *Spec) { s.ID = strings.Repeat("a", 129) }, want: "invalid container id"},
		{name: "no rootfs", edit: func(s *Spec) { s.Rootfs = "" }, want: "no rootfs"},
		{name: "no command", edit: func(s *Spec) { s.Args = nil }, want: "no command"},
		{name: "bad env", edit: func(s *Spec) { s.Env = []string{"NOEQUALS"} }, want: "not KEY=VALUE"},
		{name: "relative cwd", edit: func(s *Spec) { s.Cwd = "mc/ws" }, want: "not a clean absolute path"},
		{name: "unclean dest", edit: func(s *Spec) { s.Tmpfs = []string{"/mc/../tmp"} }, want: "not a clean absolute path"},
		{name: "mount at /mc", edit: func(s *Spec) { s.Mounts = []Mount{{Source: src, Dest: "/mc"}} }, want: "reserved"},
		{name: "mount at /", edit: func(s *Spec) { s.Tmpfs = []string{"/"} }, want: "reserved"},
		{name: "under /proc", edit: func(s *Spec) { s.Mounts = []Mount{{Source: src, Dest: "/proc/x"}} }, want: "kernel filesystem"},
		{name: "twice", edit: func(s *Spec) { s.Tmpfs = []string{"/mc/a", "/mc/a"} }, want: "mounted twice"},
		{name: "no source", edit: func(s *Spec) { s.Mounts = []Mount{{Dest: "/mc/a"}} }, want: "no source"},
		{name: "missing source", edit: func(s *Spec) { s.Mounts = []Mount{{Source: filepath.Join(src, "nope"), Dest: "/mc/a"}} }, want: "mount source"},
		{name: "dest not in image", edit: func(s *Spec) { s.Mounts = []Mount{{Source: src, Dest: "/opt/x"}} }, want: "must exist in the image or lie under /mc"},
		{name: "cwd not in image", edit: func(s *Spec) { s.Cwd = "/opt/x" }, want: "working directory /opt/x must exist"},
		{name: "unprepared", edit: func(s *Spec) { s.Rootfs = unprepared }, want: "not prepared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.edit(&s)
			code, err := rt.Run(context.Background(), s, t.TempDir(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %d, %v; want an error holding %q", code, err, tt.want)
			}
			if code != -1 {
				t.Errorf("exit status %d, want -1", code)
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		// The same checks pass a good spec: Run gets as far as runc,
		// asking it what it can confine containers with (and fails
		// closed).
		s := good()
		s.Cwd = "/opt"
		s.Mounts = []Mount{{Source: src, Dest: "/opt"}, {Source: src, Dest: "/opt/x/y"}, {Source: src, Dest: "/mc/ws"}}
		s.Tmpfs = []string{"/tmp", "/mc/home", "/dev/extra"}
		_, err := rt.Run(context.Background(), s, t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/runc cannot confine containers") {
			t.Errorf("Run = %v, want a failure to run the missing runc", err)
		}
	})
}

func TestConfig(t *testing.T) {
	rootfs := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := Spec{
		ID: "mc-1", Rootfs: rootfs, Args: []string{"/bin/sh", "-c", "x"}, Env: []string{"A=1"}, Cwd: "/mc/ws",
		Mounts: []Mount{
			{Source: filepath.Join(src, "f"), Dest: "/mc/ws/pkg/f", ReadOnly: true},
			{Source: src, Dest: "/mc/ws"},
			{Source: src, Dest: "/mc/cache/go"},
		},
		Tmpfs: []string{"/tmp", "/mc/home"},
	}
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	mps := ordered(&s, func(p string) bool { return strings.HasSuffix(p, "/f") })
	seccomp, err := seccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	const door = "/run/door"
	tests := []struct {
		name    string
		network bool
		caps    []string
		netns   bool
		wantCap []string
		euid    int
		weaken  weakening
	}{
		{name: "private network", netns: true, wantCap: defaultCaps()},
		{name: "host network", network: true, netns: false, wantCap: defaultCaps()},
		{name: "capabilities", netns: true, caps: []string{"CAP_CHOWN"}, wantCap: []string{"CAP_CHOWN"}},
		{name: "rootless", netns: true, wantCap: defaultCaps(), euid: 1000},
		{name: "weakened", netns: true, wantCap: defaultCaps(), weaken: noUserNS | noSeccomp | noMasks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s
			s.Network = tt.network
			s.Capabilities = tt.caps
			s.weaken = tt.weaken
			conf := confinement{ids: mappingFor(tt.euid, tt.euid), seccomp: seccomp, door: door}
			c := config(&s, mps, nil, 100, conf)
			userns := tt.weaken&noUserNS == 0
			// Mapped as root: the root is the door, the rootfs bound over it.
			wantRoot := rootfs
			var dests []string
			if userns && tt.euid == 0 {
				wantRoot = door
				if m := c.Mounts[0]; m.Source != rootfs || !reflect.DeepEqual(m.Options, []string{"rbind", "nodev", "ro"}) {
					t.Errorf("root mount %+v, want %s bound read-only", m, rootfs)
				}
			}
			if c.Root.Path != wantRoot || !c.Root.Readonly {
				t.Errorf("root %+v, want %s read-only", c.Root, wantRoot)
			}
			p := c.Process
			if p.Terminal || p.User.UID != 0 || p.Cwd != "/mc/ws" || !reflect.DeepEqual(p.Args, s.Args) || !reflect.DeepEqual(p.Env, s.Env) {
				t.Errorf("process %+v", p)
			}
			if !p.NoNewPrivileges {
				t.Error("no_new_privs is off")
			}
			if !reflect.DeepEqual(p.Capabilities.Bounding, tt.wantCap) || !reflect.DeepEqual(p.Capabilities.Effective, tt.wantCap) {
				t.Errorf("capabilities %+v, want %v", p.Capabilities, tt.wantCap)
			}
			if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 100, Soft: 100}) {
				t.Errorf("rlimits %+v", p.Rlimits)
			}
			for _, m := range c.Mounts {
				dests = append(dests, m.Destination)
			}
			want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/mc",
				"/tmp", "/mc/ws", "/mc/home", "/mc/cache/go", "/mc/ws/pkg/f"}
			if userns && tt.euid == 0 {
				want = append([]string{"/"}, want...)
			}
			if !reflect.DeepEqual(dests, want) {
				t.Errorf("mounts in order %v, want %v", dests, want)
			}
			last := c.Mounts[len(c.Mounts)-1]
			if last.Type != "bind" || !reflect.DeepEqual(last.Options, []string{"rbind", "nosuid", "nodev", "ro"}) {
				t.Errorf("read-only bind %+v", last)
			}
			netns, userNS := false, false
			for _, ns := range c.Linux.Namespaces {
				netns = netns || ns.Type == specs.NetworkNamespace
				userNS = userNS || ns.Type == specs.UserNamespace
			}
			if netns != tt.netns || len(c.Linux.Namespaces) < 4 {
				t.Errorf("namespaces %+v, want a network one: %v", c.Linux.Namespaces, tt.netns)
			}
			if userNS != userns {
				t.Errorf("namespaces %+v, want a user namespace: %v", c.Linux.Namespaces, userns)
			}
			wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: confine.IDBase, Size: confine.IDCount}}
			if tt.euid != 0 {
				wantMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(tt.euid), Size: 1}}
			}
			if !userns {
				wantMap = nil
			}
			if !reflect.DeepEqual(c.Linux.UIDMappings, wantMap) || !reflect.DeepEqual(c.Linux.GIDMappings, wantMap) {
				t.Errorf("id mappings %+v %+v, want %+v", c.Linux.UIDMappings, c.Linux.GIDMappings, wantMap)
			}
			if (c.Linux.Seccomp != nil) != (tt.weaken&noSeccomp == 0) {
				t.Errorf("seccomp %+v with weakening %b", c.Linux.Seccomp, tt.weaken)
			}
			masked := slices.Contains(c.Linux.MaskedPaths, "/proc/kcore") && slices.Contains(c.Linux.ReadonlyPaths, "/proc/sys")
			if masked != (tt.weaken&noMasks == 0) {
				t.Errorf("masked %v, read-only %v with weakening %b", c.Linux.MaskedPaths, c.Linux.ReadonlyPaths, tt.weaken)
			}
			if c.Linux.CgroupsPath != "" {
				t.Errorf("cgroupsPath %q, want runc's default", c.Linux.CgroupsPath)
			}
		})
	}
}

// TestSeccompProfile checks the filter refuses every call of
// confine.Denied, and new user namespaces, on every architecture the
// kernel runs.
func TestSeccompProfile(t *testing.T) {
	sc, err := seccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	if sc.DefaultAction != specs.ActAllow {
		t.Errorf("default action %s", sc.DefaultAction)
	}
	refused := map[string]bool{}
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActErrno && len(r.Args) == 0 && r.ErrnoRet != nil && *r.ErrnoRet == errnoEPERM {
			for _, n := range r.Names {
				refused[n] = true
			}
		}
	}
	for _, d := range confine.Denied() {
		if !refused[d.Name] {
			t.Errorf("%s is not refused", d.Name)
		}
	}
	var newUser bool
	for _, r := range sc.Syscalls {
		if slices.Contains(r.Names, "unshare") && len(r.Args) == 1 && r.Args[0].Op == specs.OpMaskedEqual &&
			r.Args[0].Value == confine.DeniedCloneFlags && r.Args[0].ValueTwo == confine.DeniedCloneFlags {
			newUser = true
		}
	}
	if !newUser {
		t.Error("unshare(CLONE_NEWUSER) is not refused")
	}
	if runtime.GOARCH == "amd64" && !reflect.DeepEqual(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", sc.Architectures)
	}
}
