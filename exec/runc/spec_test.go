package runc

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
		// The same checks pass a good spec: Run gets as far as runc.
		s := good()
		s.Cwd = "/opt"
		s.Mounts = []Mount{{Source: src, Dest: "/opt"}, {Source: src, Dest: "/opt/x/y"}, {Source: src, Dest: "/mc/ws"}}
		s.Tmpfs = []string{"/tmp", "/mc/home", "/dev/extra"}
		_, err := rt.Run(context.Background(), s, t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "starting runc") {
			t.Errorf("Run = %v, want a failure to start the missing runc", err)
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
	tests := []struct {
		name    string
		network bool
		caps    []string
		netns   bool
		wantCap []string
	}{
		{name: "private network", netns: true, wantCap: defaultCaps()},
		{name: "host network", network: true, netns: false, wantCap: defaultCaps()},
		{name: "capabilities", netns: true, caps: []string{"CAP_CHOWN"}, wantCap: []string{"CAP_CHOWN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s
			s.Network = tt.network
			s.Capabilities = tt.caps
			c := config(&s, mps, nil, 100)
			if c.Root.Path != rootfs || !c.Root.Readonly {
				t.Errorf("root %+v, want %s read-only", c.Root, rootfs)
			}
			p := c.Process
			if p.Terminal || p.User.UID != 0 || p.Cwd != "/mc/ws" || !reflect.DeepEqual(p.Args, s.Args) || !reflect.DeepEqual(p.Env, s.Env) {
				t.Errorf("process %+v", p)
			}
			if !reflect.DeepEqual(p.Capabilities.Bounding, tt.wantCap) || !reflect.DeepEqual(p.Capabilities.Effective, tt.wantCap) {
				t.Errorf("capabilities %+v, want %v", p.Capabilities, tt.wantCap)
			}
			if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 100, Soft: 100}) {
				t.Errorf("rlimits %+v", p.Rlimits)
			}
			var dests []string
			for _, m := range c.Mounts {
				dests = append(dests, m.Destination)
			}
			want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/mc",
				"/tmp", "/mc/ws", "/mc/home", "/mc/cache/go", "/mc/ws/pkg/f"}
			if !reflect.DeepEqual(dests, want) {
				t.Errorf("mounts in order %v, want %v", dests, want)
			}
			last := c.Mounts[len(c.Mounts)-1]
			if last.Type != "bind" || !reflect.DeepEqual(last.Options, []string{"rbind", "nosuid", "nodev", "ro"}) {
				t.Errorf("read-only bind %+v", last)
			}
			netns := false
			for _, ns := range c.Linux.Namespaces {
				netns = netns || ns.Type == specs.NetworkNamespace
			}
			if netns != tt.netns || len(c.Linux.Namespaces) < 4 {
				t.Errorf("namespaces %+v, want a network one: %v", c.Linux.Namespaces, tt.netns)
			}
			if c.Linux.CgroupsPath != "" {
				t.Errorf("cgroupsPath %q, want runc's default", c.Linux.CgroupsPath)
			}
		})
	}
}
