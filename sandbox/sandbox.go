package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mc-build/mc/sched"
	"golang.org/x/sys/unix"
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
// enough for the host's tools to run, nothing of the user's files. /etc
// is not one of them: a stage sees the few files of it listed in etcFiles.
func hostSystemDirs() []string {
	return []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"}
}

// etcFiles are what a stage sees of the host's /etc, read-only: what the
// host's tools need to run, and nothing that holds a secret or says more
// of the host than that. Not the whole of /etc: shadow and gshadow, ssh
// host keys, sudoers, the credentials of services (/etc/docker, mail,
// VPNs), machine-id are not visible. passwd and group are not the host's
// either but written by mc (sandboxPasswd): root and nobody.
//
//   - name resolution: nsswitch.conf, hosts, host.conf, resolv.conf (see
//     newBwrapRoot for a symlinked one), gai.conf, networks, protocols,
//     services, ethertypes, rpc;
//   - TLS: ssl/ (its private/ is root's alone, unreadable to a stage),
//     ca-certificates/, ca-certificates.conf, pki/ and crypto-policies/
//     (Fedora's and RHEL's);
//   - the dynamic loader: ld.so.cache, ld.so.conf, ld.so.conf.d/;
//   - Debian's alternatives (/usr/bin/cc -> /etc/alternatives/cc);
//   - what toolchains read: localtime, timezone, os-release, lsb-release,
//     debian_version, gitconfig, mime.types, magic*, perl/, python3*/,
//     java-*/ (Debian's JDKs keep their configuration there), pip.conf and
//     npmrc (a registry mirror), shells.
//
// A world-readable file is what every account of the host may read; the
// list is about what a stage needs, not a boundary of its own: the host
// ids a stage runs as read no file that is not world-readable.
var etcFiles = []string{
	"nsswitch.conf", "hosts", "host.conf", "gai.conf", "networks", "protocols", "services", "ethertypes", "rpc",
	"ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"alternatives",
	"localtime", "timezone", "os-release", "lsb-release", "debian_version", "gitconfig", "mime.types",
	"magic", "magic.mime", "perl", "pip.conf", "npmrc", "shells",
}

// etcGlobs are patterns of etcFiles' kind matching several names.
var etcGlobs = []string{"python3*", "java-*"}

// sandboxPasswd and sandboxGroup are the sandbox's /etc/passwd and
// /etc/group: a stage runs as root of its user namespace, and nobody is
// the owner of every host file outside it. The host's accounts are no
// business of a stage's.
const (
	sandboxPasswd = "root:x:0:0:root:" + sandboxHome + ":/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	sandboxGroup  = "root:x:0:\nnogroup:x:65534:\n"
)

// homeDirs are where users' files live on a host: directories on PATH
// below them (~/go/bin, ~/.cargo/bin, pyenv's shims) are not bound into
// the sandbox, whose stages must not read a user's files. A tool there is
// not found by a stage (see Local.HiddenPath); it belongs in the build as
// an input or in a system directory.
func homeDirs() []string {
	dirs := []string{"/root", "/home"}
	if h, err := os.UserHomeDir(); err == nil && filepath.IsAbs(h) && h != "/" {
		dirs = append(dirs, filepath.Clean(h))
	}
	return dirs
}

// bwrapRoot is the part of the bubblewrap command line that is the same
// for every job, computed once per executor.
type bwrapRoot struct {
	// args set up the root: system directories, /dev, /proc, covers.
	args []string
	// exposed maps the real host path of every bound directory to where
	// the sandbox sees it, to find host paths that need covering.
	exposed []exposure
	// made are the directories made by parents.
	made map[string]bool
	// userns, when mc runs as root, are the stages' user namespaces,
	// made by mc (newStageUserNS), and runner mc's own executable, run
	// first in a sandbox to become root in them (execAsRoot). nil when mc
	// is not root: bubblewrap makes the namespace, the caller being root
	// in it.
	userns *stageUserNS
	runner string
	// seccomp is the filter every stage runs under (confine.Program).
	seccomp []byte
	// unconfined switches guarantees off, for the positive controls of
	// the tests only.
	unconfined unconfined
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
		r.parents(dst)
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
	homes := homeDirs()
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || r.sees(real) || r.sees(dir) || under(real, hide) || under(real, homes) || under(dir, homes) {
			continue
		}
		if fi, err := os.Stat(real); err == nil && fi.IsDir() {
			bind(dir, filepath.Clean(dir))
		}
	}
	r.bindEtc(bind)
	r.args = append(r.args, "--dev", "/dev", "--proc", "/proc", "--symlink", "/proc/self/mounts", "/etc/mtab")
	for _, h := range hide {
		r.args = append(r.args, r.cover(h)...)
	}
	return r
}

