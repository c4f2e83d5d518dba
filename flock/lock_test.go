package flock

import (
	"bufio"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "dir", "lock") // parents are created
	unlock, ok, err := TryLock(p)
	if err != nil || !ok {
		t.Fatalf("TryLock free = %v, %v", ok, err)
	}
	// Held: another attempt, even from this process, fails without waiting.
	if u2, ok, err := TryLock(p); err != nil || ok {
		if u2 != nil {
			u2()
		}
		t.Fatalf("TryLock held = %v, %v; want false, nil", ok, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock = %v, want nil", err)
	}
	unlock, ok, err = TryLock(p)
	if err != nil || !ok {
		t.Fatalf("TryLock after unlock = %v, %v", ok, err)
	}
	unlock()
}

func TestLockWaits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	const hold = 150 * time.Millisecond
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(hold)
		released <- time.Now()
		unlock()
	}()
	start := time.Now()
	unlock2, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock2()
	got := time.Now()
	if at := <-released; got.Before(at) {
		t.Errorf("Lock returned %v before the holder released it", at.Sub(got))
	}
	if waited := got.Sub(start); waited > hold+time.Second {
		t.Errorf("Lock took %v after release", waited-hold)
	}
}

func TestLockContext(t *testing.T) {
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
			u, err := Lock(ctx, p)
			if !errors.Is(err, tt.want) {
				if u != nil {
					u()
				}
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	for _, how := range []string{"released", "killed"} {
		t.Run(how, func(t *testing.T) {
			cmd := helper(t, "lock", "MC_CAS_TEST_LOCK="+p)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
				t.Fatalf("helper said %q, %v", line, err)
			}
			if u, ok, err := TryLock(p); err != nil || ok {
				if u != nil {
					u()
				}
				t.Fatalf("TryLock while another process holds it = %v, %v", ok, err)
			}
			if how == "killed" {
				// The kernel drops the lock of a dead process.
				cmd.Process.Kill()
				cmd.Wait()
			} else {
				stdin.Close()
				if err := cmd.Wait(); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			unlock, err := Lock(ctx, p)
			if err != nil {
				t.Fatalf("Lock after the holder %s: %v", how, err)
			}
			unlock()
		})
	}
}
