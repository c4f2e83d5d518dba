package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockSharedExclusion(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "sub", "gc.lock") // parents are created

	// Shared holders coexist, and keep an exclusive locker out.
	u1, err := LockShared(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	u2, ok, err := TryLockShared(p)
	if err != nil || !ok {
		t.Fatalf("second shared lock = %v, %v; want true, nil", ok, err)
	}
	if u, ok, err := TryLock(p); err != nil || ok {
		if u != nil {
			u()
		}
		t.Fatalf("TryLock while shared holders exist = %v, %v; want false, nil", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if u, err := Lock(short, p); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Fatalf("Lock while shared holders exist = %v, want a deadline error", err)
	}
	// One holder gone is not enough.
	if err := u1(); err != nil {
		t.Fatal(err)
	}
	if u, ok, _ := TryLock(p); ok {
		u()
		t.Fatal("TryLock succeeded while one shared holder remains")
	}
	if err := u2(); err != nil {
		t.Fatal(err)
	}
	if err := u2(); err != nil {
		t.Errorf("second unlock = %v, want nil", err)
	}

	// An exclusive holder keeps shared lockers out until it releases.
	ux, err := Lock(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok, err := TryLockShared(p); err != nil || ok {
		if u != nil {
			u()
		}
		t.Fatalf("TryLockShared while held exclusively = %v, %v; want false, nil", ok, err)
	}
	const hold = 150 * time.Millisecond
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(hold)
		released <- time.Now()
		ux()
	}()
	us, err := LockShared(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got := time.Now()
	if at := <-released; got.Before(at) {
		t.Errorf("LockShared returned %v before the exclusive holder released it", at.Sub(got))
	}
	us()
}

func TestLockSharedContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			u, err := LockShared(ctx, p)
			if !errors.Is(err, tt.want) {
				if u != nil {
					u()
				}
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
