package cas

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

func BenchmarkXLoad(b *testing.B) {
	ctx := context.Background()
	db, _ := OpenDB(filepath.Join(b.TempDir(), "x.db"))
	defer db.Close()
	tx, _ := db.SQL().Begin()
	for d := 0; d < 100; d++ {
		ents := map[string]statRow{}
		for i := 0; i < 100; i++ {
			ents[fmt.Sprint(d*100+i)] = statRow{}
		}
		tx.Exec("INSERT INTO stat (dir, ents) VALUES (?, ?)", filepath.Join("/tmp/TestSomethingLong/001/", fmt.Sprint(d)), packDir(ents))
	}
	tx.Commit()
	for b.Loop() {
		sc, _ := db.StatCache(ctx, "/tmp/TestSomethingLong")
		if len(sc.rows) != 10000 {
			b.Fatal(len(sc.rows))
		}
	}
}
