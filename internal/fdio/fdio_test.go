package fdio

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteAll(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20) // large enough that a pipe would take it in pieces
	for i := range want {
		want[i] = byte(i)
	}
	if err := WriteAll(fd, want); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(want) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(want))
	}
	if err := WriteAll(fd, []byte("x")); err == nil {
		t.Error("WriteAll on a closed descriptor succeeded")
	}
}
