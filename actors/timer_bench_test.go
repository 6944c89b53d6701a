package actors

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// BenchmarkTimerWakeup measures the timer actor's own work per wake-up with
// n buckets waiting: one bucket's wake-up is moved (a ScheduleLeak that
// replaces the earlier one) and the earliest one taken off the heap and
// put back, as a fire and a bucket's next request do. Each is a heap
// operation, so the cost grows like log n; sending the Leak, which is the
// same at every n, is left out.
//
//	go test -run '^$' -bench TimerWakeup ./actors
func BenchmarkTimerWakeup(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("buckets=%d", n), func(b *testing.B) {
			t := newTimer().(*timer)
			pids := make([]*actor.PID, n)
			for i := range pids {
				pids[i] = actor.NewPID("bench", fmt.Sprintf("bucket-%d", i))
				t.schedule(pids[i], &messages.ScheduleLeak{DelayNanos: int64(i) * 1000})
			}
			moves := make([]*messages.ScheduleLeak, 64)
			for i := range moves {
				moves[i] = &messages.ScheduleLeak{DelayNanos: int64(i*7919%n) * 1000}
			}
			b.ReportAllocs()

			b.ResetTimer()
			for i := range b.N {
				// A bucket re-asks: its entry moves within the heap.
				t.schedule(pids[i%n], moves[i%len(moves)])

				// The earliest fires and its bucket asks again.
				due, _ := t.wakeups.Next()
				bucket, _ := t.wakeups.PopDue(due)
				t.wakeups.Set(pidKey{bucket.GetAddress(), bucket.GetId()}, bucket,
					due+int64(n)*1000)
			}
		})
	}
}
