//go:build linux

package confine

import "golang.org/x/sys/unix"

// auditArch is the architecture value the kernel passes a seccomp filter
// for system calls of this program's own ABI.
const auditArch = 0xc000003e // AUDIT_ARCH_X86_64

// foreignBit marks system call numbers of another ABI of the same
// architecture value; they are refused.
const foreignBit = 0x40000000 // __X32_SYSCALL_BIT: x32 ABI calls carry it in their number

// sysnums are the numbers of the system calls the filter names, on this
// architecture; -1: the call does not exist here. TestSysnums checks that
// every name of Denied is listed.
var sysnums = map[string]int{
	"mount":             unix.SYS_MOUNT,
	"umount2":           unix.SYS_UMOUNT2,
	"pivot_root":        unix.SYS_PIVOT_ROOT,
	"move_mount":        unix.SYS_MOVE_MOUNT,
	"open_tree":         unix.SYS_OPEN_TREE,
	"fsopen":            unix.SYS_FSOPEN,
	"fsconfig":          unix.SYS_FSCONFIG,
	"fsmount":           unix.SYS_FSMOUNT,
	"fspick":            unix.SYS_FSPICK,
	"mount_setattr":     unix.SYS_MOUNT_SETATTR,
	"open_tree_attr":    unix.SYS_OPEN_TREE_ATTR,
	"open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT,
	"name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT,
	"kexec_load":        unix.SYS_KEXEC_LOAD,
	"kexec_file_load":   unix.SYS_KEXEC_FILE_LOAD,
	"reboot":            unix.SYS_REBOOT,
	"init_module":       unix.SYS_INIT_MODULE,
	"finit_module":      unix.SYS_FINIT_MODULE,
	"delete_module":     unix.SYS_DELETE_MODULE,
	"bpf":               unix.SYS_BPF,
	"perf_event_open":   unix.SYS_PERF_EVENT_OPEN,
	"iopl":              unix.SYS_IOPL,
	"ioperm":            unix.SYS_IOPERM,
	"swapon":            unix.SYS_SWAPON,
	"swapoff":           unix.SYS_SWAPOFF,
	"acct":              unix.SYS_ACCT,
	"quotactl":          unix.SYS_QUOTACTL,
	"syslog":            unix.SYS_SYSLOG,
	"settimeofday":      unix.SYS_SETTIMEOFDAY,
	"clock_settime":     unix.SYS_CLOCK_SETTIME,
	"clock_adjtime":     unix.SYS_CLOCK_ADJTIME,
	"lookup_dcookie":    unix.SYS_LOOKUP_DCOOKIE,
	"uselib":            unix.SYS_USELIB,
	"keyctl":            unix.SYS_KEYCTL,
	"add_key":           unix.SYS_ADD_KEY,
	"request_key":       unix.SYS_REQUEST_KEY,
	"ptrace":            unix.SYS_PTRACE,
	"process_vm_readv":  unix.SYS_PROCESS_VM_READV,
	"process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"kcmp":              unix.SYS_KCMP,
	"io_uring_setup":    unix.SYS_IO_URING_SETUP,
	"io_uring_enter":    unix.SYS_IO_URING_ENTER,
	"io_uring_register": unix.SYS_IO_URING_REGISTER,
	"userfaultfd":       unix.SYS_USERFAULTFD,
	"setns":             unix.SYS_SETNS,
	"clone":             unix.SYS_CLONE,
	"unshare":           unix.SYS_UNSHARE,
	"clone3":            unix.SYS_CLONE3,
}
