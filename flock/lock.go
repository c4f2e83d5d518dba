// Package flock holds file locks (flock(2)) that wait with a context:
// exclusive or shared, blocking or tried once. mc takes them on its
// database while it is set up, on its cache (builds shared, GC exclusive)
// and on a workspace's mc-out/.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll bounds how long Lock sleeps between attempts: flock(2) cannot be
// interrupted by a context, so Lock polls with a non-blocking flock instead.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 200 * time.Millisecond
)

// Lock takes an exclusive flock on path (creating the file and its parent
// directories), waiting until it is free or ctx is done. Two builds of one
// workspace use it so that their writes to mc-out/ do not interleave. The
// lock is per open file, so it also excludes other goroutines of the same
// process, and the kernel drops it if the process dies.
func Lock(ctx context.Context, path string) (unlock func() error, err error) {
	return lockWait(ctx, path, unix.LOCK_EX)
}

// LockShared takes a shared flock on path (creating the file and its parent
// directories), waiting while someone holds it exclusively (Lock) or ctx is
// done. Any number of shared holders coexist. Builds hold the cache's
// gc.lock shared while `mc cache gc` takes it exclusively, so that gc never
// deletes a blob a running build is about to record a result for.
func LockShared(ctx context.Context, path string) (unlock func() error, err error) {
	return lockWait(ctx, path, unix.LOCK_SH)
}

// lockWait takes a flock of mode (LOCK_EX or LOCK_SH) on path, polling
// until it is free or ctx is done.
func lockWait(ctx context.Context, path string, mode int) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cas: lock %s: %w", path, context.Cause(ctx))
	}
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	wait := lockPollMin
	for {
		ok, err := tryFlock(f, mode)
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

// TryLock takes the lock Lock takes if it is free; ok is false (and err nil)
// when someone else holds it.
func TryLock(path string) (unlock func() error, ok bool, err error) {
	return tryLock(path, unix.LOCK_EX)
}

// TryLockShared takes the lock LockShared takes if no one holds it
// exclusively; ok is false (and err nil) when someone does.
func TryLockShared(path string) (unlock func() error, ok bool, err error) {
	return tryLock(path, unix.LOCK_SH)
}

func tryLock(path string, mode int) (unlock func() error, ok bool, err error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, false, err
	}
	ok, err = tryFlock(f, mode)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("cas: lock %s: %w", path, err)
		}
		return nil, false, nil
	}
	return unlocker(f), true, nil
}

func openLockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cas: lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cas: lock %s: %w", path, err)
	}
	return f, nil
}

// tryFlock attempts a non-blocking flock of mode (LOCK_EX, LOCK_SH) on f.
func tryFlock(f *os.File, mode int) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), mode|unix.LOCK_NB)
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

// unlocker returns a function releasing the lock held on f; calling it again
// does nothing.
func unlocker(f *os.File) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			err = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		})
		return err
	}
}
