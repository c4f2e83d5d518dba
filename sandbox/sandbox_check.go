package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mc-build/mc/cas"
)

// RequireIsolation returns an error wrapping ErrNoSandbox, saying what is
// missing and how to install or enable it, unless stages run under
// bubblewrap here and, with PrivateNetwork, a private network can be set up
// and attached (tried once, for real).
func (l *Local) RequireIsolation(ctx context.Context) error {
	if ok, err := l.Sandboxed(); !ok {
		return err
	}
	if !l.opts.PrivateNetwork {
		return ctx.Err()
	}
	n, err := l.privateNet(true, true)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoSandbox, err)
	}
	n.close()
	return ctx.Err()
}

// CheckSandbox is RequireIsolation for a command that has no executor of
// its own yet (mc serve, whose builds are mc build processes; mc agent at
// its start): it tries for real with a throwaway one in a temporary
// directory. Commands that must not run stages unconfined exit 3 on it.
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
		MountsDir: filepath.Join(dir, "mounts"), PrivateNetwork: privateNetwork, Sandbox: SandboxRequired})
	if err != nil {
		return fmt.Errorf("checking the sandbox: %w", err)
	}
	defer l.Close()
	return l.RequireIsolation(ctx)
}
