package history

import (
	"context"
	"testing"
)

// A new scope seeded from another starts from its heads: its first run
// reports the other scope's entries as previous (a new branch compared
// with the default branch), in the same database or from another tier's.
func TestSeedHistory(t *testing.T) {
	ctx := context.Background()
	for _, cross := range []bool{false, true} {
		db := newDB(t)
		from := db
		if cross {
			from = newDB(t)
		}
		base, err := RecordRun(ctx, from, "repo@main", "test //...", 10, []StageRecord{stageRec("//a:x", "v1", StageBuilt)})
		if err != nil {
			t.Fatal(err)
		}
		// Unseeded: nothing before.
		r, err := RecordRun(ctx, db, "repo@other", "test //...", 10, []StageRecord{stageRec("//a:x", "v2", StageBuilt)})
		if err != nil || r.Previous["//a:x"] != nil {
			t.Fatalf("cross %v: an unseeded scope has previous %+v (%v)", cross, r.Previous["//a:x"], err)
		}
		if err := SeedHistory(ctx, db, "repo@topic", from, "repo@main"); err != nil {
			t.Fatal(err)
		}
		r, err = RecordRun(ctx, db, "repo@topic", "test //...", 10, []StageRecord{stageRec("//a:x", "v2", StageBuilt)})
		if err != nil {
			t.Fatal(err)
		}
		prev := r.Previous["//a:x"]
		if prev == nil || prev.Key != stageRec("", "v1", 0).Key || prev.Run != base.ID {
			t.Fatalf("cross %v: seeded scope's previous %+v, want main's v1 entry of run %d", cross, prev, base.ID)
		}
		// A scope with history keeps its own.
		if err := SeedHistory(ctx, db, "repo@topic", from, "repo@main"); err != nil {
			t.Fatal(err)
		}
		r, err = RecordRun(ctx, db, "repo@topic", "test //...", 10, []StageRecord{stageRec("//a:x", "v3", StageBuilt)})
		if err != nil {
			t.Fatal(err)
		}
		if prev := r.Previous["//a:x"]; prev == nil || prev.Key != stageRec("", "v2", 0).Key {
			t.Errorf("cross %v: a second seed replaced the scope's own history: previous %+v", cross, prev)
		}
		// A base without history seeds nothing.
		if err := SeedHistory(ctx, db, "repo@new", from, "repo@none"); err != nil {
			t.Fatal(err)
		}
		r, err = RecordRun(ctx, db, "repo@new", "test //...", 10, []StageRecord{stageRec("//a:x", "v2", StageBuilt)})
		if err != nil || r.Previous["//a:x"] != nil {
			t.Errorf("cross %v: seeded from a scope without history: previous %+v (%v)", cross, r.Previous["//a:x"], err)
		}
	}
}
