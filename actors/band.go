package actors

import (
	"fmt"

	"github.com/dripsched/drip/messages"
)

// maxBands bounds how many bands one limit may have, so that a decision
// stays cheap whatever a message from the network asks for.
const maxBands = 16

// band is one (rate, period, burst) rule of a bucket and its state: the
// level as a theoretical arrival time (leaky bucket) or the log of grants
// (sliding window). A bucket grants a request only when every one of its
// bands allows it, and then charges it to all of them.
type band struct {
	rule rule
	tat  vtime  // leaky bucket: when the level will reach zero
	log  window // sliding window: grants within the last period

	// memo is the cost of the amount asked for last: callers mostly ask for
	// the same amount, and each cost is a 128-bit division.
	memo costMemo
}

// costMemo remembers one cost under the band's rule.
type costMemo struct {
	units uint64 // 0: nothing remembered
	cost  vtime
}

// newBand returns an empty band at now.
func newBand(r rule, now int64) band {
	return band{rule: r, tat: vtime{ns: now}}
}

// sliding reports whether the band counts a sliding window.
func (b *band) sliding() bool {
	return b.rule.mode == messages.Mode_MODE_SLIDING_WINDOW
}

// costOf returns b.rule.cost(u), from the memo when it can.
func (b *band) costOf(u uint64) vtime {
	if b.memo.units != u || u == 0 {
		b.memo = costMemo{units: u, cost: b.rule.cost(u)}
	}

	return b.memo.cost
}

// level returns the level at now, rounded up.
func (b *band) level(now int64) uint64 {
	if b.sliding() {
		b.log.prune(now, b.rule.per)
		return b.log.units
	}
	if !b.tat.after(now) {
		return 0
	}

	return b.rule.units(b.rule.sub(b.tat, vtime{ns: now}))
}

// dueAt returns the first whole nanosecond, not before now, at which u
// units fit.
func (b *band) dueAt(now int64, u uint64) int64 {
	if b.sliding() {
		b.log.prune(now, b.rule.per)
		return b.log.fitsAt(now, u, b.rule.rate, b.rule.per)
	}

	// u fits once the level has drained to burst-u:
	// at tat + cost(u) - cost(burst).
	at := b.rule.sub(b.rule.add(b.tat, b.costOf(u)), b.rule.burstCost)

	return max(now, at.ceil())
}

// drained returns when the leaky bucket's level reaches zero, or now if it
// already has.
func (b *band) drained(now int64) vtime {
	if b.tat.after(now) {
		return b.tat
	}

	return vtime{ns: now}
}

// drainedAt returns the first whole nanosecond, not before now, at which
// the level is zero.
func (b *band) drainedAt(now int64) int64 {
	if !b.sliding() {
		return max(now, b.tat.ceil())
	}

	b.log.prune(now, b.rule.per)
	last := len(b.log.entries) - 1
	if last < b.log.start {
		return now
	}

	return max(now, b.log.entries[last].at+int64(b.rule.per))
}

// earliest returns a time before which total units, the first of them head
// units, queued from now, cannot all have been granted by this band, with
// nothing granted before start (a pause). In leaky-bucket mode it is exact
// for one band; in sliding-window mode it is a lower bound.
func (b *band) earliest(now int64, total, head uint64, start int64) int64 {
	if !b.sliding() {
		// Nothing goes before start, and the queue drains from then.
		from := b.drained(now)
		if from.ns < start {
			from = vtime{ns: start}
		}
		at := b.rule.sub(b.rule.add(from, b.rule.cost(total)), b.rule.burstCost)
		return max(now, at.ceil(), start)
	}

	if total <= b.rule.rate {
		return max(b.dueAt(now, total), start)
	}

	// At most rate units go in any window, so granting total units takes
	// at least ceil(total/rate)-1 periods after the first grant, which is
	// the head's.
	periods := (total+b.rule.rate-1)/b.rule.rate - 1
	if periods >= uint64(forever)/b.rule.per {
		return forever
	}

	return max(b.dueAt(now, head), start) + int64(periods*b.rule.per)
}

// grant charges u units at now.
func (b *band) grant(now int64, u uint64) {
	if b.sliding() {
		b.log.add(now, u)
		return
	}
	b.tat = b.rule.add(b.drained(now), b.costOf(u))
}

// undo takes back the grant of u units at at, the band's latest; tat is
// the leaky bucket's before it.
func (b *band) undo(at int64, u uint64, tat vtime) {
	if b.sliding() {
		b.log.undo(at, u)
		return
	}
	b.tat = tat
}

// fill makes the band full at now, as after a failure: it grants nothing
// until a whole burst (or window) has drained. A level above full is kept:
// filling never makes room.
func (b *band) fill(now int64) {
	if b.sliding() {
		// One entry at now of at least what the window holds outlasts every
		// grant it replaces, whatever period a later limit brings.
		held := max(b.rule.rate, b.level(now))
		b.log.reset()
		b.log.add(now, held)
		return
	}

	full := b.rule.add(vtime{ns: now}, b.rule.burstCost)
	if full.ns > b.tat.ns || (full.ns == b.tat.ns && full.frac > b.tat.frac) {
		b.tat = full
	}
}

// setRule changes the band's rule at now. What is in it stays and drains at
// the new rate from now on.
func (b *band) setRule(now int64, r rule) {
	if !b.sliding() {
		b.tat = r.add(vtime{ns: now}, r.cost(b.level(now)))
	}
	b.rule, b.memo = r, costMemo{}
}

// newRules validates l and its extra bands and returns their rules, l's
// own first. The error names the band, the field and the value.
func newRules(l *messages.Limit) ([]rule, error) {
	first, err := newRule(l)
	if err != nil {
		return nil, err
	}
	if n := len(l.GetBands()); n >= maxBands {
		return nil, fmt.Errorf("%d bands are more than the %d a limit may have", n+1, maxBands)
	}

	rules := []rule{first}
	for i, b := range l.GetBands() {
		r, err := newRule(&messages.Limit{Rate: b.GetRate(), PerNanos: b.GetPerNanos(),
			Burst: b.GetBurst(), Mode: b.GetMode()})
		if err != nil {
			return nil, fmt.Errorf("band %d: %v", i+1, err)
		}
		rules = append(rules, r)
	}

	return rules, nil
}

// limitOf returns the limit the rules make, as a message.
func limitOf(rules []rule) *messages.Limit {
	l := rules[0].limit()
	for _, r := range rules[1:] {
		b := r.limit()
		l.Bands = append(l.Bands, &messages.Band{Rate: b.GetRate(), PerNanos: b.GetPerNanos(),
			Burst: b.GetBurst(), Mode: b.GetMode()})
	}

	return l
}
