package runc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks bounds the symlinks followed resolving one path, as the kernel
// does (ELOOP).
const maxLinks = 40

// preparedDir is a directory every container mounts on: runc would create
// a missing one inside the rootfs.
type preparedDir struct {
	path string
	mode fs.FileMode
}

// preparedDirs are the directories PrepareRootfs creates. /tmp is there
// for the common tmpfs; /etc holds the files of preparedFiles.
func preparedDirs() []preparedDir {
	return []preparedDir{
		{mcDir, 0o755},
		{"/proc", 0o555},
		{"/dev", 0o755},
		{"/sys", 0o555},
		{"/tmp", fs.ModeSticky | 0o777},
		{"/etc", 0o755},
	}
}

// preparedFiles are mount points for files Run binds when the image has
// them: a missing one leaves the container without them, it does not fail.
func preparedFiles() []string { return []string{"/etc/hosts", "/etc/resolv.conf"} }

// requiredDirs must resolve to directories in a rootfs for Run to use it.
func requiredDirs() []string { return []string{mcDir, "/proc", "/dev", "/sys"} }

// PrepareRootfs creates the mount points Run needs in a freshly unpacked
// image filesystem: /mc, /proc, /dev, /sys, /tmp as directories, and
// /etc/hosts and /etc/resolv.conf as empty files, each only when nothing
// is at its path (an image's symlink is left alone). When mc is root it
// then shifts every owner into the containers' host id range (image id N
// becomes confine.IDBase+N), so that root in the container's user
// namespace owns what the image's root owns. Call it once, before the
// rootfs is shared: Run never writes to it. A rootfs prepared by an mc
// that did not shift owners is refused by Run.
func PrepareRootfs(rootfs string) error {
	if err := prepareMountPoints(rootfs); err != nil {
		return err
	}
	if base, count := rootfsShift(os.Geteuid()); count > 0 {
		if err := shiftOwners(rootfs, base, count); err != nil {
			return fmt.Errorf("preparing rootfs: %w", err)
		}
	}
	return nil
}

// overflowID is the id an image owner beyond the mapped range becomes
// (the kernel's overflow id, nobody): it cannot be mapped as it is.
const overflowID = 65534

// shiftOwners changes the owner of every file under root from N to
// base+N (N >= count: base+overflowID; ids in the range stay), each inode
// once (hard links).
// chown clears setuid and setgid: they are set again.
func shiftOwners(root string, base, count int) error {
	shift := func(id uint32) int {
		switch {
		case int(id) >= base && int(id) < base+count:
			return int(id) // shifted already: PrepareRootfs may run twice
		case int(id) >= count:
			return base + overflowID
		}
		return base + int(id)
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner", p)
		}
		if st.Nlink > 1 && !fi.IsDir() {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		if err := os.Lchown(p, shift(st.Uid), shift(st.Gid)); err != nil {
			return err
		}
		if m := fi.Mode(); m.IsRegular() && m&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, m&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

// checkRootfsOwner refuses a rootfs whose owners were not shifted for
// the containers' user namespace (prepared by an older mc, or copied):
// its root would not own the image's files, and root-owned host files
// are nobody's inside.
func checkRootfsOwner(rootfs string, ids idMapping) error {
	if ids.rootless {
		return nil
	}
	fi, err := os.Lstat(rootfs)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("rootfs %s: no owner", rootfs)
	}
	m := ids.uids[0]
	if st.Uid < m.HostID || st.Uid-m.HostID >= m.Size {
		return fmt.Errorf("rootfs %s is owned by host uid %d, outside the containers' id range %d-%d: it was not prepared by PrepareRootfs for a user namespace; unpack the image again (`mc cache gc` removes old ones)",
			rootfs, st.Uid, m.HostID, m.HostID+m.Size-1)
	}
	return nil
}

// prepareMountPoints is the first half of PrepareRootfs.
func prepareMountPoints(rootfs string) error {
	for _, d := range preparedDirs() {
		p := filepath.Join(rootfs, d.path)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, d.mode); err != nil {
				return fmt.Errorf("preparing rootfs: %w", err)
			}
			// Mkdir's mode passes through the umask and drops the sticky bit.
			if err := os.Chmod(p, d.mode); err != nil {
				return fmt.Errorf("preparing rootfs: %w", err)
			}
		case err != nil:
			return fmt.Errorf("preparing rootfs: %w", err)
		case d.path == mcDir && !fi.IsDir():
			return fmt.Errorf("preparing rootfs: the image's %s is not a directory", mcDir)
		}
	}
	for _, f := range preparedFiles() {
		p := filepath.Join(rootfs, f)
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return fmt.Errorf("preparing rootfs: %w", err)
		}
	}
	return nil
}

// resolveIn returns the host path that container path p (clean, absolute)
// names in rootfs, following symlinks as the container would see them:
// absolute targets start again at the rootfs, ".." stops at its root. It
// fails when a component is missing.
func resolveIn(rootfs, p string) (string, error) {
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(rootfs, filepath.FromSlash(next))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(rootfs, filepath.FromSlash(cur)), nil
}

// existsIn reports whether container path p is a directory (dir) or a
// non-directory (!dir) in rootfs.
func existsIn(rootfs, p string, dir bool) error {
	host, err := resolveIn(rootfs, p)
	if err != nil {
		return err
	}
	fi, err := os.Stat(host)
	if err != nil {
		return err
	}
	if fi.IsDir() != dir {
		if dir {
			return fmt.Errorf("%s is not a directory", p)
		}
		return fmt.Errorf("%s is a directory", p)
	}
	return nil
}

// checkRootfs makes sure that runc will not write to the rootfs: every
// mount point and the working directory either exist in it or lie below a
// mount (whose filesystem, not the rootfs, gets the missing directories).
// mps are in mount order, after the tmpfs at /mc.
func checkRootfs(rootfs string, mps []mountPoint, cwd string) error {
	for _, d := range requiredDirs() {
		if err := existsIn(rootfs, d, true); err != nil {
			return fmt.Errorf("rootfs %s is not prepared (see PrepareRootfs): %w", rootfs, err)
		}
	}
	covers := []string{mcDir, "/dev"}
	covered := func(p string) bool {
		for _, c := range covers {
			if p != c && within(p, c) {
				return true
			}
		}
		return false
	}
	for _, mp := range mps {
		if !covered(mp.dest) {
			if err := existsIn(rootfs, mp.dest, !mp.file); err != nil {
				return fmt.Errorf("mount point %s must exist in the image or lie under %s (runc would create it in the shared rootfs): %w", mp.dest, mcDir, err)
			}
		}
		covers = append(covers, mp.dest)
	}
	if cwd != "/" && !covered(cwd) {
		if err := existsIn(rootfs, cwd, true); err != nil {
			return fmt.Errorf("working directory %s must exist in the image or lie under a mount: %w", cwd, err)
		}
	}
	return nil
}