// parents makes the directories above dst that no bind makes, readable
// and searchable by all: bubblewrap makes them 0700, owned by the host's
// root when mc is root, which the stage is not.
func (r *bwrapRoot) parents(dst string) {
	if r.made == nil {
		r.made = map[string]bool{}
	}
	var todo []string
	for d := filepath.Dir(dst); d != "/" && !r.made[d] && !r.sees(d); d = filepath.Dir(d) {
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		r.made[todo[i]] = true
		r.args = append(r.args, "--perms", "0755", "--dir", todo[i])
	}
}

// bindEtc binds the files of etcFiles that the host has.
func (r *bwrapRoot) bindEtc(bind func(src, dst string)) {
	names := append([]string(nil), etcFiles...)
	for _, g := range etcGlobs {
		m, _ := filepath.Glob(filepath.Join("/etc", g))
		for _, p := range m {
			names = append(names, filepath.Base(p))
		}
	}
	for _, n := range names {
		bind(filepath.Join("/etc", n), filepath.Join("/etc", n))
	}
	// A resolv.conf symlink (systemd-resolved) is kept a symlink, to its
	// target, bound too: the target is replaced whole when the network
	// changes, and a worker lives long.
	if fi, err := os.Lstat("/etc/resolv.conf"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if t, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil {
			r.args = append(r.args, "--symlink", t, "/etc/resolv.conf")
			if !r.sees(t) {
				bind(filepath.Dir(t), filepath.Dir(t))
			}
		}
	} else {
		bind("/etc/resolv.conf", "/etc/resolv.conf")
	}
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

// bwrapCmd is a bubblewrap command line and the descriptors it names,
// passed as the command's ExtraFiles (files[i] is descriptor 3+i).
type bwrapCmd struct {
	args  []string
	files []*os.File
	env   []string // what the command's environment needs besides the stage's
	keep  int      // files[:keep] are the caller's, not closed by close
}

// fd adds f to the files passed and returns its descriptor number in
// bubblewrap, as an argument.
func (c *bwrapCmd) fd(f *os.File) string {
	c.files = append(c.files, f)
	return strconv.Itoa(2 + len(c.files))
}

// close closes the parent's copies of the files, once bubblewrap started
// (or failed to).
func (c *bwrapCmd) close() {
	for _, f := range c.files[c.keep:] {
		f.Close()
	}
}

// bwrapArgs is the full bubblewrap command line for one job: the root,
// the job's own directories at their fixed places, the namespaces, and
// the shell running the commands (after execAsRoot when mc is root: env
// then holds what the command's environment needs besides the job's).
// cover lists extra host paths to hide (the workspace, when a bound
// directory holds it).
func (r *bwrapRoot) bwrapArgs(bwrap string, sb *sandboxDirs, job *sched.Job, mounts []cacheMount, cover []string, shell []string) (*bwrapCmd, error) {
	var first *os.File
	if r.userns != nil && !r.unconfined.userns {
		f, err := os.Open(r.runner)
		if err != nil {
			return nil, fmt.Errorf("opening mc's executable: %w", err)
		}
		first = f
	}
	c, err := r.sandboxArgs(bwrap, first, sb, mounts, cover, len(shell)+1)
	if err != nil {
		if first != nil {
			first.Close()
		}
		return nil, err
	}
	c.keep = 0 // first is bwrapArgs' own: closed with the others
	c.args = append(c.args,
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		"--chdir", filepath.Join(sandboxWS, filepath.FromSlash(job.Pkg)),
	)
	if !job.Network {
		c.args = append(c.args, "--unshare-net")
	}
	c.args = append(c.args, "--")
	if first != nil {
		c.args = append(c.args, "/proc/self/fd/3")
		c.env = []string{runnerEnv + "=" + runnerExec}
	}
	c.args = append(c.args, shell...)
	return c, nil
}

// workerArgs is the bubblewrap command line of a sandbox worker: the same
// sandbox as bwrapArgs', with runner, an open executable, as its PID 1
// instead of a shell.
func (r *bwrapRoot) workerArgs(bwrap string, sb *sandboxDirs, network bool, mounts []cacheMount, cover []string, runner *os.File) (*bwrapCmd, error) {
	c, err := r.sandboxArgs(bwrap, runner, sb, mounts, cover, 1)
	if err != nil {
		return nil, err
	}
	c.args = append(c.args,
		"--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		"--chdir", "/",
	)
	if !network {
		c.args = append(c.args, "--unshare-net")
	}
	c.args = append(c.args, "--", "/proc/self/fd/3")
	return c, nil
}

// sandboxArgs lays out the sandbox's filesystem: /tmp, the root, the
// covers, the workspace, home and cache mounts; and its confinement: the
// user namespace and the seccomp filter. first, when not nil, is passed
// as descriptor 3 (and not closed by close: the caller keeps it).
func (r *bwrapRoot) sandboxArgs(bwrap string, first *os.File, sb *sandboxDirs, mounts []cacheMount, cover []string, extra int) (c *bwrapCmd, err error) {
	c = &bwrapCmd{args: make([]string, 0, len(r.args)+len(cover)+3*len(mounts)+48+extra)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if first != nil {
		c.files = append(c.files, first)
		c.keep = 1
	}
	data := func(flag string, b []byte, dst string) error {
		f, err := pipeOf(b)
		if err != nil {
			return err
		}
		if flag == "--ro-bind-data" {
			c.args = append(c.args, "--perms", "0644") // else 0600, the host root's
		}
		c.args = append(c.args, flag, c.fd(f))
		if dst != "" {
			c.args = append(c.args, dst)
		}
		return nil
	}
	c.args = append(c.args, bwrap)
	switch {
	case r.unconfined.userns:
	case r.userns != nil:
		// Descriptors of its own: the shared ones stay open.
		for _, o := range [...]struct {
			flag string
			f    *os.File
		}{{"--userns", r.userns.setup}, {"--userns2", r.userns.stage}} {
			fd, err := unix.FcntlInt(o.f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return nil, fmt.Errorf("passing the stages' user namespace: %w", err)
			}
			c.args = append(c.args, o.flag, c.fd(os.NewFile(uintptr(fd), o.flag)))
		}
		c.args = append(c.args, "--cap-add", "ALL")
	default:
		// Not root: bubblewrap makes the user namespace, the caller's
		// own id being root in it (the only id it may map).
		c.args = append(c.args, "--unshare-user", "--uid", "0", "--gid", "0")
	}
	if !r.unconfined.seccomp {
		if err := data("--seccomp", r.seccomp, ""); err != nil {
			return nil, err
		}
	}
	// Disk-backed and removed with the sandbox, rather than a tmpfs
	// competing with the build for memory. First, so that it does not
	// hide a bound directory below /tmp.
	c.args = append(c.args, "--bind", sb.tmp, "/tmp")
	c.args = append(c.args, r.args...)
	if r.unconfined.etc {
		c.args = append(c.args, "--ro-bind", "/etc", "/etc", "--ro-bind", "/root", "/root")
	}
	if err := data("--ro-bind-data", []byte(sandboxPasswd), "/etc/passwd"); err != nil {
		return nil, err
	}
	if err := data("--ro-bind-data", []byte(sandboxGroup), "/etc/group"); err != nil {
		return nil, err
	}
	c.args = append(c.args, cover...)
	c.args = append(c.args,
		"--perms", "0755", "--dir", "/mc",
		"--bind", sb.ws, sandboxWS,
		"--bind", sb.home, sandboxHome,
	)
	if len(mounts) > 0 {
		c.args = append(c.args, "--perms", "0755", "--dir", sandboxCache)
	}
	for _, m := range mounts {
		c.args = append(c.args, "--bind", m.host, m.inside)
	}
	return c, nil
}
