package actors

import (
	"testing"
	"time"

	"github.com/dripsched/drip/messages"
)

// driftGrants is how many grants the no-drift tests make per limit.
const driftGrants = 1_000_000

// nextGrant asks c for m's amount at now and, if the request has to wait,
// lets the core's clock run to the due time it names. It returns the time
// of the grant and whether the request had to wait, failing the test if the
// request is not granted exactly then.
func nextGrant(t *testing.T, c *core, now int64, m *messages.Acquire) (int64, bool) {
	c.acquire(now, testSender, m)
	waited := len(c.out) == 0
	if waited {
		due, ok := c.nextDue()
		if !ok || due < now {
			t.Helper()
			t.Fatalf("grant %d: queued at %v, due %v (%v)", m.GetRequestId(),
				time.Duration(now), time.Duration(due), ok)
		}
		now = due
		c.leak(now)
	}
	if len(c.out) != 1 || c.out[0].reason != granted ||
		c.out[0].request != m.GetRequestId() {
		t.Helper()
		t.Fatalf("grant %d at %v: %s, want #%d granted", m.GetRequestId(),
			time.Duration(now), describeOut(c.out), m.GetRequestId())
	}

	return now, waited
}

// TestLeakyBucketNoDrift takes each grant as soon as the core allows, a
// million times, and compares the count with the ideal schedule
// burst + rate·t/per: it is never above it, a request that has to wait goes
// at the first nanosecond the schedule allows, and at the end the count is
// within one of it. Rates and bursts are whole numbers, so the schedule is
// exact in integers.
func TestLeakyBucketNoDrift(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		rate, burst int64
		per         time.Duration
	}{
		{"100 per second, burst 1", 100, 1, time.Second},
		{"3 per 7 seconds, burst 5", 3, 5, 7 * time.Second},
		{"a million per second, burst 1", 1_000_000, 1, time.Second},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCore(t, leakyLimit(float64(tt.rate), tt.per, float64(tt.burst)), 0, 0)
			per := int64(tt.per)

			// By now the schedule allows burst + rate·now/per grants; times
			// per, that is a whole number.
			var now int64
			m := &messages.Acquire{Amount: 1}
			for n := int64(1); n <= driftGrants; n++ {
				var waited bool
				m.RequestId = uint64(n)
				now, waited = nextGrant(t, c, now, m)

				ideal := tt.burst*per + tt.rate*now
				if n*per > ideal {
					t.Fatalf("grant %d at %v: over the ideal schedule %.6f", n,
						time.Duration(now), float64(ideal)/float64(per))
				}
				// One nanosecond earlier the schedule did not allow it.
				if waited && ideal-tt.rate >= n*per {
					t.Fatalf("grant %d at %v: late, the ideal schedule allowed %.6f a "+
						"nanosecond before", n, time.Duration(now),
						float64(ideal-tt.rate)/float64(per))
				}
			}

			// Had it drifted by one grant, the millionth would be due later.
			ideal := tt.burst*per + tt.rate*now
			if ideal-driftGrants*per >= per {
				t.Errorf("%d grants by %v, the ideal schedule allows %.6f", driftGrants,
					time.Duration(now), float64(ideal)/float64(per))
			}
		})
	}
}

// TestSlidingWindowNoOverrun takes a million grants as soon as the core
// allows and checks every window of one second: none holds more than the
// limit. With whole units each window fills up, so every grant also goes
// exactly when the ideal schedule, rate at the start of each second, says.
func TestSlidingWindowNoOverrun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rate    float64
		weights []float64 // asked for in turn
	}{
		{"100 per second, 1 each", 100, []float64{1}},
		{"7 per second, weighted", 7, []float64{1, 2.5, 0.25, 7, 3.75, 0.5}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			per := int64(time.Second)
			limit := int64(tt.rate * unitScale)
			c := newTestCore(t, slidingLimit(tt.rate, time.Second), 0, 0)

			// The grants of the last second, oldest first, from at[first].
			at, units := make([]int64, 0, driftGrants), make([]int64, 0, driftGrants)
			var now, held int64
			first, whole := 0, len(tt.weights) == 1 && tt.weights[0] == 1
			m := &messages.Acquire{}
			for n := range driftGrants {
				m.RequestId, m.Amount = uint64(n+1), tt.weights[n%len(tt.weights)]
				now, _ = nextGrant(t, c, now, m)

				u := int64(m.Amount * unitScale)
				at, units = append(at, now), append(units, u)
				held += u
				for at[first] <= now-per {
					held -= units[first]
					first++
				}
				if held > limit {
					t.Fatalf("grant %d at %v: (%v, %v] holds %v, the limit is %v", n+1,
						time.Duration(now), time.Duration(now-per), time.Duration(now),
						toAmount(uint64(held)), tt.rate)
				}
				// Whole units fill each window: grant n goes at the start of
				// second n/rate, not a nanosecond later or earlier.
				if ideal := int64(n) / int64(tt.rate) * per; whole && now != ideal {
					t.Fatalf("grant %d at %v, the ideal schedule says %v", n+1,
						time.Duration(now), time.Duration(ideal))
				}
			}
		})
	}
}

// BenchmarkCoreAcquireLeak measures the core's cycle for a request that
// waits: acquire, ask when it is due, and leak at that time.
func BenchmarkCoreAcquireLeak(b *testing.B) {
	benchmarks := []struct {
		name  string
		limit *messages.Limit
	}{
		{"leaky bucket", leakyLimit(1e6, time.Second, 1)},
		{"sliding window", slidingLimit(1, time.Microsecond)},
	}

	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			c := newTestCore(b, bm.limit, 0, 0)
			m := &messages.Acquire{Amount: 1}
			var now int64
			b.ReportAllocs()

			for i := 0; b.Loop(); i++ {
				m.RequestId = uint64(i)
				c.acquire(now, testSender, m)
				if due, ok := c.nextDue(); ok {
					now = due
					c.leak(now)
				}
				if len(c.out) != 1 || c.out[0].reason != granted {
					b.Fatalf("request %d: %s, want granted", i, describeOut(c.out))
				}
			}
		})
	}
}
