package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/mc-build/mc/cas"
)

type testParts struct {
	Cmd string `json:"cmd"`
}

func stageRec(label, cmd string, st StageStatus) StageRecord {
	p := testParts{Cmd: cmd}
	b, _ := json.Marshal(p)
	r := StageRecord{Label: label, Key: cas.FromBytes(b), Parts: func() ([]byte, error) { return b, nil }, Status: st}
	if st == StageBuilt {
		r.Outputs = []cas.Output{{Path: "out/" + cmd, Digest: cas.FromBytes([]byte(cmd)), Size: int64(len(cmd))}}
	}
	return r
}

func keysOf(m map[string]*StageEntry) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestRecordRunHistory(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const ws = "/ws"
	record := func(keep int, stages ...StageRecord) *RecordedRun {
		t.Helper()
		r, err := RecordRun(ctx, db, ws, "build //...", keep, stages)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r1 := record(3, stageRec("//a:x", "v1", StageBuilt), stageRec("//a:y", "y1", StageBuilt))
	if got := keysOf(r1.Previous); !reflect.DeepEqual(got, []string{"//a:x", "//a:y"}) || r1.Previous["//a:x"] != nil {
		t.Fatalf("first run: previous = %v (x: %+v), want both labels with no previous entry", got, r1.Previous["//a:x"])
	}

	t.Run("a repeated cache hit writes nothing", func(t *testing.T) {
		r := record(3, stageRec("//a:x", "v1", StageCached), stageRec("//a:y", "y1", StageCached))
		if len(r.Previous) != 0 {
			t.Errorf("previous = %v, want no new entries", keysOf(r.Previous))
		}
		if r.ID <= r1.ID {
			t.Errorf("run id %d after %d", r.ID, r1.ID)
		}
		h, err := StageHistory(ctx, db, ws, "//a:x", 10)
		if err != nil || len(h) != 1 {
			t.Fatalf("history = %+v, %v; want the one built entry", h, err)
		}
		if h[0].Run != r1.ID || h[0].Status != StageBuilt || h[0].BuiltBy != r1.ID || len(h[0].Outputs) != 1 {
			t.Errorf("entry = %+v", h[0])
		}
	})

	t.Run("a changed key gets an entry and reports the previous one", func(t *testing.T) {
		r := record(3, stageRec("//a:x", "v2", StageBuilt), stageRec("//a:y", "y1", StageCached))
		prev := r.Previous["//a:x"]
		if prev == nil || prev.Key != stageRec("", "v1", 0).Key || prev.Run != r1.ID || prev.Status != StageBuilt {
			t.Fatalf("previous of //a:x = %+v", prev)
		}
		if _, ok := r.Previous["//a:y"]; ok {
			t.Error("//a:y was an unchanged cache hit: no entry expected")
		}
		b, err := KeyParts(ctx, db, stageRec("", "v2", 0).Key)
		if err != nil || string(b) != `{"cmd":"v2"}` {
			t.Errorf("parts = %s, %v", b, err)
		}
	})

	t.Run("a cache hit of an older key names the run that built it", func(t *testing.T) {
		r := record(3, stageRec("//a:x", "v1", StageCached))
		if r.Previous["//a:x"] == nil {
			t.Fatal("no entry written for a cache hit of a different key")
		}
		h, _ := StageHistory(ctx, db, ws, "//a:x", 1)
		if len(h) != 1 || h[0].Status != StageCached || h[0].BuiltBy != r1.ID || h[0].Run != r.ID {
			t.Errorf("newest entry = %+v, want cached, built by run %d", h, r1.ID)
		}
	})

	t.Run("failures are recorded, and a later hit of that key too", func(t *testing.T) {
		record(3, stageRec("//a:y", "y2", StageFailed))
		r := record(3, stageRec("//a:y", "y2", StageCached))
		if r.Previous["//a:y"] == nil || r.Previous["//a:y"].Status != StageFailed {
			t.Errorf("previous = %+v, want the failed entry", r.Previous["//a:y"])
		}
	})

	t.Run("only the last keep entries stay, with their preimages", func(t *testing.T) {
		for i := 3; i <= 6; i++ {
			record(2, stageRec("//a:x", fmt.Sprintf("v%d", i), StageBuilt))
		}
		h, err := StageHistory(ctx, db, ws, "//a:x", 100)
		if err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, e := range h {
			b, _ := KeyParts(ctx, db, e.Key)
			var p testParts
			json.Unmarshal(b, &p)
			cmds = append(cmds, p.Cmd)
		}
		if !reflect.DeepEqual(cmds, []string{"v6", "v5"}) {
			t.Errorf("history (newest first) = %q, want [v6 v5]", cmds)
		}
		if b, _ := KeyParts(ctx, db, stageRec("", "v3", 0).Key); b != nil {
			t.Error("the preimage of a pruned entry is still stored")
		}
		// v1 is still the key of //a:x's pruned entries only: gone too.
		if b, _ := KeyParts(ctx, db, stageRec("", "v1", 0).Key); b != nil {
			t.Error("the preimage of v1 is still stored")
		}
		if b, _ := KeyParts(ctx, db, stageRec("", "y1", 0).Key); b == nil {
			t.Error("the preimage of another label's entry was deleted")
		}
	})
}

func TestRecordRunScopesAndBuiltBy(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r1, err := RecordRun(ctx, db, "/clone1", "build //...", 10, []StageRecord{stageRec("//a:x", "v1", StageBuilt)})
	if err != nil {
		t.Fatal(err)
	}
	// The same key is a cache hit in another clone: it was built by clone1's run.
	r2, err := RecordRun(ctx, db, "/clone2", "build //a:x", 10, []StageRecord{stageRec("//a:x", "v1", StageCached)})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Previous["//a:x"] != nil {
		t.Errorf("clone2 has no history yet, got previous %+v", r2.Previous["//a:x"])
	}
	h, err := StageHistory(ctx, db, "/clone2", "//a:x", 10)
	if err != nil || len(h) != 1 || h[0].BuiltBy != r1.ID {
		t.Fatalf("clone2 history = %+v, %v; want one entry built by run %d", h, err, r1.ID)
	}
	by, err := BuiltBy(ctx, db, stageRec("", "v1", 0).Key)
	if err != nil || by == nil || by.Scope != "/clone1" || by.Run != r1.ID {
		t.Errorf("BuiltBy = %+v, %v", by, err)
	}
	if by, err := BuiltBy(ctx, db, cas.FromBytes([]byte("never"))); by != nil || err != nil {
		t.Errorf("BuiltBy(unknown) = %+v, %v; want nil, nil", by, err)
	}
	run, err := Run(ctx, db, r2.ID)
	if err != nil || run == nil || run.Scope != "/clone2" || run.Command != "build //a:x" || time.Since(run.Started) > time.Minute {
		t.Errorf("Run = %+v, %v", run, err)
	}
	if run, err := Run(ctx, db, 9999); run != nil || err != nil {
		t.Errorf("Run(unknown) = %+v, %v", run, err)
	}
}

func TestRecordRunDamagedHeads(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for _, v := range []string{"v1", "v2"} {
		if _, err := RecordRun(ctx, db, "/ws", "build", 10, []StageRecord{stageRec("//a:x", v, StageBuilt)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, blob := range [][]byte{{99}, {headsFormat, 200}} {
		if _, err := db.SQL().Exec("UPDATE history_scopes SET heads = ?", blob); err != nil {
			t.Fatal(err)
		}
		r, err := RecordRun(ctx, db, "/ws", "build", 10, []StageRecord{stageRec("//a:x", "v3"+string(blob), StageBuilt)})
		if err != nil {
			t.Fatalf("heads %v: %v", blob, err)
		}
		if prev := r.Previous["//a:x"]; prev == nil || prev.Seq < 2 {
			t.Errorf("heads %v: previous = %+v, want the newest entry found from the entries", blob, prev)
		}
	}
	h, _ := StageHistory(ctx, db, "/ws", "//a:x", 10)
	if len(h) != 4 || h[0].Seq != 4 {
		t.Errorf("history = %d entries, newest seq %d; want 4, 4", len(h), h[0].Seq)
	}
}

func TestRecordRunRejects(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cases := []struct {
		name   string
		keep   int
		stages []StageRecord
	}{
		{"keep zero", 0, nil},
		{"unencodable preimage", 10, []StageRecord{{Label: "//a:x", Key: cas.FromBytes(nil), Status: StageBuilt,
			Parts: func() ([]byte, error) { return nil, errors.New("cannot encode") }}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := RecordRun(ctx, db, "/ws", "build", c.keep, c.stages); err == nil {
				t.Fatal("no error")
			}
			// Nothing of a failed call is kept.
			if h, _ := StageHistory(ctx, db, "/ws", "//a:x", 10); len(h) != 0 {
				t.Errorf("history after a failed record: %+v", h)
			}
		})
	}
}

// BenchmarkRecordNullBuild measures what a null build of 10,000 stages
// costs: "repeat" is the same build again (the stage-set shortcut), "other"
// follows a run of a different set of stages, so every label's newest
// entry is read (and nothing written).
func BenchmarkRecordNullBuild(b *testing.B) {
	ctx := context.Background()
	db, err := cas.OpenDB(b.TempDir() + "/mc.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var stages []StageRecord
	for i := range 10000 {
		stages = append(stages, stageRec(fmt.Sprintf("//pkg%04d:s%02d", i/10, i%10), fmt.Sprint(i), StageBuilt))
	}
	if _, err := RecordRun(ctx, db, "/ws", "build //...", 10, stages); err != nil {
		b.Fatal(err)
	}
	for i := range stages {
		stages[i].Status = StageCached
	}
	one := stages[:1]
	b.Run("repeat", func(b *testing.B) {
		for range b.N {
			if _, err := RecordRun(ctx, db, "/ws", "build //...", 10, stages); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("other", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if _, err := RecordRun(ctx, db, "/ws", "build //pkg0000:s00", 10, one); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			r, err := RecordRun(ctx, db, "/ws", "build //...", 10, stages)
			if err != nil || len(r.Previous) != 0 {
				b.Fatal(err, len(r.Previous))
			}
		}
	})
}

// benchParts has the shape and size of a stage's key preimage
// (graph.KeyParts): a command, env, outs and a few inputs.
type benchParts struct {
	Package  string            `json:"package"`
	Cmds     []string          `json:"cmds"`
	Env      map[string]string `json:"env"`
	Platform string            `json:"platform"`
	Outs     []string          `json:"outs"`
	Network  bool              `json:"network"`
	Inputs   []cas.Output      `json:"inputs"`
}

func benchStages(n int, salt string, st StageStatus) []StageRecord {
	stages := make([]StageRecord, n)
	for i := range stages {
		pkg := fmt.Sprintf("pkg%04d", i/10)
		p := benchParts{Package: pkg, Cmds: []string{"cat src/s.txt ../pkg0001/out/s05.txt | md5sum > out/s.txt"},
			Env: map[string]string{"A": "1"}, Platform: "linux/amd64", Outs: []string{"out/s.txt"}, Network: true}
		for j := range 4 {
			p.Inputs = append(p.Inputs, cas.Output{Path: fmt.Sprintf("%s/src/s%02d.txt", pkg, j), Digest: cas.FromBytes([]byte(fmt.Sprint(salt, i, j)))})
		}
		b, _ := json.Marshal(p) // encoded ahead: the benchmarks measure the database
		stages[i] = StageRecord{Label: fmt.Sprintf("//%s:s%02d", pkg, i%10), Key: cas.FromBytes(b), Status: st,
			Parts:   func() ([]byte, error) { return b, nil },
			Outputs: []cas.Output{{Path: pkg + "/out/s.txt", Digest: cas.FromBytes(b[:10]), Size: 33}}}
	}
	return stages
}

// BenchmarkRecordBuild measures recording 10,000 stages that all need an
// entry: "first" is the first build with history (every stage a cache hit
// of a key never recorded), "rebuild" a build where every key changed and
// each label's oldest entry is pruned (keep 2).
func BenchmarkRecordBuild(b *testing.B) {
	ctx := context.Background()
	b.Run("first", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			db, err := cas.OpenDB(b.TempDir() + "/mc.db")
			if err != nil {
				b.Fatal(err)
			}
			stages := benchStages(10000, "", StageCached)
			b.StartTimer()
			if _, err := RecordRun(ctx, db, "/ws", "build //...", 10, stages); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
	})
	b.Run("rebuild", func(b *testing.B) {
		db, err := cas.OpenDB(b.TempDir() + "/mc.db")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for i := range 3 {
			if _, err := RecordRun(ctx, db, "/ws", "build //...", 2, benchStages(10000, fmt.Sprint("pre", i), StageBuilt)); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			stages := benchStages(10000, fmt.Sprint(i), StageBuilt)
			b.StartTimer()
			if _, err := RecordRun(ctx, db, "/ws", "build //...", 2, stages); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		var n int
		db.SQL().QueryRow("SELECT count(*) FROM stage_runs").Scan(&n)
		if n != 20000 {
			b.Fatalf("%d entries after rebuilds with keep 2, want 20000", n)
		}
	})
}
