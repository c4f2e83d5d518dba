package cachegc

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mc-build/mc/cas"
	"github.com/mc-build/mc/errkind"
	"github.com/mc-build/mc/history"
)

func TestCacheParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"10B", 10, true},
		{"1K", 1 << 10, true},
		{"500M", 500 << 20, true},
		{"500m", 500 << 20, true},
		{"500MB", 500 << 20, true},
		{"500MiB", 500 << 20, true},
		{"2G", 2 << 30, true},
		{"1.5G", 3 << 29, true},
		{" 3 T ", 3 << 40, true}, // surrounding space is ignored
		{"3  T", 0, false},
		{"3 T", 3 << 40, true},
		{"", 0, false},
		{"M", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1.G", 0, false},
		{"2P", 0, false},
		{"lots", 0, false},
		{"99999999T", 0, false}, // overflows int64
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestCacheFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{500 << 20, "500.0 MiB"},
		{2 << 30, "2.0 GiB"},
		{3 << 50, "3072.0 TiB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeRemote records the action keys deleted from it.
type fakeRemote struct {
	cas.Remote // the other methods are not called
	deleted    []cas.Digest
	fail       error
}

func (f *fakeRemote) String() string { return "fake://cache" }

func (f *fakeRemote) DeleteAction(ctx context.Context, key cas.Digest) error {
	if f.fail != nil {
		return f.fail
	}
	f.deleted = append(f.deleted, key)
	return nil
}

func TestCachePurgeResults(t *testing.T) {
	ctx := context.Background()
	newDB := func(t *testing.T) (*cas.DB, []cas.Digest) {
		db, err := cas.OpenDB(filepath.Join(t.TempDir(), "mc.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		var keys []cas.Digest
		for i, label := range []string{"//a:x", "//a:x", "//b:y"} {
			k := cas.FromBytes([]byte{byte(i)})
			keys = append(keys, k)
			r := &cas.ActionResult{Label: label, Outputs: []cas.Output{{Path: "o", Digest: cas.Empty}}}
			if err := db.RecordAction(ctx, "/ws", k, r); err != nil {
				t.Fatal(err)
			}
		}
		return db, keys
	}
	has := func(t *testing.T, db *cas.DB, k cas.Digest) bool {
		r, err := db.GetAction(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return r != nil
	}
	t.Run("local", func(t *testing.T) {
		db, keys := newDB(t)
		var res Purged
		if err := purgeResults(ctx, db, nil, []string{"//a:x", "//c:none"}, &res); err != nil {
			t.Fatal(err)
		}
		if has(t, db, keys[0]) || has(t, db, keys[1]) || !has(t, db, keys[2]) {
			t.Error("purging //a:x did not remove exactly its two results")
		}
		want := []PurgedLabel{{Label: "//a:x", Results: 2}, {Label: "//c:none", Note: "nothing cached"}}
		if !reflect.DeepEqual(res.Labels, want) || res.Results != 2 {
			t.Errorf("report = %+v, want %+v", res, want)
		}
	})
	t.Run("remote", func(t *testing.T) {
		db, keys := newDB(t)
		// The history knows a key of //b:y whose local result is gone: the
		// shared cache may still hold it.
		gone := cas.FromBytes([]byte("gone"))
		rec := history.StageRecord{Label: "//b:y", Key: gone, Status: history.StageBuilt,
			Parts: func() ([]byte, error) { return []byte("{}"), nil }}
		if _, err := history.RecordRun(ctx, db, "/ws", "build", 10, []history.StageRecord{rec}); err != nil {
			t.Fatal(err)
		}
		r := &fakeRemote{}
		var res Purged
		if err := purgeResults(ctx, db, r, []string{"//b:y"}, &res); err != nil {
			t.Fatal(err)
		}
		want := []cas.Digest{keys[2], gone}
		slices.SortFunc(want, func(a, b cas.Digest) int { return bytes.Compare(a[:], b[:]) })
		if !slices.Equal(r.deleted, want) {
			t.Errorf("deleted remotely %v, want %v", r.deleted, want)
		}
		if has(t, db, keys[2]) || !has(t, db, keys[0]) {
			t.Error("the local result of //b:y was not purged, or another was")
		}
		if res.RemoteDeleted != 2 || res.Labels[0].Remote != 2 || res.Labels[0].Results != 1 {
			t.Errorf("report = %+v", res)
		}
	})
	t.Run("remote failure is infrastructure", func(t *testing.T) {
		db, _ := newDB(t)
		var res Purged
		err := purgeResults(ctx, db, &fakeRemote{fail: errors.New("unreachable")}, []string{"//a:x"}, &res)
		var ie *errkind.InfraError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "fake://cache") {
			t.Errorf("err = %v, want an infraError naming the remote", err)
		}
	})
}
