package pipeline

import (
	"bytes"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/sandbox"
)

// unisolatedPlatform marks the action keys of a build whose stages run
// without a sandbox (--sandbox=auto on a machine without one): their
// results never meet those of sandboxed builds, which compute other keys,
// and they are not uploaded (sandboxState).
const unisolatedPlatform = "+unisolated"

// sandboxState decides, before any action key is computed, whether the
// build's stages run in the sandbox. Probing bubblewrap costs a sandbox
// start, too much for every null build: a successful probe is recorded in
// the cache directory for this bubblewrap, kernel and user, and a build
// finding the record trusts it, with the executor set to refuse (exit 3)
// rather than run unsandboxed should the sandbox fail after all. So a
// result keyed as sandboxed was always built in the sandbox.
//
// It returns the mode the executor is to be made with, whether the probe
// is recorded (the executor then skips its trial sandbox), and a function
// telling, once it is made, whether stages are isolated: false only in
// auto mode, after saying so; an error wrapping sandbox.ErrNoSandbox in
// required mode.
func sandboxState(cache string, mode sandbox.SandboxMode) (sandbox.SandboxMode, bool, func(*sandbox.Local) (bool, error)) {
	rec := filepath.Join(cache, "sandbox-probe")
	key := sandboxProbeKey()
	if key != nil {
		if b, err := os.ReadFile(rec); err == nil && bytes.Equal(b, key) {
			return sandbox.SandboxRequired, true, func(*sandbox.Local) (bool, error) { return true, nil }
		}
	}
	return mode, false, func(l *sandbox.Local) (bool, error) {
		ok, why := l.Sandboxed()
		if ok {
			if key != nil {
				os.WriteFile(rec, key, 0o644) // best effort: probed again next time
			}
			return true, nil
		}
		if mode == sandbox.SandboxRequired {
			return false, errkind.Infra(fmt.Errorf("--sandbox=required: %w", why))
		}
		return false, nil // the executor warned
	}
}

// sandboxProbeKey says what a probe's success depends on: the bubblewrap
// binary, the kernel, the user, and mc's own confinement; nil when there
// is no bubblewrap.
func sandboxProbeKey() []byte {
	bwrap, err := osexec.LookPath("bwrap")
	if err != nil {
		return nil
	}
	fi, err := os.Stat(bwrap)
	if err != nil {
		return nil
	}
	var u unix.Utsname
	unix.Uname(&u)
	self, _ := os.Executable()
	var exe string
	if st, err := os.Stat(self); err == nil {
		exe = fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	}
	return []byte(fmt.Sprintf("v1 %s %d %d %s %d %s\n", bwrap, fi.Size(), fi.ModTime().UnixNano(),
		unix.ByteSliceToString(u.Release[:]), os.Geteuid(), exe))
}
