package runc

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociVersion is the runtime-spec version the config is written for: every
// field used exists in 1.0, which Debian 12's runc 1.1 implements.
const ociVersion = "1.0.2"

// hostsFile is the /etc/hosts of every container: the loopback names only,
// so that "localhost" resolves without network and the host's own entries
// do not leak in.
const hostsFile = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// defaultCaps is runc's default capability set (what `runc spec` writes).
func defaultCaps() []string {
	return []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
}

// confinement is what config needs beyond the Spec to hold a container
// in (confine.go): the id mapping of its user namespace and its seccomp
// filter.
type confinement struct {
	ids     idMapping
	seccomp *specs.LinuxSeccomp
	// door is the root directory of containers in a user namespace of
	// mc as root: empty, reachable by every id (see config).
	door string
}

// config is the OCI runtime config of s: the process, the read-only root,
// the kernel filesystems, the tmpfs at /mc, then extra (files Run adds,
// such as /etc/hosts) and the Spec's mounts in mps's order. nofile is the
// open file limit of the container; c its confinement, less what the
// Spec's test-only weakening switches off.
func config(s *Spec, mps, extra []mountPoint, nofile uint64, c confinement) *specs.Spec {
	caps := s.Capabilities
	if caps == nil {
		caps = defaultCaps()
	}
	userns := s.weaken&noUserNS == 0
	rootless := userns && c.ids.rootless
	devpts := []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}
	if rootless {
		devpts = devpts[:len(devpts)-1] // gid 5 is not mapped: runc refuses the mount
	}
	// sysfs can only be mounted by the owner of the network namespace: in
	// a user namespace sharing the host's network, /sys is the host's,
	// bound read-only (what `runc spec --rootless` does).
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if userns && s.Network {
		sys = specs.Mount{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: devpts},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
		{Destination: mcDir, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755"}},
	}
	for _, mp := range extra {
		mounts = append(mounts, ociMount(mp))
	}
	for _, mp := range mps {
		mounts = append(mounts, ociMount(mp))
	}
	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}
	switch {
	case !s.Network:
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case s.NetNS != "":
		// Joined before runc makes the container's user namespace: the
		// stage can use it and, holding no capability in the user
		// namespace that owns it, not reconfigure it.
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS})
	}
	linux := &specs.Linux{
		// No cgroupsPath: runc creates /<id> below its own cgroup in
		// every hierarchy (so within mc's limits) and removes it when
		// the container is deleted.
		Resources: &specs.LinuxResources{
			// Deny every device; runc adds its defaults (null, zero,
			// full, random, urandom, tty, ptmx) after this rule.
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		},
		Namespaces: namespaces,
		// runc's defaults (`runc spec`), as Docker's.
		MaskedPaths: []string{
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		},
		ReadonlyPaths: []string{
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
		},
	}
	if userns {
		linux.Namespaces = append(linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		linux.UIDMappings, linux.GIDMappings = c.ids.uids, c.ids.gids
	}
	if rootless {
		// A rootless runc can set no device rules (it has no cgroup of
		// its own to write them to); the user namespace denies device
		// nodes anyway: mknod is refused, and a mounted device node does
		// not open (nodev).
		linux.Resources = nil
	}
	root := &specs.Root{Path: s.Rootfs, Readonly: true}
	if userns && !rootless {
		// runc's init mounts the root from inside the user namespace,
		// as a mapped id that cannot reach a rootfs below a private
		// directory (root's 0700 home holds mc's cache). Bind mounts
		// are opened by runc from outside: the root is an empty
		// directory anyone can reach, with the rootfs bound over it.
		root.Path = c.door
		mounts = append([]specs.Mount{{Destination: "/", Type: "bind", Source: s.Rootfs, Options: []string{"rbind", "nodev", "ro"}}}, mounts...)
	}
	if s.weaken&noDevices != 0 && linux.Resources != nil {
		linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	if s.weaken&noSeccomp == 0 {
		linux.Seccomp = c.seccomp
	}
	if s.weaken&noMasks != 0 {
		linux.MaskedPaths, linux.ReadonlyPaths = nil, nil
	}
	return &specs.Spec{
		Version: ociVersion,
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     s.Args,
			Env:      s.Env,
			Cwd:      s.Cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			NoNewPrivileges: true,
		},
		Root:     root,
		Hostname: hostname,
		Mounts:   mounts,
		Linux:    linux,
	}
}

// ociMount is the OCI mount of mp: a bind when it has a source, else a
// tmpfs.
func ociMount(mp mountPoint) specs.Mount {
	if mp.source == "" {
		mode := "mode=755"
		if mp.dest == "/tmp" || mp.dest == "/var/tmp" {
			mode = "mode=1777"
		}
		return specs.Mount{Destination: mp.dest, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", mode}}
	}
	rw := "rw"
	if mp.readOnly {
		rw = "ro"
	}
	return specs.Mount{Destination: mp.dest, Type: "bind", Source: mp.source, Options: []string{"rbind", "nosuid", "nodev", rw}}
}
