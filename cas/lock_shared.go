package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// LockShared takes a shared flock on path (creating the file and its parent
// directories), waiting while someone holds it exclusively (Lock) or ctx is
// done. Any number of shared holders coexist. Builds hold the cache's
// gc.lock shared while `mc cache gc` takes it exclusively, so that gc never
// deletes a blob a running build is about to record a result for.
func LockShared(ctx context.Context, path string) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cas: lock %s: %w", path, context.Cause(ctx))
	}
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	wait := lockPollMin
	for {
		ok, err := tryFlockShared(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cas: lock %s: %w", path, err)
		}
		if ok {
			return unlocker(f), nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("cas: lock %s: %w", path, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

// TryLockShared takes the lock LockShared takes if no one holds it
// exclusively; ok is false (and err nil) when someone does.
func TryLockShared(path string) (unlock func() error, ok bool, err error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, false, err
	}
	ok, err = tryFlockShared(f)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("cas: lock %s: %w", path, err)
		}
		return nil, false, nil
	}
	return unlocker(f), true, nil
}

// tryFlockShared attempts a non-blocking shared flock on f.
func tryFlockShared(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}
