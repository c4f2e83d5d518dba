// Package confine says what holds a stage in, whichever runtime starts it
// (bubblewrap for host stages, runc for stages in images, the runner
// agent on a remote machine): the unprivileged host ids it runs as and the
// system calls it is refused. The runtimes enforce it; this package is the
// one place the policy is written down, so that they cannot drift apart.
package confine

// Stages run in a user namespace. When mc runs as root, uid and gid N
// inside are host ids IDBase+N, for N below IDCount: root inside a stage is
// an unprivileged nobody on the host, and a file a stage leaves behind is
// owned by an id no host account has. The range is the 64 Ki ids that
// systemd-nspawn and rootless containers also give a container, placed
// high in the range systemd leaves to containers (0x00080000-0x6FFFFFFF) so
// that it does not meet /etc/subuid ranges, which start at 100000.
// When mc is not root, a stage's uid 0 maps to the caller's own uid.
const (
	IDBase  = 0x60000000
	IDCount = 65536
)

// Syscall is a system call a stage is refused (EPERM), and why.
type Syscall struct {
	Name string
	Why  string
}

// Denied lists the system calls refused to every stage. The user namespace
// already takes host privilege away; this list removes the kernel
// interfaces that stay reachable from inside one and have been the way out
// of containers before, or that no build needs. It is a subset of what the
// OCI runtimes' default profile (Docker's, containerd's) refuses to an
// unprivileged container, with the same reasons.
//
// Left allowed on purpose: clone/unshare of namespaces other than user
// namespaces (useless without mount, and the PID and network namespaces
// are already the stage's own); chroot; personality.
func Denied() []Syscall {
	return []Syscall{
		// Changing the filesystem view: a stage remounting a read-only
		// bind read-write, or mounting something over its inputs.
		{"mount", "remounting a read-only bind read-write or mounting over the sandbox"},
		{"umount2", "uncovering what the sandbox hides"},
		{"pivot_root", "changing the root the sandbox set up"},
		{"move_mount", "new mount API: the same as mount"},
		{"open_tree", "new mount API: cloning a mount"},
		{"fsopen", "new mount API: mounting a filesystem"},
		{"fsconfig", "new mount API"},
		{"fsmount", "new mount API"},
		{"fspick", "new mount API: reconfiguring a mount"},
		{"mount_setattr", "new mount API: making a read-only mount writable"},
		{"open_tree_attr", "new mount API: cloning a mount with other attributes"},
		// File handles name an inode without a path: open_by_handle_at on
		// any bind mount reaches the whole host filesystem ("shocker").
		{"open_by_handle_at", "opens any inode of a mounted filesystem, escaping the bind mounts"},
		{"name_to_handle_at", "half of the file-handle escape; no build needs it"},
		// The host's kernel itself.
		{"kexec_load", "replaces the host's kernel"},
		{"kexec_file_load", "replaces the host's kernel"},
		{"reboot", "restarts the host"},
		{"init_module", "loads code into the host's kernel"},
		{"finit_module", "loads code into the host's kernel"},
		{"delete_module", "unloads the host's kernel modules"},
		{"bpf", "loads programs into the kernel; a large attack surface"},
		{"perf_event_open", "reads kernel and other processes' state; a large attack surface"},
		{"iopl", "raw I/O port access"},
		{"ioperm", "raw I/O port access"},
		{"swapon", "changes the host's swap"},
		{"swapoff", "changes the host's swap"},
		{"acct", "process accounting of the host"},
		{"quotactl", "disk quotas of the host's filesystems"},
		{"syslog", "reads the kernel's log"},
		{"settimeofday", "sets the host's clock"},
		{"clock_settime", "sets the host's clock"},
		{"clock_adjtime", "sets the host's clock"},
		{"lookup_dcookie", "kernel profiling interface"},
		{"uselib", "obsolete; no build needs it"},
		// The kernel keyring is not namespaced: keys of the host's
		// users could be read or planted.
		{"keyctl", "the kernel keyring is shared with the host"},
		{"add_key", "the kernel keyring is shared with the host"},
		{"request_key", "the kernel keyring is shared with the host"},
		// Other processes' memory. The PID namespace hides the host's
		// processes already; inside it the one process a stage could
		// reach is the sandbox's own runner (PID 1), which speaks to mc.
		{"ptrace", "another process's memory: the sandbox's runner, which speaks to mc"},
		{"process_vm_readv", "another process's memory"},
		{"process_vm_writev", "another process's memory"},
		{"kcmp", "compares kernel objects of other processes"},
		// io_uring performs file and network operations that seccomp
		// cannot see, and has been a steady source of kernel exploits.
		{"io_uring_setup", "operations seccomp cannot filter; a steady source of kernel exploits"},
		{"io_uring_enter", "see io_uring_setup"},
		{"io_uring_register", "see io_uring_setup"},
		{"userfaultfd", "makes kernel races exploitable"},
		// A stage joins no namespace but its own.
		{"setns", "joining another namespace"},
	}
}

// DeniedCloneFlags are the namespace flags a stage may not pass to clone
// or unshare: a new user namespace hands a process a full capability set
// over new namespaces, the kernel's largest surface for unprivileged code.
// clone3 passes its flags in memory a filter cannot read, so it answers
// ENOSYS and the C library falls back to clone.
const DeniedCloneFlags = 0x10000000 // CLONE_NEWUSER
