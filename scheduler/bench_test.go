package scheduler_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// The benchmarks below put drip side by side with its peers in one run, so
// that the numbers are read as ratios on the same machine and load:
//
//	go test -run '^$' -bench 'Acquire|Bytes' -benchmem ./scheduler
//
// Every limit here is so high that nobody ever waits: they measure the
// cost of asking, not the rate.

// neverWaits is a drip limit no benchmark can reach: a billion per second,
// with a burst as large.
var neverWaits = scheduler.Limit{Rate: 1e9, Burst: 1e9}

// benchSystem returns a quiet actor system whose timer actor, if a bucket
// started one, is stopped when b ends, so goleak finds nothing after a run.
func benchSystem(b *testing.B) *actor.ActorSystem {
	sys := newSystem()
	b.Cleanup(func() { stopActor(b, sys, actors.Timer(sys)) })

	return sys
}

// stopActor stops pid and waits until it has stopped.
func stopActor(b *testing.B, sys *actor.ActorSystem, pid *actor.PID) {
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		b.Fatalf("stopping %s: %v", pid.GetId(), err)
	}
}

// peer is one way of asking for a unit: drip or a baseline. setup returns
// the call to time, which is safe for concurrent use; it registers its own
// cleanup.
type peer struct {
	name  string
	setup func(b *testing.B) func(ctx context.Context) error
}

var peers = []peer{
	{"drip", setupDrip},
	{"xrate", setupXRate},
	{"uber", setupUber},
	{"protoactor-future", setupFuture},
}

// setupDrip returns a Scheduler's Acquire.
func setupDrip(b *testing.B) func(ctx context.Context) error {
	s := newScheduler(b, benchSystem(b), neverWaits)

	return func(ctx context.Context) error { return s.Acquire(ctx, 1) }
}

// newScheduler returns a Scheduler with limit l that is stopped when b
// ends.
func newScheduler(b *testing.B, sys *actor.ActorSystem, l scheduler.Limit) *scheduler.Scheduler {
	s, err := scheduler.New(sys, l)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)

	return s
}

// setupXRate returns x/time/rate's WaitN on a limiter with drip's limit.
func setupXRate(*testing.B) func(ctx context.Context) error {
	lim := rate.NewLimiter(rate.Limit(neverWaits.Rate), int(neverWaits.Burst))

	return func(ctx context.Context) error { return lim.WaitN(ctx, 1) }
}

// setupUber returns uber's ratelimit Take at one request per nanosecond.
func setupUber(*testing.B) func(ctx context.Context) error {
	lim := ratelimit.New(int(neverWaits.Rate))

	return func(context.Context) error {
		lim.Take()
		return nil
	}
}

// setupFuture returns protoactor's own round trip: a future to an actor
// that answers each Acquire with a Granted, as a bucket that never waits
// would.
func setupFuture(b *testing.B) func(ctx context.Context) error {
	sys := benchSystem(b)
	echo := sys.Root.Spawn(actor.PropsFromFunc(grantAll))
	b.Cleanup(func() { stopActor(b, sys, echo) })

	return func(context.Context) error {
		f := sys.Root.RequestFuture(echo, &messages.Acquire{Amount: 1}, time.Second)
		reply, err := f.Result()
		if _, ok := reply.(*messages.Granted); !ok && err == nil {
			err = fmt.Errorf("unexpected reply %T", reply)
		}
		return err
	}
}

// grantAll is an actor that grants every Acquire at once.
func grantAll(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Acquire); ok {
		ctx.Respond(&messages.Granted{RequestId: m.GetRequestId()})
	}
}

// BenchmarkAcquire measures one unit asked and granted, with 1, 64 and 1024
// goroutines sharing one limiter.
func BenchmarkAcquire(b *testing.B) {
	for _, g := range []int{1, 64, 1024} {
		for _, p := range peers {
			b.Run(fmt.Sprintf("goroutines=%d/%s", g, p.name), func(b *testing.B) {
				op := p.setup(b)
				b.ReportAllocs()
				fanOut(b, g, op)
			})
		}
	}
}

