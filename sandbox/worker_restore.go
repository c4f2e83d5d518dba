package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// What the runner checks or undoes after each stage, besides killing its
// processes: the host empties /tmp, /mc/ws and /mc/home, but a stage may
// also have written to the sandbox's own directories or changed its
// namespaces, which outlive it in a worker.

// scrubbedDirs are the sandbox's own directories (not bound from the
// host) in which a stage may create files; what it adds there is removed
// after it. Everything in /dev/shm is.
var scrubbedDirs = []string{"/", "/mc", "/dev"}

// nsStateFiles, below /proc, show kernel state of the worker's namespaces
// that a stage could change and that would outlive it: SysV IPC objects,
// network interfaces (as root). /proc/net/dev is cut to interface names:
// its counters move.
var nsStateFiles = []string{"sysvipc/shm", "sysvipc/sem", "sysvipc/msg", "net/dev"}

// sandboxSnapshot is the sandbox as the runner found it, before any stage.
// The directories and files it reads again after every stage are kept
// open: it runs once per stage.
type sandboxSnapshot struct {
	dirs    []int      // scrubbedDirs, open
	entries [][]string // their names
	shm     int        // /dev/shm, open; -1 when there is none
	uts     unix.Utsname
	// mounts is the runner's mount table, open: poll(2) reports a change.
	mounts int
	state  []int  // nsStateFiles, open
	was    []byte // what they held
	buf    []byte
}

func openDir(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening %s: %w", p, err)
	}
	return fd, nil
}

func (r *runner) snapshot() (*sandboxSnapshot, error) {
	s := &sandboxSnapshot{shm: -1}
	for _, d := range scrubbedDirs {
		fd, err := openDir(d)
		if err != nil {
			return nil, err
		}
		names, err := direntNames(fd)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", d, err)
		}
		s.dirs = append(s.dirs, fd)
		s.entries = append(s.entries, names)
	}
	if fd, err := openDir("/dev/shm"); err == nil {
		s.shm = fd
	}
	if err := unix.Uname(&s.uts); err != nil {
		return nil, err
	}
	proc := int(r.proc.Fd())
	var err error
	if s.mounts, err = unix.Openat(proc, "1/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("opening /proc/1/mountinfo: %w", err)
	}
	for _, p := range nsStateFiles {
		fd, err := unix.Openat(proc, p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening /proc/%s: %w", p, err)
		}
		s.state = append(s.state, fd)
	}
	if s.was, err = s.nsState(); err != nil {
		return nil, err
	}
	return s, nil
}

// direntNames lists the open directory fd from its start.
func direntNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	ents, err := readDirents(fd)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.name
	}
	return names, nil
}

// nsState reads the files of nsStateFiles again.
func (s *sandboxSnapshot) nsState() ([]byte, error) {
	var all []byte
	for i, fd := range s.state {
		b, err := s.pread(fd)
		if err != nil {
			return nil, fmt.Errorf("reading /proc/%s: %w", nsStateFiles[i], err)
		}
		if nsStateFiles[i] == "net/dev" {
			var names []byte
			for _, line := range bytes.Split(b, []byte("\n")) {
				if name, _, ok := bytes.Cut(line, []byte(":")); ok {
					names = append(append(names, bytes.TrimSpace(name)...), ' ')
				}
			}
			b = names
		}
		all = append(append(all, b...), 0)
	}
	return all, nil
}

// pread reads the whole file fd from its start; the result is valid until
// the next call.
func (s *sandboxSnapshot) pread(fd int) ([]byte, error) {
	if s.buf == nil {
		s.buf = make([]byte, 16<<10)
	}
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := unix.Pread(fd, s.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return s.buf[:n], nil
		}
		n += m
	}
}

// mountsChanged reports whether the mount table changed since the
// snapshot: the kernel flags it on the open file with POLLPRI.
func (s *sandboxSnapshot) mountsChanged() bool {
	fds := []unix.PollFd{{Fd: int32(s.mounts), Events: unix.POLLPRI}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n != 0
	}
}

// restore leaves the sandbox, once no process but the runner is left, as
// the next stage must find it: it removes what the last stage added to the
// sandbox's own directories and /dev/shm, puts the host name back, and
// checks that the stage left the namespaces alone (else the worker must
// not be reused).
func (r *runner) restore() error {
	s := r.snap
	for i, fd := range s.dirs {
		names, err := direntNames(fd)
		if err != nil {
			return fmt.Errorf("reading %s: %w", scrubbedDirs[i], err)
		}
		for _, n := range names {
			if !slices.Contains(s.entries[i], n) {
				if err := removeAll(filepath.Join(scrubbedDirs[i], n)); err != nil {
					return fmt.Errorf("removing what the stage left: %w", err)
				}
			}
		}
	}
	if s.shm >= 0 {
		names, err := direntNames(s.shm)
		if err != nil {
			return fmt.Errorf("reading /dev/shm: %w", err)
		}
		for _, n := range names {
			if err := removeAll(filepath.Join("/dev/shm", n)); err != nil {
				return fmt.Errorf("removing what the stage left: %w", err)
			}
		}
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	if uts.Nodename != s.uts.Nodename || uts.Domainname != s.uts.Domainname {
		err1 := unix.Sethostname(cString(s.uts.Nodename[:]))
		err2 := unix.Setdomainname(cString(s.uts.Domainname[:]))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("the stage changed the host or domain name: %w", err)
		}
	}
	if s.mountsChanged() {
		return errors.New("the stage changed the sandbox's mounts")
	}
	st, err := s.nsState()
	if err != nil {
		return err
	}
	if !bytes.Equal(st, s.was) {
		return errors.New("the stage left IPC objects or changed the network interfaces")
	}
	return nil
}

// cString returns the bytes of a NUL-terminated C string.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
