package actors

import (
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// benchInFlight is how many requests BenchmarkGrants1000InFlight keeps
// outstanding.
const benchInFlight = 1000

// benchWaiters is how many requests BenchmarkBytesPerWaiter queues.
const benchWaiters = 100_000

// benchHugeLimit is a limit no benchmark reaches: a billion per second,
// with a burst as large.
func benchHugeLimit() *messages.Limit {
	return &messages.Limit{Rate: 1e9, Burst: 1e9, PerNanos: int64(time.Second),
		Mode: messages.Mode_MODE_LEAKY_BUCKET}
}

// benchTinyLimit is a limit of one per hour: after the first grant,
// everybody waits for as long as a benchmark lasts.
func benchTinyLimit() *messages.Limit {
	return &messages.Limit{Rate: 1, Burst: 1, PerNanos: int64(time.Hour),
		Mode: messages.Mode_MODE_LEAKY_BUCKET}
}

// benchSystem returns a quiet actor system whose timer actor, if a bucket
// started one, is stopped when b ends.
func benchSystem(b *testing.B) *actor.ActorSystem {
	sys := newSystem()
	b.Cleanup(func() { benchStop(b, sys, Timer(sys)) })

	return sys
}

// benchStop stops pid and waits until it has stopped.
func benchStop(b *testing.B, sys *actor.ActorSystem, pid *actor.PID) {
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		b.Fatalf("stopping %s: %v", pid.GetId(), err)
	}
}

// benchSpawnBucket spawns a bucket with limit l.
func benchSpawnBucket(b *testing.B, sys *actor.ActorSystem, l *messages.Limit) *actor.PID {
	props, err := BucketProps(BucketSpec{Limit: l})
	if err != nil {
		b.Fatal(err)
	}

	return sys.Root.Spawn(props)
}

// benchLoad is an actor that keeps benchInFlight Acquires outstanding at
// target, sending a new one for each Granted, until total have been
// granted; then it closes done. A Rejected ends it early, in failure.
type benchLoad struct {
	target  *actor.PID
	total   int
	sent    int
	granted int
	failure *messages.Rejected
	done    chan struct{}
}

// Receive is the actor's behaviour.
func (l *benchLoad) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for l.sent < min(benchInFlight, l.total) {
			l.send(ctx)
		}
	case *messages.Granted:
		l.granted++
		if l.sent < l.total {
			l.send(ctx)
		}
		if l.granted == l.total {
			close(l.done)
		}
	case *messages.Rejected:
		if l.failure == nil {
			l.failure = m
			close(l.done)
		}
	}
}

// send sends the next Acquire, with the next request id.
func (l *benchLoad) send(ctx actor.Context) {
	l.sent++
	ctx.Request(l.target, &messages.Acquire{RequestId: uint64(l.sent), Amount: 1})
}

// benchGrantAll is an actor that grants every Acquire at once, as a bucket
// with nothing to count would: protoactor's raw request/response.
func benchGrantAll(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Acquire); ok {
		ctx.Respond(&messages.Granted{RequestId: m.GetRequestId()})
	}
}

// BenchmarkGrants1000InFlight measures a grant when one actor keeps 1000
// requests in flight, to a bucket and to an actor that grants everything.
func BenchmarkGrants1000InFlight(b *testing.B) {
	targets := []struct {
		name  string
		props func(b *testing.B) *actor.Props
	}{
		{"drip", benchHugeBucket},
		{"protoactor-raw", benchGrantAllProps},
	}

	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			sys := benchSystem(b)
			target := sys.Root.Spawn(tg.props(b))
			b.Cleanup(func() { benchStop(b, sys, target) })

			benchGrants(b, sys, target)
		})
	}
}

// benchHugeBucket returns the props of a bucket that never makes anyone
// wait.
func benchHugeBucket(b *testing.B) *actor.Props {
	props, err := BucketProps(BucketSpec{Limit: benchHugeLimit()})
	if err != nil {
		b.Fatal(err)
	}

	return props
}

// benchGrantAllProps returns the props of a benchGrantAll actor.
func benchGrantAllProps(*testing.B) *actor.Props {
	return actor.PropsFromFunc(benchGrantAll)
}

// benchGrants runs b.N grants from target through a benchLoad actor.
func benchGrants(b *testing.B, sys *actor.ActorSystem, target *actor.PID) {
	l := &benchLoad{target: target, total: b.N, done: make(chan struct{})}
	b.ReportAllocs()

	b.ResetTimer()
	load := sys.Root.Spawn(actor.PropsFromFunc(l.Receive))
	<-l.done
	b.StopTimer()

	benchStop(b, sys, load)
	if l.failure != nil {
		b.Fatalf("request %d rejected: %s", l.failure.GetRequestId(), l.failure.GetDetail())
	}
}