// fanOut calls op b.N times in all, split as evenly as it goes among g
// goroutines, and times only the calls.
func fanOut(b *testing.B, g int, op func(ctx context.Context) error) {
	ctx := context.Background()
	start := make(chan struct{})
	errs := make(chan error, g) // each goroutine sends at most one

	var wg sync.WaitGroup
	for i := range g {
		n := b.N/g + btoi(i < b.N%g)
		wg.Go(func() {
			<-start
			for range n {
				if err := op(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()

	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// btoi returns 1 for true and 0 for false.
func btoi(v bool) int {
	if v {
		return 1
	}

	return 0
}

// BenchmarkAcquireLatency measures how long one uncontended Acquire takes,
// and reports the median and the 99th percentile.
func BenchmarkAcquireLatency(b *testing.B) {
	s := newScheduler(b, benchSystem(b), neverWaits)
	ctx := context.Background()
	took := make([]time.Duration, b.N)
	b.ReportAllocs()

	b.ResetTimer()
	for i := range took {
		start := time.Now()
		if err := s.Acquire(ctx, 1); err != nil {
			b.Fatal(err)
		}
		took[i] = time.Since(start)
	}
	b.StopTimer()

	slices.Sort(took)
	b.ReportMetric(micros(percentile(took, 0.50)), "p50-µs")
	b.ReportMetric(micros(percentile(took, 0.99)), "p99-µs")
}

// percentile returns the q-quantile of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1

	return sorted[max(i, 0)]
}

// micros returns d in microseconds.
func micros(d time.Duration) float64 {
	return float64(d) / float64(time.Microsecond)
}

// idleBuckets is how many idle buckets BenchmarkBytesPerIdleBucket makes.
const idleBuckets = 10_000

// BenchmarkBytesPerIdleBucket measures what an idle bucket costs in heap
// and goroutines, through the Go API and as a bare bucket actor (without
// the Scheduler's request actor). Each op makes idleBuckets buckets in a
// new actor system, so that the growth of its process registry counts,
// measures them and stops them.
func BenchmarkBytesPerIdleBucket(b *testing.B) {
	b.Run("scheduler.New", func(b *testing.B) {
		stop := func(_ *testing.B, _ *actor.ActorSystem, s *scheduler.Scheduler) { s.Stop() }
		measureIdle(b, idleScheduler, stop)
	})
	b.Run("bucket-actor", func(b *testing.B) {
		measureIdle(b, idleBucketActor, stopActor)
	})
}

// idleScheduler returns a started Scheduler that nobody uses.
func idleScheduler(b *testing.B, sys *actor.ActorSystem) *scheduler.Scheduler {
	s, err := scheduler.New(sys, neverWaits)
	if err != nil {
		b.Fatal(err)
	}

	// A round trip makes sure the bucket has started before it is counted.
	if _, err := s.Status(context.Background()); err != nil {
		b.Fatal(err)
	}

	return s
}

// idleBucketActor returns a started bucket actor that nobody uses.
func idleBucketActor(b *testing.B, sys *actor.ActorSystem) *actor.PID {
	l := &messages.Limit{Rate: neverWaits.Rate, Burst: neverWaits.Burst,
		PerNanos: int64(time.Second), Mode: messages.Mode_MODE_LEAKY_BUCKET}
	props, err := actors.BucketProps(actors.BucketSpec{Limit: l})
	if err != nil {
		b.Fatal(err)
	}
	pid := sys.Root.Spawn(props)

	// A round trip makes sure the bucket has started before it is counted.
	f := sys.Root.RequestFuture(pid, &messages.GetStatus{}, time.Second)
	if _, err := f.Result(); err != nil {
		b.Fatal(err)
	}

	return pid
}

// measureIdle makes idleBuckets buckets with spawn, b.N times, and reports
// the heap and goroutines each one holds. It stops them with stop.
func measureIdle[T any](b *testing.B, spawn func(*testing.B, *actor.ActorSystem) T,
	stop func(*testing.B, *actor.ActorSystem, T)) {
	b.ReportAllocs()
	kept := make([]T, idleBuckets) // allocated before measuring
	var bytes, goroutines int64

	for range b.N {
		sys := newSystem()
		heap, routines := heapInUse(), runtime.NumGoroutine()
		for i := range kept {
			kept[i] = spawn(b, sys)
		}
		bytes += heapInUse() - heap
		goroutines += int64(runtime.NumGoroutine() - routines)

		for _, k := range kept {
			stop(b, sys, k)
		}
		clear(kept)
		stopActor(b, sys, actors.Timer(sys))
	}

	n := float64(b.N * idleBuckets)
	b.ReportMetric(float64(bytes)/n, "bytes/bucket")
	b.ReportMetric(float64(goroutines)/n, "goroutines/bucket")
}

// heapInUse returns the live heap. It collects twice: what sync.Pools hold
// survives one collection, and a pool keeps the value it is part of alive
// until then.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)

	return int64(m.HeapAlloc)
}
