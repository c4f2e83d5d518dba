package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdBlob attacks a blob of a local store as root would, on the blob file
// itself (read-only mode does not stop root):
//
//	blob corrupt STOREDIR FILE   flip a byte of the blob holding FILE's
//	                             content, in place (same inode), and set its
//	                             mtime back: only its ctime shows the write
//	blob replace STOREDIR FILE   put garbage of the same size, mode and mtime
//	                             in its place (a new inode)
//
// STOREDIR is the store's directory (…/mc/cas).
func cmdBlob(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || args[0] != "corrupt" && args[0] != "replace" {
		ts.Fatalf("usage: blob corrupt|replace storedir file")
	}
	want, err := os.ReadFile(ts.MkAbs(args[2]))
	ts.Check(err)
	sum := sha256.Sum256(want)
	h := hex.EncodeToString(sum[:])
	p := filepath.Join(ts.MkAbs(args[1]), h[:2], h)
	fi, err := os.Stat(p)
	ts.Check(err)
	switch args[0] {
	case "corrupt":
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		ts.Check(err)
		_, err = f.WriteAt([]byte{want[0] ^ 0x20}, 0)
		ts.Check(err)
		ts.Check(f.Close())
	case "replace":
		tmp := p + ".garbage"
		ts.Check(os.WriteFile(tmp, bytes.Repeat([]byte{'x'}, int(fi.Size())), fi.Mode().Perm()))
		ts.Check(os.Chtimes(tmp, fi.ModTime(), fi.ModTime()))
		ts.Check(os.Rename(tmp, p))
	}
	ts.Check(os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	got, err := os.ReadFile(p)
	ts.Check(err)
	if bytes.Equal(got, want) {
		ts.Fatalf("blob %s: the attack changed nothing", h[:12])
	}
}

// cmdSha256 sets the variable VAR to the hex SHA-256 of FILE (a blob's
// name, locally and in the shared cache): sha256 FILE VAR.
func cmdSha256(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sha256 file var")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	sum := sha256.Sum256(b)
	ts.Setenv(args[1], hex.EncodeToString(sum[:]))
}
