package sched

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/event"
)

// readExec is fakeExec that uses its inputs as a real stage does: each is
// placed from the store (a hard link, as into a sandbox) and read, and
// the output is the command's first word followed by what was read. So an
// input that holds bad bytes shows in the output.
type readExec struct{ fakeExec }

func (r *readExec) Run(ctx context.Context, job *Job) (*Result, error) {
	r.mu.Lock()
	r.ran = append(r.ran, job.Label.String())
	r.mu.Unlock()
	var b strings.Builder
	b.WriteString(strings.Fields(job.Cmds[0])[0])
	dir, err := os.MkdirTemp("", "readexec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for i, in := range job.Inputs {
		dst := filepath.Join(dir, strings.Repeat("i", i+1))
		if in.Source != "" { // a source file, stored as the real executor does
			if err := r.store.PutFileExpect(in.Source, in.Digest); err != nil {
				return nil, err
			}
		}
		if err := r.store.Materialize(in.Digest, dst, false, true); err != nil {
			return nil, err
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n" + string(got))
	}
	var outs []cas.Output
	for _, o := range job.Outs {
		d, err := r.store.PutBytes([]byte(b.String()))
		if err != nil {
			return nil, err
		}
		outs = append(outs, cas.Output{Path: o, Digest: d, Size: int64(b.Len())})
	}
	return &Result{Outputs: outs}, nil
}

// A dependency's output blob goes bad while the build runs, after the
// dependency was found cached and before its dependent starts: the
// dependent must not be built from the bad bytes; the dependency runs again
// (a rewind), the dependent gets its good output, and the next build is
// all cached. The positive control switches verification off: the same
// attack then reaches the dependent's output, so the test can fail.
func TestRewindLocalBlobGoneBad(t *testing.T) {
	attacks := map[string]func(t *testing.T, p string){
		// A new inode of the same size: caught by the inode.
		"replaced": func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p+".x", bytes.Repeat([]byte("X"), int(fi.Size())), 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p+".x", p); err != nil {
				t.Fatal(err)
			}
		},
		// Written through the same inode (root ignores the read-only
		// mode): caught by the mtime the write moves.
		"written in place": func(t *testing.T, p string) {
			time.Sleep(10 * time.Millisecond) // a later mtime tick than the blob's
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("X"), 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
		},
	}
	for name, attack := range attacks {
		for _, verify := range []bool{true, false} {
			t.Run(name+map[bool]string{true: "", false: "/positive control"}[verify], func(t *testing.T) {
				h := newSchedHarness(t)
				re := &readExec{fakeExec{store: h.store}}
				h.exec = nil
				a := h.add("a", "A", "1")
				b := h.add("b", "B", "2", "a")
				runWith := func() *Report {
					t.Helper()
					sc, err := h.db.StatCache(context.Background(), h.root)
					if err != nil {
						t.Fatal(err)
					}
					rep, err := Run(context.Background(), h.ag, Options{
						Root: h.root, Scope: h.root, Jobs: 2, Platform: "test",
						Store: h.store, DB: h.db, Files: sc, Executor: re,
						Sink:   event.SinkFunc(func(event.Event) {}),
						Getenv: func(string) (string, bool) { return "", false },
						Done:   h.done,
					})
					if err != nil {
						t.Fatal(err)
					}
					return rep
				}
				first := runWith()
				good := h.store.Path(first.Outcomes[a].Result.Outputs[0].Digest)
				want, err := os.ReadFile(good)
				if err != nil {
					t.Fatal(err)
				}
				if !verify {
					h.store.SkipVerifyForTesting()
				}
				// //p:b changes (a miss); //p:a is a hit whose blob goes bad
				// as it finishes, before //p:b is released.
				b.Target.Cmds = []string{"B2"}
				h.done = func(x *Action, o *Outcome) {
					if x == a {
						attack(t, good)
					}
				}
				re.ran = nil
				rep := runWith()
				h.done = nil
				if rep.Outcomes[b].Result == nil {
					t.Fatalf("//p:b did not build: %v", rep.Outcomes[b].Err)
				}
				out, err := os.ReadFile(h.store.Path(rep.Outcomes[b].Result.Outputs[0].Digest))
				if err != nil {
					t.Fatal(err)
				}
				usedGood := bytes.Contains(out, want)
				if !verify {
					if usedGood {
						t.Fatalf("positive control: //p:b was built from the good bytes %q although verification was off: the attack did nothing", out)
					}
					return
				}
				if !usedGood || rep.Failed != 0 || rep.Built != 2 {
					t.Fatalf("//p:b built from %q (want it to hold %q); report: %d built, %d cached, %d failed; ran %v",
						out, want, rep.Built, rep.Cached, rep.Failed, re.ran)
				}
				if !slices.Equal(re.ran, []string{"//p:a", "//p:b"}) {
					t.Fatalf("ran %v, want //p:a again, then //p:b", re.ran)
				}
				re.ran = nil
				if rep := runWith(); rep.Cached != 2 || len(re.ran) != 0 {
					t.Fatalf("null build after: %d cached, ran %v", rep.Cached, re.ran)
				}
			})
		}
	}
}