// benchBurstID is the request id of the Acquire that empties a bucket
// before its waiters are queued; they have ids 1 to benchWaiters.
const benchBurstID = benchWaiters + 1

// BenchmarkBytesPerWaiter measures the heap a queued Acquire holds in a
// bucket: in the pure core alone, and in a bucket actor, which adds what
// its mailbox keeps after taking in a burst of benchWaiters requests. Each
// op queues benchWaiters requests in a new bucket.
func BenchmarkBytesPerWaiter(b *testing.B) {
	b.Run("core", func(b *testing.B) {
		benchPerWaiter(b, benchCoreQueue)
	})
	b.Run("actor", func(b *testing.B) {
		sys := benchSystem(b)
		in := newInbox(sys, "bench-waiter-inbox")
		b.Cleanup(func() { sys.ProcessRegistry.Remove(in.pid) })

		benchPerWaiter(b, func(b *testing.B) (fill, empty func()) {
			return benchActorQueue(b, sys, in)
		})
	})
}

// benchPerWaiter prepares a bucket b.N times and reports the heap that
// filling its queue took per waiter. fill queues benchWaiters requests;
// empty lets them go.
func benchPerWaiter(b *testing.B, prepare func(b *testing.B) (fill, empty func())) {
	b.ReportAllocs()
	var bytes float64

	for range b.N {
		fill, empty := prepare(b)
		heap := benchHeap()
		fill()
		bytes += float64(benchHeap() - heap)
		empty()
	}

	b.ReportMetric(bytes/float64(b.N*benchWaiters), "bytes/waiter")
}

// benchCoreQueue returns a core with an empty bucket, and how to queue
// benchWaiters Acquires from one sender in it.
func benchCoreQueue(b *testing.B) (fill, empty func()) {
	c, err := newCore(benchTinyLimit(), 0, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	sender := actor.NewPID("bench", "sender")
	c.acquire(0, sender, &messages.Acquire{RequestId: benchBurstID, Amount: 1})

	fill = func() {
		for id := range uint64(benchWaiters) {
			c.acquire(0, sender, &messages.Acquire{RequestId: id + 1, Amount: 1})
		}
		if n := c.queue.len(); n != benchWaiters {
			b.Fatalf("%d waiting, want %d", n, benchWaiters)
		}
	}

	return fill, func() { runtime.KeepAlive(c) }
}

// benchActorQueue spawns a bucket with an empty bucket, and returns how to
// queue benchWaiters Acquires from in at it and how to stop it.
func benchActorQueue(b *testing.B, sys *actor.ActorSystem, in *inbox) (fill, empty func()) {
	bucket := benchSpawnBucket(b, sys, benchTinyLimit())
	burst := &messages.Acquire{RequestId: benchBurstID, Amount: 1}
	sys.Root.RequestWithCustomSender(bucket, burst, in.pid)
	if m, ok := (<-in.got).(*messages.Granted); !ok {
		b.Fatalf("got %v, want a grant", m)
	}

	fill = func() {
		for id := range uint64(benchWaiters) {
			m := &messages.Acquire{RequestId: id + 1, Amount: 1}
			sys.Root.RequestWithCustomSender(bucket, m, in.pid)
		}
		if n := benchStatus(b, sys, bucket, in).GetQueued(); n != benchWaiters {
			b.Fatalf("%d waiting, want %d", n, benchWaiters)
		}
	}

	return fill, func() { benchStopBucket(b, sys, bucket, in) }
}

// benchStatus asks bucket for its status on behalf of in, which must have
// received everything else it was sent.
func benchStatus(b *testing.B, sys *actor.ActorSystem, bucket *actor.PID,
	in *inbox) *messages.Status {
	sys.Root.RequestWithCustomSender(bucket, &messages.GetStatus{}, in.pid)

	m := <-in.got
	st, ok := m.(*messages.Status)
	if !ok {
		b.Fatalf("got %v, want a status", m)
	}

	return st
}

// benchStopBucket stops bucket on behalf of in, taking out of in every
// rejection of a waiter as it comes, so that the bucket never blocks on a
// full inbox.
func benchStopBucket(b *testing.B, sys *actor.ActorSystem, bucket *actor.PID, in *inbox) {
	sys.Root.RequestWithCustomSender(bucket, &messages.Stop{}, in.pid)

	rejected := 0
	for m := range in.got {
		if _, ok := m.(*messages.Status); ok {
			break
		}
		rejected++
	}
	if rejected != benchWaiters {
		b.Fatalf("%d waiters told of the stop, want %d", rejected, benchWaiters)
	}

	benchStop(b, sys, bucket)
}

// benchHeap returns the live heap. It collects twice: what sync.Pools hold
// survives one collection.
func benchHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)

	return int64(m.HeapAlloc)
}
