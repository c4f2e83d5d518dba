package runc

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Fixed places inside every container.
const (
	// mcDir holds a tmpfs under which the Spec's own mount points are
	// created, so that they need not exist in the image.
	mcDir = "/mc"
	// hostname is the same in every container: a build must not see which
	// machine or which container it runs on.
	hostname = "mc"
	// maxNofile is the open file limit, soft and hard, far above runc's
	// 1024; lower when mc's own hard limit is (runc sets it after dropping
	// the capability to raise it).
	maxNofile = 1 << 16
	// maxIDLen bounds a container id: it names directories and cgroups.
	maxIDLen = 128
)

// Mount is a bind mount of a host file or directory into the container.
type Mount struct {
	Source   string // host path; made absolute
	Dest     string // absolute path inside the container
	ReadOnly bool
}

// Spec is what runs in one container.
type Spec struct {
	// ID names the container; unique among the containers running under
	// the same state directory. Letters, digits and "_+-." only.
	ID string
	// Rootfs is the image's unpacked filesystem, prepared once with
	// PrepareRootfs. It is mounted read-only and never written to.
	Rootfs string
	// Args is the command, e.g. ["/bin/sh", "-c", "make"]; Args[0] is
	// looked up in the PATH of Env.
	Args []string
	// Env is the whole environment, KEY=VALUE. runc adds HOME (from the
	// image's /etc/passwd, else "/") when it is missing.
	Env []string
	// Cwd is the absolute working directory inside the container. It must
	// exist in the rootfs unless it lies under /mc or a mount.
	Cwd string
	// Mounts are bound in order of depth (parents first), after /mc.
	Mounts []Mount
	// Tmpfs are extra empty tmpfs mount points, e.g. /mc/home and /tmp.
	// One takes the mode of the image's directory it covers (runc's
	// rule), else 0755 (1777 for /tmp and /var/tmp).
	Tmpfs []string
	// Network shares the host's network namespace; without it the
	// container has a private one holding only the loopback interface.
	Network bool
	// NetNS, with Network, joins this network namespace (a path such as
	// /proc/PID/ns/net) instead of sharing the host's: a private stage
	// network with NAT (exec's PrivateNetwork).
	NetNS string
	// Capabilities, when not nil, replaces runc's default set
	// (CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE), e.g. with
	// CAP_CHOWN for a GNU tar that restores file owners.
	Capabilities []string

	// weaken switches protections off: tests' positive controls only.
	weaken weakening
}

// validate checks what runc would reject late or misread, and makes host
// paths absolute (runc resolves a relative one against the bundle).
func (s *Spec) validate() error {
	if err := validID(s.ID); err != nil {
		return err
	}
	if s.Rootfs == "" {
		return errors.New("no rootfs")
	}
	abs, err := filepath.Abs(s.Rootfs)
	if err != nil {
		return fmt.Errorf("rootfs %s: %w", s.Rootfs, err)
	}
	s.Rootfs = abs
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("no command")
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("environment entry %q is not KEY=VALUE", e)
		}
	}
	if err := containerPath("working directory", s.Cwd); err != nil {
		return err
	}
	seen := map[string]bool{}
	dest := func(what, p string) error {
		if err := containerPath(what, p); err != nil {
			return err
		}
		switch {
		case p == "/" || p == mcDir || p == "/dev":
			return fmt.Errorf("%s %s: reserved", what, p)
		case seen[p]:
			return fmt.Errorf("%s %s: mounted twice", what, p)
		case within(p, "/proc") || within(p, "/sys"):
			return fmt.Errorf("%s %s: under a kernel filesystem", what, p)
		}
		seen[p] = true
		return nil
	}
	ms := make([]Mount, len(s.Mounts))
	for i, m := range s.Mounts {
		if err := dest("mount point", m.Dest); err != nil {
			return err
		}
		if m.Source == "" {
			return fmt.Errorf("mount point %s: no source", m.Dest)
		}
		src, err := filepath.Abs(m.Source)
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		m.Source = src
		ms[i] = m
	}
	s.Mounts = ms
	for _, t := range s.Tmpfs {
		if err := dest("tmpfs", t); err != nil {
			return err
		}
	}
	return nil
}

// validID checks a container id against what runc accepts, and what is
// safe as a file name.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q", id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '+' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("invalid container id %q: only letters, digits and _+-. are allowed", id)
		}
	}
	return nil
}

// containerPath checks that p is an absolute, clean path inside the
// container.
func containerPath(what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("%s %q: not a clean absolute path", what, p)
	}
	return nil
}

// within reports whether p is dir or inside it (both clean and absolute).
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// depth is the number of components of clean absolute path p.
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// mountPoint is one mount of the Spec's, before it becomes an OCI mount.
type mountPoint struct {
	dest     string
	source   string // "" for a tmpfs
	readOnly bool
	file     bool // the source is not a directory
}

// ordered returns the Spec's mounts, binds and tmpfs together, parents
// before what they hold: runc mounts in order, and a later mount point is
// created inside the earlier mount holding it.
func ordered(s *Spec, isFile func(string) bool) []mountPoint {
	mps := make([]mountPoint, 0, len(s.Mounts)+len(s.Tmpfs))
	for _, m := range s.Mounts {
		mps = append(mps, mountPoint{dest: m.Dest, source: m.Source, readOnly: m.ReadOnly, file: isFile(m.Source)})
	}
	for _, t := range s.Tmpfs {
		mps = append(mps, mountPoint{dest: t})
	}
	sort.SliceStable(mps, func(i, j int) bool { return depth(mps[i].dest) < depth(mps[j].dest) })
	return mps
}
