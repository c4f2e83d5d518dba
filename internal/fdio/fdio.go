// Package fdio holds system-call helpers on raw file descriptors, for the
// hot paths that bypass *os.File (the store's blob writes, the sandbox
// runner's protocol): os.File would first try to register each descriptor
// with the runtime's poller.
package fdio

import "golang.org/x/sys/unix"

// WriteAll writes all of p to fd, retrying short writes and EINTR.
func WriteAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
