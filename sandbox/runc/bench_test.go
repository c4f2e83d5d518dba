package runc

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkRunTrue measures what a container costs: `true` in the busybox
// image, with the mounts of a stage. median-ms is the median of the runs.
func BenchmarkRunTrue(b *testing.B) {
	rt := needRunc(b)
	rootfs := busyboxRootfs(b)
	ws, cache := b.TempDir(), b.TempDir()
	state := b.TempDir()
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		spec := baseSpec(b, rootfs, "/bin/true")
		spec.Mounts = []Mount{{Source: ws, Dest: "/mc/ws"}, {Source: cache, Dest: "/mc/cache/go"}}
		start := time.Now()
		code, err := rt.Run(context.Background(), spec, state, nil)
		times = append(times, time.Since(start))
		if err != nil || code != 0 {
			b.Fatalf("Run = %d, %v", code, err)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}
