package cas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const hammerRounds = 30

// bigContent is a deterministic blob of 256 KiB, several copy buffers long.
func bigContent(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), 1<<15)
}

// hammerContent is the i'th blob every hammer worker writes.
func hammerContent(i int) []byte {
	if i%3 == 0 {
		return bigContent(i)
	}
	return bytes.Repeat([]byte(fmt.Sprintf("blob %d\n", i)), i+1)
}

func hammerKey(i int) Digest { return FromBytes([]byte(fmt.Sprint("action ", i))) }

// hammer writes and reads the same blobs, trees, actions, KV entries and
// stat cache rows as every other worker, checking every answer. Workers run
// as goroutines and as separate processes against one store and database.
func hammer(ctx context.Context, storeDir, dbPath, shared string, worker int) error {
	s, err := OpenStore(storeDir)
	if err != nil {
		return err
	}
	db, err := OpenDB(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	private := filepath.Join(filepath.Dir(storeDir), fmt.Sprint("worker-", worker))
	if err := os.MkdirAll(private, 0o755); err != nil {
		return err
	}
	for i := range hammerRounds {
		c := hammerContent(i)
		want := FromBytes(c)
		if d, err := s.PutBytes(c); err != nil || d != want {
			return fmt.Errorf("round %d: PutBytes = %s, %v", i, d, err)
		}
		p := filepath.Join(private, fmt.Sprint(i))
		if err := os.WriteFile(p, c, 0o644); err != nil {
			return err
		}
		put := s.PutFile
		if i%2 == 0 {
			put = s.AdoptFile
		}
		if d, n, err := put(p); err != nil || d != want || n != int64(len(c)) {
			return fmt.Errorf("round %d: put file = %s, %d, %v", i, d, n, err)
		}
		if got, err := s.ReadBytes(want); err != nil || !bytes.Equal(got, c) {
			return fmt.Errorf("round %d: ReadBytes: %v", i, err)
		}
		m := filepath.Join(private, fmt.Sprint("m", i))
		if err := s.Materialize(want, m, false, true); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if got, err := os.ReadFile(m); err != nil || !bytes.Equal(got, c) {
			return fmt.Errorf("round %d: materialized content wrong: %v", i, err)
		}
		if i%10 == 0 {
			if err := hammerTree(s, private, i); err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
		}
		r := &ActionResult{
			Label:   fmt.Sprint("//w:", worker),
			Outputs: []Output{{Path: fmt.Sprint("out/", i), Digest: want, Size: int64(len(c))}},
			Created: time.Now(),
		}
		if err := db.PutAction(ctx, hammerKey(i), r); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if got, err := db.GetAction(ctx, hammerKey(i)); err != nil || got == nil || got.Outputs[0].Digest != want {
			return fmt.Errorf("round %d: GetAction = %+v, %v", i, got, err)
		}
		kv := c[:min(16, len(c))]
		if err := db.PutKV(ctx, "hammer", fmt.Sprint(i), kv); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if got, err := db.GetKV(ctx, "hammer", fmt.Sprint(i)); err != nil || !bytes.Equal(got, kv) {
			return fmt.Errorf("round %d: GetKV = %q, %v", i, got, err)
		}
	}
	sc, err := db.StatCache(ctx, shared)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(shared)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(shared, e.Name())
		fi, err := sc.Digest(p)
		if err != nil {
			return err
		}
		if fi.Digest != FromBytes([]byte(e.Name())) {
			return fmt.Errorf("stat cache: %s: wrong digest", p)
		}
	}
	return sc.Flush(ctx)
}

// hammerTree stores and materializes a tree every worker builds identically.
func hammerTree(s *Store, private string, i int) error {
	dir := filepath.Join(private, fmt.Sprint("tree", i))
	for j := range 5 {
		p := filepath.Join(dir, fmt.Sprint("d", j%2), fmt.Sprint("f", j))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "tree %d file %d", i, j), 0o644); err != nil {
			return err
		}
	}
	d, _, err := s.PutTree(dir, i%20 == 0)
	if err != nil {
		return err
	}
	dst := filepath.Join(private, fmt.Sprint("mat", i))
	if err := s.MaterializeTree(d, dst, false); err != nil {
		return err
	}
	got, err := os.ReadFile(filepath.Join(dst, "d1", "f3"))
	if err != nil || string(got) != fmt.Sprintf("tree %d file 3", i) {
		return fmt.Errorf("materialized tree: %q, %v", got, err)
	}
	return nil
}

