package exec

import (
	"os"
	"path/filepath"
	"strings"
)

// Fixed paths inside a bubblewrap sandbox. The workspace is always at the
// same place so that absolute paths a tool writes into an output are the
// same on every machine.
const (
	sandboxWS    = "/mc/ws"
	sandboxHome  = "/mc/home"
	sandboxCache = "/mc/cache"
)

// hostSystemDirs are the host directories a sandboxed stage sees, read-only:
// enough for the host's tools to run, nothing of the user's files.
func hostSystemDirs() []string {
	return []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}
}

// bwrapRoot is the part of the bubblewrap command line that is the same
// for every job, computed once per executor.
type bwrapRoot struct {
	// args set up the root: system directories, /dev, /proc, covers.
	args []string
	// exposed maps the real host path of every bound directory to where
	// the sandbox sees it, to find host paths that need covering.
	exposed []exposure
}

type exposure struct{ real, dst string }

// newBwrapRoot lays out the sandbox root. path is the host's PATH: its
// absolute directories outside the system directories (~/go/bin,
// ~/.cargo/bin) are bound too, so that what PATH names resolves. hide are
// host paths (the sandbox, cache mount and store directories) a stage must
// not see even when they lie inside a bound directory: they are covered
// with an empty tmpfs.
func newBwrapRoot(path string, hide []string) *bwrapRoot {
	r := &bwrapRoot{}
	bound := map[string]bool{}
	bind := func(src, dst string) {
		real, err := filepath.EvalSymlinks(src)
		if err != nil || bound[dst] {
			return
		}
		bound[dst] = true
		r.args = append(r.args, "--ro-bind", src, dst)
		r.exposed = append(r.exposed, exposure{real: real, dst: dst})
	}
	var links [][2]string // symlinks among the system directories: merged /usr
	for _, d := range hostSystemDirs() {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(d); err == nil {
				links = append(links, [2]string{t, d})
			}
			continue
		}
		if fi.IsDir() {
			bind(d, d)
		}
	}
	for _, l := range links {
		target, d := l[0], l[1]
		abs := target
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(filepath.Dir(d), target)
		}
		// Recreate the symlink when its target is visible anyway;
		// otherwise bind what it points to at its path.
		if r.sees(abs) {
			r.args = append(r.args, "--symlink", target, d)
		} else {
			bind(d, d)
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || r.sees(real) || r.sees(dir) || under(real, hide) {
			continue
		}
		if fi, err := os.Stat(real); err == nil && fi.IsDir() {
			bind(dir, filepath.Clean(dir))
		}
	}
	// A resolv.conf symlink (systemd-resolved) points outside /etc; without
	// its target a stage with network has no DNS.
	if t, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && !r.sees(t) {
		r.args = append(r.args, "--ro-bind", t, t)
	}
	r.args = append(r.args, "--dev", "/dev", "--proc", "/proc")
	for _, h := range hide {
		r.args = append(r.args, r.cover(h)...)
	}
	return r
}

// sees reports whether host path p (absolute) lies in a bound directory.
func (r *bwrapRoot) sees(p string) bool {
	p = filepath.Clean(p)
	for _, e := range r.exposed {
		if within(p, e.real) || within(p, e.dst) {
			return true
		}
	}
	return false
}

// cover returns the arguments hiding host path p behind an empty tmpfs
// when a bound directory would show it, nothing otherwise.
func (r *bwrapRoot) cover(p string) []string {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		real = filepath.Clean(p)
	}
	var args []string
	for _, e := range r.exposed {
		if within(real, e.real) {
			args = append(args, "--tmpfs", filepath.Join(e.dst, strings.TrimPrefix(real, e.real)))
		}
	}
	return args
}

// within reports whether p is dir or inside it (both clean and absolute).
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func under(p string, dirs []string) bool {
	p = filepath.Clean(p)
	for _, d := range dirs {
		if within(p, filepath.Clean(d)) {
			return true
		}
	}
	return false
}

// bwrapArgs is the full bubblewrap command line for one job: the root,
// the job's own directories at their fixed places, the namespaces, and
// the shell running the commands. cover lists extra host paths to hide
// (the workspace, when a bound directory holds it).
func (r *bwrapRoot) bwrapArgs(bwrap string, sb *sandboxDirs, job *Job, mounts []cacheMount, cover []string, shell []string) []string {
	args := r.sandboxArgs(bwrap, sb, mounts, cover, len(shell))
	args = append(args,
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		"--chdir", filepath.Join(sandboxWS, filepath.FromSlash(job.Pkg)),
	)
	if !job.Network {
		args = append(args, "--unshare-net")
	}
	args = append(args, "--")
	return append(args, shell...)
}

// workerArgs is the bubblewrap command line of a sandbox worker: the same
// sandbox as bwrapArgs', with runner as its PID 1 instead of a shell.
func (r *bwrapRoot) workerArgs(bwrap string, sb *sandboxDirs, network bool, mounts []cacheMount, cover []string, runner string) []string {
	args := r.sandboxArgs(bwrap, sb, mounts, cover, 1)
	args = append(args,
		"--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		"--chdir", "/",
	)
	if !network {
		args = append(args, "--unshare-net")
	}
	return append(args, "--", runner)
}

// sandboxArgs lays out the sandbox's filesystem: /tmp, the root, the
// covers, the workspace, home and cache mounts.
func (r *bwrapRoot) sandboxArgs(bwrap string, sb *sandboxDirs, mounts []cacheMount, cover []string, extra int) []string {
	args := make([]string, 0, len(r.args)+len(cover)+3*len(mounts)+32+extra)
	args = append(args, bwrap,
		// Disk-backed and removed with the sandbox, rather than a tmpfs
		// competing with the build for memory. First, so that it does not
		// hide a bound directory below /tmp.
		"--bind", sb.tmp, "/tmp",
	)
	args = append(args, r.args...)
	args = append(args, cover...)
	args = append(args,
		"--bind", sb.ws, sandboxWS,
		"--bind", sb.home, sandboxHome,
	)
	for _, m := range mounts {
		args = append(args, "--bind", m.host, m.inside)
	}
	return args
}
