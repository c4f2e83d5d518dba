package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// killRetry is how often a cancelled container is killed again: the
	// first `runc kill` can come before `runc run` has created it.
	killRetry = 100 * time.Millisecond
	// killWait bounds the wait for `runc run` to end after the container
	// was killed; past it, runc itself is killed and the container deleted.
	killWait = 5 * time.Second
	// commandTimeout bounds one `runc kill`, `delete` or `list`.
	commandTimeout = 10 * time.Second
	// outputWait bounds the wait for the end of the output once runc has
	// exited: with the container's PID namespace gone, nothing should
	// hold the pipe.
	outputWait = 2 * time.Second
)

// stateSubdir is where, under a state directory, runc keeps its state
// (runc --root); bundles sit next to it.
const stateSubdir = "state"

// bundlePrefix starts the name of every bundle directory.
const bundlePrefix = "bundle-"

// Run runs spec in a new container and returns its exit status: the
// command's, 128+n when it was killed by signal n, or runc's own non-zero
// status when the container could not start (a command missing in the
// image; runc's message is then in out). stdout and stderr both go to out
// (out may be nil), each in order; runc copies them through two pipes, so
// their interleaving is approximate (a command wanting it exact sends both
// to one, as `exec 2>&1` does).
//
// stateDir holds runc's state (stateDir/state) and, while the container
// runs, its bundle (a fresh stateDir/bundle-<id>-*, removed on return).
// Concurrent Runs may share a stateDir and a rootfs.
//
// When ctx is done first, the container is killed and deleted and Run
// returns -1 and ctx's error once no process of it is left. Any other
// error is about running the container, not about the command: with -1,
// it did not run; with a status, it ran but out failed (the output is
// read to the end anyway, so that the container never blocks on it).
func (r *Runtime) Run(ctx context.Context, spec Spec, stateDir string, out io.Writer) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	mps, err := checkSpec(&spec)
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", spec.ID, err)
	}
	conf, err := r.confinement()
	if err != nil {
		return -1, err
	}
	if spec.weaken&noUserNS == 0 {
		if err := checkRootfsOwner(spec.Rootfs, conf.ids); err != nil {
			return -1, fmt.Errorf("container %s: %w", spec.ID, err)
		}
	}
	root, bundle, err := writeBundle(&spec, mps, stateDir, conf)
	if bundle != "" {
		defer os.RemoveAll(bundle)
	}
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", spec.ID, err)
	}

	// With its log elsewhere, runc prints a fatal error to stderr plainly,
	// not as a timestamped log line: it reads as the stage's own failure.
	cmd := osexec.Command(r.path, "--root", root, "--log", os.DevNull,
		"run", "--bundle", bundle, spec.ID)
	cmd.Dir = bundle
	// runc passes the container the environment of config.json; its own
	// needs nothing of mc's.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var o *output
	if out != nil {
		// The same writer for both: os/exec then gives them one pipe.
		o = &output{w: out}
		cmd.Stdout, cmd.Stderr = o, o
	}
	cmd.WaitDelay = outputWait
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Out of mc's process group: a Ctrl-C reaches the container only
		// through ctx, as a kill. runc dies with mc; a container left
		// running then is for Cleanup.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("starting runc: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	select {
	case werr := <-done:
		// runc run deletes the container it ran; a failure to start can
		// leave it behind.
		if err := r.deleteIfPresent(root, spec.ID); err != nil {
			return -1, err
		}
		code, err := exitStatus(cmd, werr)
		if err == nil && o != nil && o.err != nil {
			return code, fmt.Errorf("writing the output of container %s: %w", spec.ID, o.err)
		}
		return code, err
	case <-ctx.Done():
		err := r.stop(root, spec.ID, cmd, done)
		return -1, errors.Join(ctx.Err(), err)
	}
}

// checkSpec validates s and returns its mounts in mount order, once it
// is sure that runc will not write to the rootfs.
func checkSpec(s *Spec) ([]mountPoint, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	files := map[string]bool{}
	for _, m := range s.Mounts {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return nil, fmt.Errorf("mount source: %w", err)
		}
		files[m.Source] = !fi.IsDir()
	}
	mps := ordered(s, func(src string) bool { return files[src] })
	if err := checkRootfs(s.Rootfs, mps, s.Cwd); err != nil {
		return nil, err
	}
	return mps, nil
}