// verifyAll checks every blob in the store against its name and returns how
// many there are.
func verifyAll(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(s.Dir(), func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			if de.Name() == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		d, err := Parse(de.Name())
		if err != nil {
			t.Errorf("stray file in store: %s", p)
			return nil
		}
		if p != s.Path(d) {
			t.Errorf("blob in the wrong place: %s", p)
		}
		if err := s.Verify(d); err != nil {
			t.Errorf("blob %s: %v", d.Short(), err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentGoroutinesAndProcesses(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	storeDir := filepath.Join(root, "store")
	dbPath := filepath.Join(root, "mc.db")
	shared := filepath.Join(root, "shared")
	for i := range 40 {
		oldFile(t, filepath.Join(shared, fmt.Sprint("src", i)), fmt.Sprint("src", i), 0o644)
	}
	env := []string{"MC_CAS_TEST_STORE=" + storeDir, "MC_CAS_TEST_DB=" + dbPath, "MC_CAS_TEST_SHARED=" + shared}

	var cmds []*exec.Cmd
	for w := range 2 {
		cmd := helper(t, "hammer", append(env, fmt.Sprint("MC_CAS_TEST_WORKER=", w))...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Go(func() { errs[g] = hammer(ctx, storeDir, dbPath, shared, 2+g) })
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", g, err)
		}
	}
	for w, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("process %d: %v", w, err)
		}
	}

	s, err := OpenStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	// hammerRounds blobs, 5 files of a tree every 10 rounds, and the trees.
	if n, want := verifyAll(t, s), hammerRounds+6*(hammerRounds/10); n != want {
		t.Errorf("%d blobs in the store, want %d", n, want)
	}
	assertNoTemps(t, s)
	db := openDBAt(t, dbPath)
	for i := range hammerRounds {
		r, err := db.GetAction(ctx, hammerKey(i))
		if err != nil || r == nil || r.Outputs[0].Digest != FromBytes(hammerContent(i)) {
			t.Errorf("action %d: %+v, %v", i, r, err)
		}
	}
	sc, hashes := countingCache(t, db, shared)
	for i := range 40 {
		digestOf(t, sc, filepath.Join(shared, fmt.Sprint("src", i)))
	}
	if hashes.Load() != 0 {
		t.Errorf("%d stat cache rows lost between concurrent flushes", hashes.Load())
	}
}

func TestConcurrentSameBlob(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	c := bigContent(7)
	want := FromBytes(c)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for k := range 5 {
				p := filepath.Join(dir, fmt.Sprint(g, "-", k))
				if err := os.WriteFile(p, c, 0o644); err != nil {
					errs <- err
					return
				}
				var d Digest
				var err error
				switch k % 3 {
				case 0:
					d, err = s.PutBytes(c)
				case 1:
					d, _, err = s.PutFile(p)
				case 2:
					d, _, err = s.AdoptFile(p)
				}
				if err != nil || d != want {
					errs <- fmt.Errorf("put: %s, %v", d, err)
				}
				if got, err := s.ReadBytes(want); err != nil || !bytes.Equal(got, c) {
					errs <- fmt.Errorf("read: %v", err)
				}
				if err := s.Materialize(want, filepath.Join(dir, "out"), false, k%2 == 0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := verifyAll(t, s); n != 1 {
		t.Errorf("%d blobs, want 1", n)
	}
	assertNoTemps(t, s)
}

func TestKilledWriterLeavesNoCorruptBlob(t *testing.T) {
	root := t.TempDir()
	storeDir := filepath.Join(root, "store")
	for round := range 3 {
		cmd := helper(t, "writer", "MC_CAS_TEST_STORE="+storeDir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "started\n" {
			t.Fatalf("helper said %q, %v", line, err)
		}
		time.Sleep(time.Duration(20+30*round) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		var ee interface{ ExitCode() int }
		if err := cmd.Wait(); !errors.As(err, &ee) {
			t.Fatalf("helper was not killed: %v", err)
		}
	}
	s, err := OpenStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if n := verifyAll(t, s); n == 0 {
		t.Error("killed writer stored nothing at all")
	}
	// What the killed writers left in tmp is cleaned once it is old.
	if err := s.cleanTemps(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	assertNoTemps(t, s)
}
