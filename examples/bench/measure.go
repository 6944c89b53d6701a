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
// allowance: the least-squares slope of the units granted so far, each
// grant included, against the grant times in [skip, end). A leaky bucket
// at its rate grants when its level leaves room for the head, so on its
// exact schedule the units so far are the rate times the time plus the
// capacity, a line; a sliding window grants a window's worth at each
// period, a staircase whose slope over whole steps is the rate too. A
// count of units in [skip, end) would instead be off by whatever part of a
// request the cut falls in. It returns 0 unless two distinct times are in
// range.
func steadyRate(gs []grant, skip, end time.Duration) float64 {
	var ts, us []float64
	units := 0
	for _, g := range gs {
		units += g.amount
		if g.at >= skip && g.at < end {
			ts, us = append(ts, (g.at-skip).Seconds()), append(us, float64(units))
		}
	}

	if len(ts) < 2 || ts[0] == ts[len(ts)-1] { // gs is sorted by time
		return 0
	}

	meanT, meanU := mean(ts), mean(us)
	var cov, varT float64
	for i := range ts {
		cov += (ts[i] - meanT) * (us[i] - meanU)
		varT += (ts[i] - meanT) * (ts[i] - meanT)
	}

	return cov / varT
}

// mean returns the mean of xs, or 0 for none.
func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}

	return sum / float64(max(len(xs), 1))
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

// grantedPrefix returns the grant times of at, in submission order, up to
// the first request that was not granted.
func grantedPrefix(at []time.Duration) []time.Duration {
	n := slices.Index(at, notGranted)
	if n < 0 {
		n = len(at)
	}

	return at[:n]
}

// heldLateness returns, sorted, how long after the limit allowed it each
// request was granted: got minus allowed.
func heldLateness(got, allowed []time.Duration) []time.Duration {
	late := make([]time.Duration, len(got))
	for i := range got {
		late[i] = got[i] - allowed[i]
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
