package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// features is the part of `runc features` (runc >= 1.1) that tells
// whether this runc can confine a container the way confine.go asks.
type features struct {
	Linux *struct {
		Namespaces   []string `json:"namespaces"`
		Capabilities []string `json:"capabilities"`
		Seccomp      *struct {
			Enabled   *bool    `json:"enabled"`
			Actions   []string `json:"actions"`
			Operators []string `json:"operators"`
			Archs     []string `json:"archs"`
		} `json:"seccomp"`
	} `json:"linux"`
}

// confinement returns what every container of r is confined with, once
// it has checked that r and the kernel can do it: a container is never
// started without its user namespace and seccomp filter. The check runs
// `runc features` once per Runtime.
func (r *Runtime) confinement() (confinement, error) {
	r.check.Do(func() {
		r.conf, r.confErr = r.checkConfinement(os.Geteuid(), os.Getegid())
	})
	return r.conf, r.confErr
}

func (r *Runtime) checkConfinement(euid, egid int) (confinement, error) {
	sc, err := seccompProfile()
	if err != nil {
		return confinement{}, err
	}
	fail := func(format string, a ...any) (confinement, error) {
		return confinement{}, fmt.Errorf("runc %s cannot confine containers, and mc runs none without: "+format, append([]any{r.path}, a...)...)
	}
	out, err := r.command("", "features")
	if err != nil {
		return fail("`runc features` failed (runc 1.1 or later is needed): %v", err)
	}
	var f features
	if err := json.Unmarshal(out, &f); err != nil || f.Linux == nil {
		return fail("`runc features` printed no Linux features (runc 1.1 or later is needed)")
	}
	if !slices.Contains(f.Linux.Namespaces, "user") {
		return fail("it does not support user namespaces")
	}
	s := f.Linux.Seccomp
	if s == nil || s.Enabled == nil || !*s.Enabled {
		return fail("it was built without seccomp (libseccomp); install a runc built with it (Debian's is)")
	}
	for _, a := range sc.Architectures {
		if !slices.Contains(s.Archs, string(a)) {
			return fail("its seccomp does not know architecture %s", a)
		}
	}
	for _, a := range []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno} {
		if !slices.Contains(s.Actions, string(a)) {
			return fail("its seccomp lacks action %s", a)
		}
	}
	if !slices.Contains(s.Operators, string(specs.OpMaskedEqual)) {
		return fail("its seccomp lacks operator %s", specs.OpMaskedEqual)
	}
	if err := kernelUserNS(euid); err != nil {
		return fail("%v", err)
	}
	c := confinement{ids: mappingFor(euid, egid), seccomp: sc}
	if euid == 0 {
		if c.door, err = door(doorParents()); err != nil {
			return fail("%v", err)
		}
	}
	return c, nil
}

// doorName is the directory, in the first of doorParents that every id
// can reach, that is the root of containers before their rootfs is bound
// over it (see config).
const doorName = "mc-runc-root"

// doorParents are where the door may be: /run (root's, tmpfs), else the
// temporary directory.
func doorParents() []string { return []string{"/run", os.TempDir()} }

// door returns parent/doorName for the first parent of parents every id
// can reach, creating it if needed. It must be a directory of root's that
// nobody else may write to: another user's directory there could be
// swapped for something else between runc's checks and its mounts.
func door(parents []string) (string, error) {
	var errs []error
	for _, parent := range parents {
		if err := reachable(parent); err != nil {
			errs = append(errs, err)
			continue
		}
		p := filepath.Join(parent, doorName)
		if err := os.Mkdir(p, 0o555); err != nil && !errors.Is(err, fs.ErrExist) {
			errs = append(errs, err)
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || st == nil || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return "", fmt.Errorf("%s is not a directory of root's that only root may write to (%v): remove it", p, fi.Mode())
		}
		return p, nil
	}
	return "", fmt.Errorf("no directory for the containers' root that every user can reach: %w", errors.Join(errs...))
}

// reachable reports why a process of an id of nobody's could not look up
// names in dir: one of its directories lacks the search bit for others.
func reachable(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by other users (%v)", p, fi.Mode())
		}
		if p == "/" {
			return nil
		}
	}
}

// kernelUserNS reports why the kernel will not give a process of
// effective uid euid a user namespace, naming the setting to change.
func kernelUserNS(euid int) error {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return errors.New("the kernel has no user namespaces (CONFIG_USER_NS)")
	}
	if v, err := readSysctl("user/max_user_namespaces"); err == nil && v == "0" {
		return errors.New("user namespaces are disabled: sysctl user.max_user_namespaces is 0 (set it to e.g. 15000)")
	}
	if euid == 0 {
		return nil // the limits below are on unprivileged users
	}
	if v, err := readSysctl("kernel/unprivileged_userns_clone"); err == nil && v == "0" {
		return errors.New("unprivileged user namespaces are disabled: set sysctl kernel.unprivileged_userns_clone=1, or run mc as root")
	}
	if v, err := readSysctl("kernel/apparmor_restrict_unprivileged_userns"); err == nil && v == "1" {
		return errors.New("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): " +
			"give runc an AppArmor profile allowing `userns`, set the sysctl to 0, or run mc as root")
	}
	return nil
}

// readSysctl reads /proc/sys/<name>, trimmed.
func readSysctl(name string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	return strings.TrimSpace(string(b)), err
}
