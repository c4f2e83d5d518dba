// Package runc runs one command in a container with runc, the OCI runtime,
// over an image's unpacked filesystem: what a stage declaring `image` runs
// in. No daemon is involved: each Run writes an OCI bundle (config.json)
// and runs `runc run` in the foreground, and nothing of the container
// outlives the call.
//
// The image's filesystem (the rootfs) is shared by concurrent containers
// and is never written to. runc creates a missing mount point inside the
// rootfs before mounting on it, so every mount destination must either
// exist in the rootfs or lie below a filesystem the container mounts
// itself: a tmpfs at /mc (holding /mc/ws, /mc/home, /mc/cache/<name>),
// /dev, or an earlier mount of the Spec. PrepareRootfs creates /mc and the
// other fixed mount points once, right after unpacking and before the
// rootfs is shared; Run refuses a mount that would make runc write into
// the rootfs.
package runc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// installHint is how to get runc, part of every "not found" error.
const installHint = "install it with `apt-get install runc`"

// Runtime is a runc binary.
type Runtime struct {
	path string

	// The confinement of its containers, checked once (features.go).
	check   sync.Once
	conf    confinement
	confErr error
}

// Find locates runc: the binary MC_RUNC names (a path, or a name looked up
// in PATH), else runc in PATH or in /usr/sbin and /sbin, where Debian
// installs it and where a non-root PATH may not look. getenv reads the
// environment (os.LookupEnv, or a fake in tests).
func Find(getenv func(string) (string, bool)) (*Runtime, error) {
	return find(getenv, "/usr/sbin:/sbin")
}

// find is Find, looking in the directories of fallback after PATH.
func find(getenv func(string) (string, bool), fallback string) (*Runtime, error) {
	path, _ := getenv("PATH")
	if name, ok := getenv("MC_RUNC"); ok && name != "" {
		p, err := lookPath(name, path)
		if err != nil {
			return nil, fmt.Errorf("runc not found: MC_RUNC=%s: %w; %s or fix MC_RUNC", name, err, installHint)
		}
		return &Runtime{path: p}, nil
	}
	p, err := lookPath("runc", path+string(filepath.ListSeparator)+fallback)
	if err != nil {
		return nil, fmt.Errorf("runc not found: %s", installHint)
	}
	return &Runtime{path: p}, nil
}

// Path is the absolute path of the runc binary.
func (r *Runtime) Path() string { return r.path }

// lookPath finds name: as a path when it holds a slash, else in the
// directories of path (the value of PATH, not the process's own, so that
// Find depends only on getenv).
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		return abs, executable(abs)
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue // a relative PATH entry depends on the working directory
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

// executable reports why p is not an executable regular file, or nil.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New(p + " is not an executable file")
	}
	return nil
}
