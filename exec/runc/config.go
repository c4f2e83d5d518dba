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

// config is the OCI runtime config of s: the process, the read-only root,
// the kernel filesystems, the tmpfs at /mc, then extra (files Run adds,
// such as /etc/hosts) and the Spec's mounts in mps's order. nofile is the open file limit of the container.
func config(s *Spec, mps, extra []mountPoint, nofile uint64) *specs.Spec {
	caps := s.Capabilities
	if caps == nil {
		caps = defaultCaps()
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
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
	if !s.Network {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
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
		Root:     &specs.Root{Path: s.Rootfs, Readonly: true},
		Hostname: hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			// No cgroupsPath: runc creates /<id> below its own cgroup in
			// every hierarchy (so within mc's limits) and removes it when
			// the container is deleted.
			Resources: &specs.LinuxResources{
				// Deny every device; runc adds its defaults (null, zero,
				// full, random, urandom, tty, ptmx) after this rule.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: namespaces,
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
				"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
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
