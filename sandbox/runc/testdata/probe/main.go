// Command probe performs, inside a container, the system calls of the
// attacks in security_test.go that a shell cannot make. It prints what
// happened, one line per call: "<call>: ok" or "<call>: <error>".
//
//	probe handle <dir> <type> <hex>  open_by_handle_at on dir's filesystem, print what the file holds
//	probe syscalls                   keyctl, io_uring_setup, name_to_handle_at
package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe handle|syscalls ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "handle":
		os.Exit(handle(os.Args[2:]))
	case "syscalls":
		syscalls()
	default:
		fmt.Fprintln(os.Stderr, "probe: unknown command", os.Args[1])
		os.Exit(2)
	}
}

// handle opens the file a handle names on the filesystem of dir (a bind
// mount of one of its directories) and prints its content: the
// "shocker" escape from a bind mount.
func handle(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe handle <dir> <type> <hex>")
		return 2
	}
	typ, err := strconv.Atoi(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b, err := hex.DecodeString(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dir, err := unix.Open(args[0], unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	fd, err := unix.OpenByHandleAt(dir, unix.NewFileHandle(int32(typ), b), unix.O_RDONLY)
	if err != nil {
		fmt.Println("open_by_handle_at:", err)
		return 1
	}
	f := os.NewFile(uintptr(fd), "handle")
	data, err := io.ReadAll(f)
	if err != nil {
		fmt.Println("read:", err)
		return 1
	}
	fmt.Printf("open_by_handle_at: ok: %s\n", data)
	return 0
}

// syscalls makes calls the seccomp filter refuses and that succeed for
// any process without it.
func syscalls() {
	report := func(name string, err error) {
		if err != nil {
			fmt.Printf("%s: %v\n", name, err)
			return
		}
		fmt.Printf("%s: ok\n", name)
	}
	// The session keyring, created if needed.
	_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 1, 0, 0)
	report("keyctl", err)

	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if errno == 0 {
		unix.Close(int(fd))
		report("io_uring_setup", nil)
	} else {
		report("io_uring_setup", errno)
	}

	_, _, err = unix.NameToHandleAt(unix.AT_FDCWD, "/", 0)
	report("name_to_handle_at", err)
}
