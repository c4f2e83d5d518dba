package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/singleflight"

	"github.com/mc-build/mc/oci"
	"github.com/mc-build/mc/sandbox/runc"
)

// localImages is the executor's state for images: the runc binary, found
// once, and the pulls and unpacks under way in this process (concurrent
// stages needing one image wait for one unpack). Other processes are
// handled by making every entry of ImagesDir and RootfsDir appear whole,
// with a rename: whoever renames first wins, the others use theirs.
type localImages struct {
	runcOnce sync.Once
	runc     *runc.Runtime
	runcErr  error
	flights  singleflight.Group
}

// runtime returns runc, looked up once (MC_RUNC, else PATH, /usr/sbin, /sbin).
func (l *Local) runtime() (*runc.Runtime, error) {
	li := &l.images
	li.runcOnce.Do(func() {
		li.runc, li.runcErr = runc.Find(os.LookupEnv)
		if li.runcErr != nil {
			li.runcErr = fmt.Errorf("stages with an image run in containers: %w", li.runcErr)
		}
	})
	return li.runc, li.runcErr
}

// digestHex returns the hex of "sha256:<64 hex>", which names directories.
func digestHex(d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("unexpected image digest %q", d)
	}
	return h, nil
}

func (l *Local) imagesDir() string {
	if l.opts.ImagesDir != "" {
		return l.opts.ImagesDir
	}
	return filepath.Join(filepath.Dir(l.opts.RootfsDir), "images")
}

// pulled returns the OCI layout of registry image ref ("repo@sha256:…"),
// pulling it into ImagesDir/<hex> unless it is there. An image the
// registry does not have is a stage error; a registry that cannot be
// reached is an infrastructure one.
func (l *Local) pulled(ctx context.Context, ref string) (string, error) {
	_, d, ok := strings.Cut(ref, "@")
	if !ok {
		return "", fmt.Errorf("image %s: not resolved to a digest", ref)
	}
	hex, err := digestHex(d)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	if l.opts.RootfsDir == "" && l.opts.ImagesDir == "" {
		return "", errors.New("registry images need LocalOptions.ImagesDir")
	}
	dir := filepath.Join(l.imagesDir(), hex)
	if complete(dir) {
		return dir, nil
	}
	_, err, _ = l.images.flights.Do("pull "+hex, func() (any, error) {
		return nil, publish(dir, func(tmp string) error { return oci.Pull(ctx, ref, tmp, l.opts.Registry) })
	})
	if err != nil {
		var re *oci.RegistryError
		if errors.As(err, &re) && re.NotFound() {
			return "", stageErrorf("image %s: %v", ref, err)
		}
		return "", fmt.Errorf("pulling %s: %w", ref, err)
	}
	return dir, nil
}

// rootfs returns the unpacked, prepared filesystem of the image in
// layout, unpacking it into RootfsDir/<hex> unless it is there, and the
// image's run configuration. An image that cannot be unpacked (a layer
// escaping its root, another platform) is a stage error.
func (l *Local) rootfs(ctx context.Context, layout string) (string, *oci.RunConfig, error) {
	if l.opts.RootfsDir == "" {
		return "", nil, errors.New("stages in images need LocalOptions.RootfsDir")
	}
	d, err := oci.ReadDigest(layout)
	if err != nil {
		return "", nil, stageErrorf("image: %v", err)
	}
	cfg, err := oci.ImageConfig(layout)
	if err != nil {
		return "", nil, stageErrorf("image %s: %v", d, err)
	}
	if host := hostPlatform(); cfg.Platform != "" && !samePlatform(cfg.Platform, host) {
		return "", nil, stageErrorf("image %s is for %s; this machine runs %s", d, cfg.Platform, host)
	}
	hex, err := digestHex(d)
	if err != nil {
		return "", nil, err
	}
	// Owners are shifted for the containers' user namespace: a rootfs
	// unpacked before that has another name and is not used.
	dir := filepath.Join(l.opts.RootfsDir, hex+runc.RootfsSuffix())
	if complete(dir) {
		return dir, cfg, nil
	}
	_, err, _ = l.images.flights.Do("rootfs "+hex, func() (any, error) {
		return nil, publish(dir, func(tmp string) error {
			if err := oci.Unpack(ctx, layout, tmp); err != nil {
				return &stageError{fmt.Errorf("unpacking image %s: %w", d, err)}
			}
			// Before anyone can see it: the rootfs is shared read-only.
			return runc.PrepareRootfs(tmp)
		})
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, err
	}
	return dir, cfg, nil
}

// complete reports whether an entry of ImagesDir or RootfsDir is there:
// they only ever appear whole.
func complete(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// publish creates dir whole: fill writes a fresh path inside a private
// temporary directory next to dir, which is then renamed to dir. Losing a
// race to another process (dir appeared meanwhile) is success.
func publish(dir string, fill func(tmp string) error) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+filepath.Base(dir)[:12]+"-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	p := filepath.Join(tmp, "x")
	if err := fill(p); err != nil {
		return err
	}
	if err := os.Rename(p, dir); err != nil {
		if complete(dir) {
			return nil
		}
		return err
	}
	return nil
}

// isDiskFull reports whether err says the disk (or quota) is full: an
// infrastructure failure, not the image's.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// hostPlatform is this machine's platform as images name it (os/arch).
func hostPlatform() string {
	return runtime.GOOS + "/" + runtime.GOARCH
}

// samePlatform compares "os/arch[/variant]" platforms by os and arch only:
// the variant (arm64's "v8") does not stop an image running.
func samePlatform(a, b string) bool {
	cut := func(p string) string {
		parts := strings.SplitN(p, "/", 3)
		return strings.Join(parts[:min(2, len(parts))], "/")
	}
	return cut(a) == cut(b)
}
