package scheduler_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/dripsched/drip/scheduler"
)

// keyedIdleBuckets is how many keys BenchmarkKeyedIdleBuckets makes live.
const keyedIdleBuckets = 100_000

// keyedIdleTimeout must outlast making keyedIdleBuckets buckets, so that
// none has been passivated when they are measured.
const keyedIdleTimeout = 10 * time.Second

// BenchmarkKeyedIdleBuckets makes keyedIdleBuckets buckets in one Keyed,
// one per key, and reports the heap and goroutines each idle bucket holds
// (its actor, its registry entries and its wake-up at the timer), then
// waits until the idle timeout has passivated them all and reports the
// heap per bucket left behind.
//
//	go test -run '^$' -bench KeyedIdleBuckets -benchtime 1x ./scheduler
func BenchmarkKeyedIdleBuckets(b *testing.B) {
	keys := make([]string, keyedIdleBuckets) // allocated before measuring
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	var idle, left, goroutines int64

	for range b.N {
		sys := benchSystem(b)
		k, err := scheduler.NewKeyed(sys, scheduler.Rules{Default: &neverWaits},
			scheduler.WithIdleTimeout(keyedIdleTimeout))
		if err != nil {
			b.Fatal(err)
		}

		heap, routines := heapInUse(), runtime.NumGoroutine()
		makeBuckets(b, k, keys)
		idle += heapInUse() - heap
		goroutines += int64(runtime.NumGoroutine() - routines)
		if n := k.Buckets(); n != len(keys) {
			b.Fatalf("%d live buckets when measured, want %d: raise keyedIdleTimeout", n, len(keys))
		}

		waitPassivated(b, k)
		left += heapInUse() - heap
		k.Stop()
	}

	n := float64(b.N * keyedIdleBuckets)
	b.ReportMetric(float64(idle)/n, "bytes/bucket")
	b.ReportMetric(float64(goroutines)/n, "goroutines/bucket")
	b.ReportMetric(float64(left)/n, "bytes/bucket-passivated")
}

// makeBuckets makes the bucket of every key live with a Status round trip,
// which leaves it idle.
func makeBuckets(b testing.TB, k *scheduler.Keyed, keys []string) {
	ctx := context.Background()
	for _, key := range keys {
		if _, err := k.For(key).Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// waitPassivated waits until k has no live bucket.
func waitPassivated(b testing.TB, k *scheduler.Keyed) {
	deadline := time.Now().Add(keyedIdleTimeout + 30*time.Second)
	for k.Buckets() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d buckets still live long after the idle timeout", k.Buckets())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
