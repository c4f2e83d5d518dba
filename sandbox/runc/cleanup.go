package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// staleAfter is how old a bundle without a container, or a stopped
// container, must be for Cleanup to take it for a leftover rather than the
// work of a Run in progress.
const staleAfter = time.Minute

// Cleanup kills and deletes the containers left in stateDir by a Run that
// could not clean up (mc was killed: runc died with it and its container
// ran on), and removes their bundles. It leaves alone the containers that
// a `runc run` still attends, so it is safe while other Runs, of this mc
// or another, use stateDir.
func (r *Runtime) Cleanup(stateDir string) error {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	root := filepath.Join(stateDir, stateSubdir)
	cs, err := r.list(root)
	if err != nil {
		return err
	}
	var errs []error
	live := map[string]bool{}   // bundles in use
	orphan := map[string]bool{} // bundles of the containers removed
	for _, c := range cs {
		if !r.orphaned(root, c) {
			live[c.Bundle] = true
			continue
		}
		orphan[c.Bundle] = true
		r.command(root, "kill", c.ID, "KILL")
		if err := r.deleteIfPresent(root, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("reading the state directory: %w", err))
	}
	for _, e := range entries {
		p := filepath.Join(stateDir, e.Name())
		if !strings.HasPrefix(e.Name(), bundlePrefix) || live[p] {
			continue
		}
		// A young bundle without a container is a Run about to start one.
		if fi, err := e.Info(); !orphan[p] && (err != nil || time.Since(fi.ModTime()) < staleAfter) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing a bundle: %w", err))
		}
	}
	return errors.Join(errs...)
}

// listed is a container in the output of `runc list --format json`.
type listed struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// orphaned reports whether no `runc run` attends container c any more:
// its init's parent is not runc (the init of a foreground runc run is its
// child), or it stopped a while ago without runc deleting it.
func (r *Runtime) orphaned(root string, c listed) bool {
	if c.Status == "stopped" {
		fi, err := os.Stat(filepath.Join(root, c.ID))
		return err == nil && time.Since(fi.ModTime()) >= staleAfter
	}
	ppid, err := parentPid(c.Pid)
	if err != nil {
		return true // the init is gone
	}
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(ppid), "exe"))
	if err != nil {
		return true
	}
	self, err := filepath.EvalSymlinks(r.path)
	if err != nil {
		self = r.path
	}
	return exe != self && exe != r.path
}

// parentPid reads the parent of process pid from /proc.
func parentPid(pid int) (int, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no process %d", pid)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("process %d: no PPid", pid)
}

// List returns the ids of the containers runc has in stateDir.
func (r *Runtime) List(stateDir string) ([]string, error) {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	cs, err := r.list(filepath.Join(stateDir, stateSubdir))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, nil
}

// list returns the containers runc has in root.
func (r *Runtime) list(root string) ([]listed, error) {
	out, err := r.command(root, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var cs []listed
	// An empty root lists as "null".
	if err := json.Unmarshal(out, &cs); err != nil {
		return nil, fmt.Errorf("reading runc list: %w", err)
	}
	return cs, nil
}
