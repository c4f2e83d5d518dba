package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mc-build/mc/cas"
)

// ErrSandboxMissing is what RequireIsolation and CheckSandbox wrap: the
// machine cannot run stages isolated as required. Commands that must not
// run stages unconfined (mc serve, mc agent) stop with exit code 3.
var ErrSandboxMissing = errors.New("no working sandbox")

// RequireIsolation returns an error wrapping ErrSandboxMissing, saying what
// is missing and how to install it, unless stages run under bubblewrap
// here and, with PrivateNetwork, a private network can be set up and
// attached (tried once, for real).
func (l *Local) RequireIsolation(ctx context.Context) error {
	if !l.Isolated() {
		if l.bwrap == "" {
			return fmt.Errorf("%w: bubblewrap (bwrap) is not installed (or not on PATH); install it: apt-get install bubblewrap", ErrSandboxMissing)
		}
		return fmt.Errorf("%w: bubblewrap is installed (%s) but cannot create a sandbox on this machine; check that user namespaces are enabled (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor restriction kernel.apparmor_restrict_unprivileged_userns=0) and that mc runs with the rights it needs", ErrSandboxMissing, l.bwrap)
	}
	if !l.opts.PrivateNetwork {
		return nil
	}
	n, err := l.privateNet(true, true)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSandboxMissing, err)
	}
	n.close()
	return ctx.Err()
}

// CheckSandbox is RequireIsolation for a command that has no executor of
// its own yet (mc serve, whose builds are mc build processes): it probes
// with a throwaway one in a temporary directory.
func CheckSandbox(ctx context.Context, privateNetwork bool) error {
	dir, err := os.MkdirTemp("", "mc-sandbox-check-")
	if err != nil {
		return fmt.Errorf("checking the sandbox: %w", err)
	}
	defer os.RemoveAll(dir)
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		return fmt.Errorf("checking the sandbox: %w", err)
	}
	l, err := NewLocal(LocalOptions{Store: store, SandboxDir: filepath.Join(dir, "sandbox"),
		MountsDir: filepath.Join(dir, "mounts"), PrivateNetwork: privateNetwork})
	if err != nil {
		return fmt.Errorf("checking the sandbox: %w", err)
	}
	defer l.Close()
	return l.RequireIsolation(ctx)
}
