package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
)

// collectUntrusted runs gc on the untrusted tier of cacheDir (if any) to
// limit bytes, with the gc lock held: its blobs and results, and the
// sandboxes its killed builds left. Its cache mounts stay, as the trusted
// tier's do.
func collectUntrusted(ctx context.Context, cacheDir string, limit int64) (*cas.GCReport, error) {
	dir := cas.UntrustedDir(cacheDir)
	if _, err := os.Stat(filepath.Join(dir, "mc.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	store, err := cas.OpenStore(filepath.Join(dir, "cas"))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the untrusted tier: %w", err))
	}
	db, err := cas.OpenDB(filepath.Join(dir, "mc.db"))
	if err != nil {
		return nil, errkind.Infra(fmt.Errorf("opening the untrusted tier's database: %w", err))
	}
	defer db.Close()
	r, err := cas.GC(ctx, store, db, cas.GCOptions{MaxSize: limit})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, errkind.Infra(fmt.Errorf("untrusted tier: %w", err))
	}
	if _, _, err := removeStaleSandboxes(ctx, filepath.Join(dir, "sandbox"), time.Now().Add(-staleSandbox)); err != nil {
		return nil, errkind.Infra(fmt.Errorf("removing the untrusted tier's leftover sandboxes: %w", err))
	}
	return r, nil
}
