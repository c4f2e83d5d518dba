package confine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// The seccomp filter is written here by hand, as classic BPF, rather than
// with a library (libseccomp through cgo, or elastic/go-seccomp-bpf): it
// is some sixty instructions whose every jump can be read and tested, mc
// stays free of cgo, and the argument checks it needs (CLONE_NEWUSER in
// clone's and unshare's flags) are two instructions.

// The filter, in order:
//
//  1. a system call of another architecture or ABI (i386's int 0x80, x32)
//     kills the process: the numbers below mean other calls there, and no
//     build needs them;
//  2. a call of Denied fails with EPERM;
//  3. clone and unshare with CLONE_NEWUSER fail with EPERM;
//  4. clone3 fails with ENOSYS: its flags are in memory the filter cannot
//     read, and C libraries and Go fall back to clone on ENOSYS;
//  5. everything else is allowed.

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits of args[0] on a little-endian machine
)

// Classic BPF opcodes and seccomp return values (linux/filter.h, seccomp.h).
const (
	bpfLdWAbs = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK  = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK   = 0x06 // BPF_RET | BPF_K

	retKillProcess = 0x80000000
	retErrno       = 0x00050000
	retAllow       = 0x7fff0000
)

// Insn is one classic BPF instruction (struct sock_filter).
type Insn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Filter returns the seccomp filter of Denied and DeniedCloneFlags for
// the architecture mc runs on. It fails where no filter is written (an
// architecture other than amd64 and arm64): a stage must not then run as
// though it had one.
func Filter() ([]Insn, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("no seccomp filter is written for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	var denied []uint32
	for _, s := range Denied() {
		nr, ok := sysnums[s.Name]
		if !ok {
			return nil, fmt.Errorf("seccomp: no number for system call %s on %s", s.Name, runtime.GOARCH)
		}
		if nr >= 0 {
			denied = append(denied, uint32(nr))
		}
	}
	// Labels are resolved once the length of each part is known: the
	// tail is [clone check: 3][EPERM][ENOSYS][KILL].
	type jump struct {
		at     int
		target *int
		jt     bool // the true branch jumps (else the false one)
	}
	var prog []Insn
	var jumps []jump
	var cloneCheck, eperm, enosys, kill int
	emit := func(i Insn) int { prog = append(prog, i); return len(prog) - 1 }
	jeq := func(k uint32, target *int) {
		jumps = append(jumps, jump{emit(Insn{Code: bpfJeqK, K: k}), target, true})
	}

	emit(Insn{Code: bpfLdWAbs, K: offArch})
	jumps = append(jumps, jump{emit(Insn{Code: bpfJeqK, K: auditArch}), &kill, false})
	emit(Insn{Code: bpfLdWAbs, K: offNr})
	if foreignBit != 0 {
		jumps = append(jumps, jump{emit(Insn{Code: bpfJgeK, K: foreignBit}), &kill, true})
	}
	for _, nr := range denied {
		jeq(nr, &eperm)
	}
	jeq(uint32(sysnums["clone"]), &cloneCheck)
	jeq(uint32(sysnums["unshare"]), &cloneCheck)
	jeq(uint32(sysnums["clone3"]), &enosys)
	emit(Insn{Code: bpfRetK, K: retAllow})
	cloneCheck = emit(Insn{Code: bpfLdWAbs, K: offArg0})
	jumps = append(jumps, jump{emit(Insn{Code: bpfJsetK, K: DeniedCloneFlags}), &eperm, true})
	emit(Insn{Code: bpfRetK, K: retAllow})
	eperm = emit(Insn{Code: bpfRetK, K: retErrno | uint32(syscall.EPERM)})
	enosys = emit(Insn{Code: bpfRetK, K: retErrno | uint32(syscall.ENOSYS)})
	kill = emit(Insn{Code: bpfRetK, K: retKillProcess})

	for _, j := range jumps {
		off := *j.target - j.at - 1
		if off < 0 || off > 255 {
			return nil, errors.New("seccomp: filter too long for a jump")
		}
		if j.jt {
			prog[j.at].Jt = uint8(off)
		} else {
			prog[j.at].Jf = uint8(off)
		}
	}
	return prog, nil
}

// Program returns the filter as the kernel (and bubblewrap's --seccomp)
// reads it: an array of struct sock_filter in the machine's byte order.
func Program() ([]byte, error) {
	f, err := Filter()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 8*len(f))
	for _, i := range f {
		b = binary.NativeEndian.AppendUint16(b, i.Code)
		b = append(b, i.Jt, i.Jf)
		b = binary.NativeEndian.AppendUint32(b, i.K)
	}
	return b, nil
}
