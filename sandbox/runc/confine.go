package runc

import (
	"fmt"
	"os"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mc-build/mc/confine"
)

// What holds a container in, on top of its namespaces: confine's policy
// (one for every runtime), applied through the OCI config.
//
//   - A user namespace. When mc is root, container ids 0..IDCount-1 are
//     host ids IDBase.. (the rootfs is prepared with owners shifted the
//     same way, see PrepareRootfs), so root inside is a nobody outside;
//     when mc is not root, runc runs rootless and the container's root is
//     the caller's own uid, the only id it may map.
//   - A seccomp filter refusing confine.Denied() with EPERM, new user
//     namespaces (clone/unshare with CLONE_NEWUSER) with EPERM and clone3
//     with ENOSYS (its flags are out of a filter's reach; the C library
//     then falls back to clone). Everything else is allowed.
//   - no_new_privs, runc's small default capability set, and runc's
//     default masked and read-only /proc and /sys paths (config.go).
//
// Why a deny list rather than the allowlist of Docker's and containerd's
// default profile (defaultAction SCMP_ACT_ERRNO, ~350 names allowed), the
// reference: the two agree on what matters here (confine.Denied() is
// among what that profile refuses a container without extra capabilities,
// but for ptrace and process_vm_readv/writev, which it allows on kernels
// from 4.8 and mc refuses: see confine); the user namespace already takes
// host privilege away; and one written list shared with the bubblewrap
// sandbox cannot drift from it. An allowlist also refuses calls newer
// than itself, which breaks toolchains on a newer C library (Docker's own
// history of faccessat2, clone3, ...) with nothing gained here.

// weakening switches protections off, for tests only: each security test
// performs an attack with everything on, then the same probe with the
// protection it defeats off, to show the probe can succeed. It is an
// unexported field of Spec: nothing outside this package can set it.
type weakening uint8

const (
	noUserNS  weakening = 1 << iota // run as host root, as before
	noSeccomp                       // no seccomp filter
	noMasks                         // /proc and /sys as the kernel mounts them
	noDevices                       // the device cgroup allows every device
)

// cloneNewUser is CLONE_NEWUSER, the flag a container may not pass.
const cloneNewUser = confine.DeniedCloneFlags

// errno values for the filter's refusals.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// idMapping is how container ids map to host ids.
type idMapping struct {
	rootless bool // mc is not root: one id, the caller's
	uids     []specs.LinuxIDMapping
	gids     []specs.LinuxIDMapping
}

// mappingFor returns the id mapping of a container started by a process
// with effective ids euid and egid.
func mappingFor(euid, egid int) idMapping {
	if euid == 0 {
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: confine.IDBase, Size: confine.IDCount}}
		return idMapping{uids: m, gids: m}
	}
	return idMapping{
		rootless: true,
		uids:     []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(euid), Size: 1}},
		gids:     []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(egid), Size: 1}},
	}
}

// rootfsShift is how image owners become host owners when a rootfs is
// prepared for containers started by a process of effective uid euid:
// image id N is host id base+N for N < count. count 0: no shift (mc is
// not root; it cannot chown, and the rootless container's root is the
// caller, who owns every file).
func rootfsShift(euid int) (base, count int) {
	if euid != 0 {
		return 0, 0
	}
	return confine.IDBase, confine.IDCount
}

// RootfsSuffix tells a prepared rootfs (its owners shifted, see
// PrepareRootfs) from one prepared without the shift, for a cache of
// unpacked images named by digest: empty when PrepareRootfs shifts
// nothing (mc is not root).
func RootfsSuffix() string {
	if base, count := rootfsShift(os.Geteuid()); count > 0 {
		return fmt.Sprintf("-ids%x", base)
	}
	return ""
}

// HostRoot returns the host ids that root in r's containers is: what a
// directory bound writable into a container must be owned by for the
// container to write to it (and what the files it leaves there are owned
// by). It fails, like Run, where containers cannot be confined.
func (r *Runtime) HostRoot() (uid, gid int, err error) {
	c, err := r.confinement()
	if err != nil {
		return -1, -1, err
	}
	return int(c.ids.uids[0].HostID), int(c.ids.gids[0].HostID), nil
}

// seccompArchs are the architectures the filter covers on goarch: the
// native one and those its kernel also runs (32-bit x86 and x32 on
// x86-64, 32-bit ARM on arm64), so that a refused call cannot be made
// through another architecture's system call table.
func seccompArchs(goarch string) ([]specs.Arch, error) {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, nil
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, nil
	}
	return nil, fmt.Errorf("no seccomp filter is written for %s: containers cannot be confined here", goarch)
}

// seccompProfile is the filter of every container (see the top of this
// file).
func seccompProfile() (*specs.LinuxSeccomp, error) {
	archs, err := seccompArchs(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	eperm, enosys := uint(errnoEPERM), uint(errnoENOSYS)
	var denied []string
	for _, s := range confine.Denied() {
		denied = append(denied, s.Name)
	}
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: archs,
		Syscalls: []specs.LinuxSyscall{
			{Names: denied, Action: specs.ActErrno, ErrnoRet: &eperm},
			{
				// The flags are the first argument of both on every
				// architecture covered.
				Names: []string{"clone", "unshare"}, Action: specs.ActErrno, ErrnoRet: &eperm,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: cloneNewUser, ValueTwo: cloneNewUser, Op: specs.OpMaskedEqual}},
			},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}, nil
}
