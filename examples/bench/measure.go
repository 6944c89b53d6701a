package main

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// notGranted marks a request that was not granted within the measured
// period.
const notGranted = time.Duration(math.MaxInt64)

// grant is one granted request: when, and how many units.
type grant struct {
	at     time.Duration
	amount int
}

// granted returns the granted requests of at (indexed by submission,
// notGranted for the others) sorted by time.
func granted(at []time.Duration, amounts []int) []grant {
	gs := make([]grant, 0, len(at))
	for i, t := range at {
		if t != notGranted {
			gs = append(gs, grant{t, amounts[i]})
		}
	}
	slices.SortStableFunc(gs, func(a, b grant) int { return cmp.Compare(a.at, b.at) })

	return gs
}

// windowStats returns the most units granted in any window [t, t+width)
// and how many distinct windows starting at a grant hold more than limit.
// The windows that hold the most start at a grant, so looking at those
// suffices. gs must be sorted by time.
func windowStats(gs []grant, width time.Duration, limit int) (most, over int) {
	sum, end := 0, 0
	for i, g := range gs {
		for ; end < len(gs) && gs[end].at < g.at+width; end++ {
			sum += gs[end].amount
		}
		if i == 0 || gs[i-1].at != g.at {
			most = max(most, sum)
			if sum > limit {
				over++
			}
		}
		sum -= g.amount
	}

	return most, over
}

// steadyRate returns the units per second granted after the initial
// allowance: the units granted in [skip, end), divided by end-skip. It
// returns 0 when end is not after skip.
func steadyRate(gs []grant, skip, end time.Duration) float64 {
	if end <= skip {
		return 0
	}

	units := 0
	for _, g := range gs {
		if g.at >= skip && g.at < end {
			units += g.amount
		}
	}

	return float64(units) / (end - skip).Seconds()
}

// lateness returns each granted request's grant time minus its ideal time,
// sorted; requests not granted are left out.
func lateness(at, ideal []time.Duration) []time.Duration {
	late := make([]time.Duration, 0, len(at))
	for i, t := range at {
		if t != notGranted {
			late = append(late, t-ideal[i])
		}
	}
	slices.Sort(late)

	return late
}

// timerLateness is lateness for the grants whose ideal time is from or
// later: those past the initial burst or first window, which each wait for
// a timer wake-up, and not for a whole burst's tasks to start at once.
func timerLateness(at, ideal []time.Duration, from time.Duration) []time.Duration {
	var late []time.Duration
	for i, t := range at {
		if t != notGranted && ideal[i] >= from {
			late = append(late, t-ideal[i])
		}
	}
	slices.Sort(late)

	return late
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted:
// the smallest value with at least a fraction q of them at or below it. It
// returns 0 for no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))

	return sorted[min(max(rank, 1), len(sorted))-1]
}

// fifoViolations counts the granted requests that were granted more than
// tolerance before some request submitted earlier (a request not granted at
// all counts as granted last). at is indexed by submission order.
func fifoViolations(at []time.Duration, tolerance time.Duration) int {
	n := 0
	var latest time.Duration // the latest grant among earlier requests
	for i, t := range at {
		if i > 0 && t != notGranted && t < latest-tolerance {
			n++
		}
		latest = max(latest, t)
	}

	return n
}
