// Package schedule computes the exact schedules the examples measure drip
// against: when each of a list of requests, all submitted at time 0 in
// order, is granted by an ideal leaky bucket or sliding window.
package schedule

import "time"

// Leaky returns when each request of the given amounts is granted by an
// exact leaky bucket of rate units per per with capacity burst, empty at
// time 0: the request that brings the cumulative amount to c goes once
// c-burst units have drained, at (c-burst)·per/rate, rounded up to the
// nanosecond (a grant is never early).
func Leaky(amounts []int, rate, burst int, per time.Duration) []time.Duration {
	at := make([]time.Duration, len(amounts))
	cum := 0
	for i, a := range amounts {
		cum += a
		if over := cum - burst; over > 0 {
			at[i] = ceilDiv(time.Duration(over)*per, time.Duration(rate))
		}
	}

	return at
}

// ceilDiv returns a/b rounded up, for positive a and b.
func ceilDiv(a, b time.Duration) time.Duration {
	return (a + b - 1) / b
}

// Sliding returns when each request is granted by an exact sliding window
// of rate units in any [t, t+per): each goes, never before the one ahead
// of it, at the first moment the units granted in the window ending there
// leave room for it. A grant at s stays in the window until s+per.
func Sliding(amounts []int, rate int, per time.Duration) []time.Duration {
	at := make([]time.Duration, len(amounts))
	var now time.Duration
	inWindow, oldest := 0, 0
	for i, a := range amounts {
		for {
			// Forget the grants that have left the window.
			for ; oldest < i && at[oldest]+per <= now; oldest++ {
				inWindow -= amounts[oldest]
			}
			if inWindow+a <= rate {
				break
			}
			now = at[oldest] + per
		}
		at[i] = now
		inWindow += a
	}

	return at
}
