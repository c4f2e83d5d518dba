package history

import (
	"context"
	"testing"
)

func TestRecentRuns(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const ws = "/ws"
	record := func(stages ...StageRecord) int64 {
		t.Helper()
		rec, err := RecordRun(ctx, db, ws, "build //...", 10, stages)
		if err != nil {
			t.Fatal(err)
		}
		return rec.ID
	}
	// Run 1 builds a and b; run 2 is a null build; run 3 rebuilds a, with
	// counts recorded; run 4 fails b and is a hit of a's key from run 1
	// (a key other than a's last one); another workspace's run is not shown.
	r1 := record(stageRec("//p:a", "a1", StageBuilt), stageRec("//p:b", "b1", StageBuilt))
	r2 := record(stageRec("//p:a", "a1", StageCached), stageRec("//p:b", "b1", StageCached))
	r3 := record(stageRec("//p:a", "a2", StageBuilt), stageRec("//p:b", "b1", StageCached))
	if err := SetRunCounts(ctx, db, r3, RunCounts{Built: 1, Cached: 1}); err != nil {
		t.Fatal(err)
	}
	r4 := record(stageRec("//p:a", "a1", StageCached), stageRec("//p:b", "b2", StageFailed))
	if _, err := RecordRun(ctx, db, "/other", "build //...", 10, []StageRecord{stageRec("//p:a", "x", StageBuilt)}); err != nil {
		t.Fatal(err)
	}

	runs, err := RecentRuns(ctx, db, ws, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id    int64
		c     RunCounts
		exact bool
	}{
		{r4, RunCounts{Cached: 1, Failed: 1}, false},
		{r3, RunCounts{Built: 1, Cached: 1}, true},
		{r2, RunCounts{}, false}, // a null build leaves no entries
		{r1, RunCounts{Built: 2}, false},
	}
	if len(runs) != len(want) {
		t.Fatalf("got %d runs, want %d: %+v", len(runs), len(want), runs)
	}
	for i, w := range want {
		r := runs[i]
		if r.ID != w.id || r.RunCounts != w.c || r.Exact != w.exact || r.Command != "build //..." || r.Started.IsZero() {
			t.Errorf("run %d = %+v, want id %d, %+v, exact %v", i, r, w.id, w.c, w.exact)
		}
	}
	if runs, err := RecentRuns(ctx, db, ws, 2); err != nil || len(runs) != 2 || runs[0].ID != r4 {
		t.Errorf("limit 2: %+v, %v", runs, err)
	}
	if err := SetRunCounts(ctx, db, 999, RunCounts{}); err == nil {
		t.Error("SetRunCounts of an unknown run succeeded")
	}
}

func TestRunCountsHitRate(t *testing.T) {
	tests := []struct {
		c    RunCounts
		rate float64
		ok   bool
	}{
		{RunCounts{}, 0, false},
		{RunCounts{Cached: 3}, 1, true},
		{RunCounts{Built: 1, Cached: 3}, 0.75, true},
		{RunCounts{Built: 1, Cached: 1, Failed: 2}, 0.25, true},
	}
	for _, tt := range tests {
		if rate, ok := tt.c.HitRate(); rate != tt.rate || ok != tt.ok {
			t.Errorf("%+v.HitRate() = %v, %v; want %v, %v", tt.c, rate, ok, tt.rate, tt.ok)
		}
	}
}