// writeBundle creates runc's state directory (root) under stateDir and a
// fresh bundle holding config.json, confined by conf. The bundle is returned, to be
// removed, even with an error.
func writeBundle(s *Spec, mps []mountPoint, stateDir string, conf confinement) (root, bundle string, err error) {
	stateDir, err = filepath.Abs(stateDir)
	if err != nil {
		return "", "", fmt.Errorf("state directory: %w", err)
	}
	root = filepath.Join(stateDir, stateSubdir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", "", fmt.Errorf("state directory: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(root, s.ID)); err == nil {
		return "", "", fmt.Errorf("a container with this id exists already in %s", root)
	}
	bundle, err = os.MkdirTemp(stateDir, bundlePrefix+s.ID+"-")
	if err != nil {
		return "", "", fmt.Errorf("creating the bundle: %w", err)
	}
	extra, err := extraMounts(s, mps, bundle)
	if err != nil {
		return root, bundle, err
	}
	cfg, err := json.Marshal(config(s, mps, extra, nofileLimit(), conf))
	if err != nil {
		return root, bundle, fmt.Errorf("encoding config.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
		return root, bundle, fmt.Errorf("writing config.json: %w", err)
	}
	return root, bundle, nil
}

// extraMounts are the files Run binds besides the Spec's: a /etc/hosts
// naming localhost, and with network the host's resolv.conf, each when the
// image has a file there to mount on and the Spec does not mount there.
func extraMounts(s *Spec, mps []mountPoint, bundle string) ([]mountPoint, error) {
	taken := func(dest string) bool {
		for _, mp := range mps {
			if mp.dest == dest {
				return true
			}
		}
		return false
	}
	var extra []mountPoint
	if !taken("/etc/hosts") && existsIn(s.Rootfs, "/etc/hosts", false) == nil {
		hosts := filepath.Join(bundle, "hosts")
		if err := os.WriteFile(hosts, []byte(hostsFile), 0o644); err != nil {
			return nil, fmt.Errorf("writing hosts: %w", err)
		}
		extra = append(extra, mountPoint{dest: "/etc/hosts", source: hosts, readOnly: true, file: true})
	}
	if s.Network && !taken("/etc/resolv.conf") && existsIn(s.Rootfs, "/etc/resolv.conf", false) == nil {
		// A symlink (systemd-resolved) is followed: the container sees
		// the file, not a link into a directory it lacks.
		if resolv, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil {
			extra = append(extra, mountPoint{dest: "/etc/resolv.conf", source: resolv, readOnly: true, file: true})
		}
	}
	return extra, nil
}

// nofileLimit is the open file limit to give a container: maxNofile, or
// mc's hard limit when lower.
func nofileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < maxNofile {
		return lim.Max
	}
	return maxNofile
}

// exitStatus turns the end of `runc run` into the container's exit status.
func exitStatus(cmd *osexec.Cmd, werr error) (int, error) {
	var exitErr *osexec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		if errors.Is(werr, osexec.ErrWaitDelay) {
			return cmd.ProcessState.ExitCode(), nil
		}
		return -1, fmt.Errorf("waiting for runc: %w", werr)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, fmt.Errorf("runc was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return ws.ExitStatus(), nil
}

// stop kills the container of a cancelled Run and waits until `runc run`
// has ended (done), then deletes whatever is left of the container. runc
// forwards no SIGKILL, so the kill goes through `runc kill`, repeated
// while `runc run` may still be creating the container.
func (r *Runtime) stop(root, id string, cmd *osexec.Cmd, done <-chan error) error {
	deadline := time.Now().Add(killWait)
	tick := time.NewTicker(killRetry)
	defer tick.Stop()
	for {
		// Fails before the container exists and after it is gone.
		r.command(root, "kill", id, "KILL")
		select {
		case <-done:
			return r.deleteIfPresent(root, id)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			// runc's death leaves the container running: delete --force
			// kills it, and with it the last writer of the output.
			err := r.deleteIfPresent(root, id)
			<-done
			return err
		}
	}
}

// deleteIfPresent force-deletes container id (killing what runs in it,
// removing its cgroups and state) when runc still has it.
func (r *Runtime) deleteIfPresent(root, id string) error {
	if _, err := os.Lstat(filepath.Join(root, id)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_, err := r.command(root, "delete", "--force", id)
	if err == nil {
		return nil
	}
	if _, serr := os.Lstat(filepath.Join(root, id)); errors.Is(serr, fs.ErrNotExist) {
		return nil // gone meanwhile: runc run deleted it
	}
	return fmt.Errorf("deleting container %s: %w", id, err)
}

// command runs `runc --root root args...` (without --root when root is
// "") and returns its standard output; a failure's error holds what runc said on stderr.
func (r *Runtime) command(root string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	argv := args
	if root != "" {
		argv = append([]string{"--root", root}, args...)
	}
	cmd := osexec.CommandContext(ctx, r.path, argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("runc %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
