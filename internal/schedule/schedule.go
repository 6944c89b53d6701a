// Package schedule computes the exact schedules the examples measure drip
// against: when each of a list of requests, all submitted at time 0 in
// order, is granted by an ideal leaky bucket or sliding window; and, given
// the times a limiter really granted them, when its limit first allowed
// each one.
package schedule

import (
	"math"
	"time"
)

// never is the time of a request that no window can ever hold.
const never = time.Duration(math.MaxInt64)

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

// LeakyAllowed returns, for each request granted at got (in submission
// order, each no earlier than the one ahead), the first moment the same
// leaky bucket as Leaky's allowed it, given the grants before it at their
// times in got: once the one ahead was allowed, and once the level,
// counting every grant before it, left room. A grant's time minus this is
// how long the limiter held a request it could have granted.
func LeakyAllowed(amounts []int, got []time.Duration, rate, burst int,
	per time.Duration) []time.Duration {
	allowed := make([]time.Duration, len(got))
	r, capacity := time.Duration(rate), time.Duration(burst)*per

	// The level counts units times per, so that it drains by exactly rate
	// each nanosecond. Before the latest grant, at last, the level is taken
	// as if that grant were already in: one behind it never goes first.
	var level, last, now time.Duration // level as of last
	for i, g := range got {
		a := time.Duration(amounts[i]) * per
		if over := level + a - capacity; over > 0 {
			now = max(now, last+ceilDiv(over, r))
		} else {
			now = max(now, last+over/r)
		}
		allowed[i] = now

		g = max(g, last)
		level, last = max(level-(g-last)*r, 0)+a, g
	}

	return allowed
}

// Sliding returns when each request is granted by an exact sliding window
// of rate units in any [t, t+per): each goes, never before the one ahead
// of it, at the first moment the units granted in the window ending there
// leave room for it. A grant at s stays in the window until s+per. A
// request of more than rate units never goes, nor any behind it: their
// time is the largest Duration.
func Sliding(amounts []int, rate int, per time.Duration) []time.Duration {
	return sliding(amounts, nil, rate, per)
}

// SlidingAllowed is LeakyAllowed for Sliding's window: for each request
// granted at got, the first moment the window allowed it given the grants
// before it at their times in got, and not before the one ahead was
// allowed.
func SlidingAllowed(amounts []int, got []time.Duration, rate int,
	per time.Duration) []time.Duration {
	return sliding(amounts[:len(got)], got, rate, per)
}

// sliding returns when the window allows each request, given that the ones
// before it were granted at got, or, if got is nil, at the times it
// returns.
func sliding(amounts []int, got []time.Duration, rate int, per time.Duration) []time.Duration {
	at := make([]time.Duration, len(amounts))
	if got == nil {
		got = at
	}

	var now time.Duration
	inWindow, oldest := 0, 0
	for i, a := range amounts {
		// The grants before i count as in the window from the moment i is
		// looked at, even one that went later: none behind it goes first.
		for {
			// Forget the grants that have left the window.
			for ; oldest < i && got[oldest]+per <= now; oldest++ {
				inWindow -= amounts[oldest]
			}
			if inWindow+a <= rate {
				break
			}
			if oldest == i { // it does not fit an empty window
				for j := i; j < len(at); j++ {
					at[j] = never
				}
				return at
			}
			now = got[oldest] + per
		}
		at[i] = now
		inWindow += a
	}

	return at
}
