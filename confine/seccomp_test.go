//go:build linux && (amd64 || arm64)

package confine

import (
	"encoding/binary"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// run interprets the filter for one system call, as the kernel would.
// The real kernel's verdicts are tested in package exec, with stages.
func run(t *testing.T, prog []Insn, arch, nr uint32, arg0 uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.NativeEndian.PutUint32(data[offNr:], nr)
	binary.NativeEndian.PutUint32(data[offArch:], arch)
	binary.NativeEndian.PutUint64(data[offArg0:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		i := prog[pc]
		switch i.Code {
		case bpfLdWAbs:
			a = binary.NativeEndian.Uint32(data[i.K:])
		case bpfJeqK, bpfJgeK, bpfJsetK:
			var ok bool
			switch i.Code {
			case bpfJeqK:
				ok = a == i.K
			case bpfJgeK:
				ok = a >= i.K
			default:
				ok = a&i.K != 0
			}
			if ok {
				pc += int(i.Jt)
			} else {
				pc += int(i.Jf)
			}
		case bpfRetK:
			return i.K
		default:
			t.Fatalf("unknown instruction %#x at %d", i.Code, pc)
		}
	}
	t.Fatal("the filter ran off its end")
	return 0
}

func TestFilterVerdicts(t *testing.T) {
	prog, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	eperm := uint32(retErrno | uint32(syscall.EPERM))
	for _, c := range []struct {
		name string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"read", auditArch, unix.SYS_READ, 0, retAllow},
		{"mount", auditArch, unix.SYS_MOUNT, 0, eperm},
		{"open_by_handle_at", auditArch, unix.SYS_OPEN_BY_HANDLE_AT, 0, eperm},
		{"setns", auditArch, unix.SYS_SETNS, 0, eperm},
		{"clone of a thread", auditArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_THREAD, retAllow},
		{"clone of a PID namespace", auditArch, unix.SYS_CLONE, unix.CLONE_NEWPID, retAllow},
		{"clone of a user namespace", auditArch, unix.SYS_CLONE, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, eperm},
		{"unshare -U", auditArch, unix.SYS_UNSHARE, unix.CLONE_NEWUSER, eperm},
		{"unshare -n", auditArch, unix.SYS_UNSHARE, unix.CLONE_NEWNET, retAllow},
		{"clone3", auditArch, unix.SYS_CLONE3, 0, retErrno | uint32(syscall.ENOSYS)},
		{"another architecture", 0x40000003 /* AUDIT_ARCH_I386 */, unix.SYS_READ, 0, retKillProcess},
	} {
		if got := run(t, prog, c.arch, c.nr, c.arg0); got != c.want {
			t.Errorf("%s: verdict %#x, want %#x", c.name, got, c.want)
		}
	}
	if foreignBit != 0 {
		if got := run(t, prog, auditArch, foreignBit|unix.SYS_READ, 0); got != retKillProcess {
			t.Errorf("x32 read: verdict %#x, want kill", got)
		}
	}
	// Every denied call that exists here is refused.
	for _, s := range Denied() {
		if nr := sysnums[s.Name]; nr >= 0 {
			if got := run(t, prog, auditArch, uint32(nr), 0); got != eperm {
				t.Errorf("%s: verdict %#x, want EPERM", s.Name, got)
			}
		}
	}
}

func TestSysnums(t *testing.T) {
	for _, s := range Denied() {
		if _, ok := sysnums[s.Name]; !ok {
			t.Errorf("%s: no system call number on this architecture", s.Name)
		}
		if s.Why == "" {
			t.Errorf("%s: no reason given", s.Name)
		}
	}
	b, err := Program()
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%8 != 0 || len(b)/8 > 4096 {
		t.Errorf("program of %d bytes", len(b))
	}
}
