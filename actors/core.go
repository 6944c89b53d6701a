package actors

import (
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// granted is the zero reason: an outcome with it is a grant.
const granted = messages.RejectReason_REJECT_REASON_UNSPECIFIED

// outcome is one decision of the core about one request: whom to answer
// and how. It holds no pointer into the queue, so deciding a request at
// once allocates nothing, and it is small, so recording it is cheap.
type outcome struct {
	sender  *actor.PID
	request uint64
	units   uint64
	reason  messages.RejectReason // granted, or why not
	detail  string
}

// core is a bucket's state and arithmetic with time passed in: the level (as
// a theoretical arrival time, GCRA-style) or the sliding-window log, and the
// FIFO queue. It is plain Go, used by one goroutine at a time (the bucket
// actor's), and knows nothing of clocks, mailboxes or timers.
//
// Times are nanoseconds on the bucket's monotonic clock. A time earlier than
// one already seen is taken as that one, so a clock that steps back creates
// no capacity.
type core struct {
	rule rule
	now  int64 // latest time seen

	tat vtime  // leaky bucket: when the level will reach zero
	log window // sliding window: grants within the last period

	pausedUntil int64 // nothing is granted before it (see pause)

	queue          queue
	maxQueue       int    // 0 for unbounded
	maxQueuedUnits uint64 // 0 for unbounded

	last lastGrant

	grantedTotal      uint64
	grantedUnitsTotal uint64
	rejectedTotal     uint64

	out []outcome // decisions of the current call, reused between calls

	// memo is the cost of the amount asked for last: callers mostly ask for
	// the same amount, and each cost is a 128-bit division.
	memo costMemo
}

// costMemo remembers one cost under the current rule.
type costMemo struct {
	units uint64 // 0: nothing remembered
	cost  vtime
}

// costOf returns c.rule.cost(u), from the memo when it can.
func (c *core) costOf(u uint64) vtime {
	if c.memo.units != u || u == 0 {
		c.memo = costMemo{units: u, cost: c.rule.cost(u)}
	}

	return c.memo.cost
}

// lastGrant remembers the most recent grant so that it can be handed back
// exactly (see release).
type lastGrant struct {
	valid   bool
	sender  *actor.PID
	request uint64
	units   uint64
	at      int64
	tat     vtime // the leaky bucket's tat before the grant
}

// newCore returns an empty bucket: the whole burst is available at once.
func newCore(l *messages.Limit, maxQueue int, maxQueuedAmount float64, now int64) (*core, error) {
	r, err := newRule(l)
	if err != nil {
		return nil, err
	}
	if maxQueue < 0 {
		return nil, fmt.Errorf("max queue %d is negative", maxQueue)
	}
	maxQueued, err := queueUnits(maxQueuedAmount)
	if err != nil {
		return nil, err
	}

	return &core{rule: r, now: now, tat: vtime{ns: now}, maxQueue: maxQueue,
		maxQueuedUnits: maxQueued}, nil
}

// queueUnits converts the bound on the queued amount; 0 means none.
func queueUnits(amount float64) (uint64, error) {
	if amount == 0 {
		return 0, nil
	}

	u, err := limitUnits("max queued amount", amount)
	if err != nil {
		return 0, fmt.Errorf("max queued amount %v is not a positive number", amount)
	}

	return u, nil
}

// advanceClock moves the core's time to now unless now is earlier.
func (c *core) advanceClock(now int64) {
	c.now = max(c.now, now)
}

// acquire handles an Acquire: it grants at once, queues, or rejects. The
// decision, if one was made, is in c.out.
func (c *core) acquire(now int64, sender *actor.PID, m *messages.Acquire) {
	c.out = c.out[:0]
	c.advanceClock(now)

	// The waiter, with its key, is made only if the request has to queue.
	id := m.GetRequestId()
	u, reason, detail := c.rule.amountUnits(m.GetAmount())
	if reason != granted {
		c.rejectTo(sender, id, 0, reason, detail)
		return
	}

	if c.queue.len() == 0 && c.fits(u) {
		c.grantTo(sender, id, u)
		return
	}
	c.enqueue(waiter{key: keyOf(sender, id), sender: sender, units: u}, m)
}

// enqueue queues w, the request m, unless a bound or its wait limit
// refuses it.
func (c *core) enqueue(w waiter, m *messages.Acquire) {
	u := w.units

	if _, dup := c.queue.index[w.key]; dup {
		c.reject(&w, messages.RejectReason_REJECT_REASON_INVALID_REQUEST,
			fmt.Sprintf("request %d is already waiting", m.GetRequestId()))
		return
	}
	if reason, detail := c.checkQueue(u); reason != granted {
		c.reject(&w, reason, detail)
		return
	}
	if wait := m.GetMaxWaitNanos(); wait > 0 {
		if at := c.earliest(u); at-c.now > wait {
			c.reject(&w, messages.RejectReason_REJECT_REASON_DEADLINE,
				fmt.Sprintf("the queue ahead drains in %v, beyond the wait limit %v",
					time.Duration(at-c.now), time.Duration(wait)))
			return
		}
		w.deadline = c.now + wait
		if w.deadline < c.now {
			// The limit lies beyond the clock's range, so it never passes.
			w.deadline = math.MaxInt64
		}
	}

	c.queue.push(&w)
}

// checkQueue says whether u more units may join the queue.
func (c *core) checkQueue(u uint64) (messages.RejectReason, string) {
	if c.maxQueue > 0 && c.queue.len() >= c.maxQueue {
		return messages.RejectReason_REJECT_REASON_QUEUE_FULL,
			fmt.Sprintf("%d requests are waiting, the bound is %d", c.queue.len(), c.maxQueue)
	}
	if c.maxQueuedUnits > 0 && c.queue.units+u > c.maxQueuedUnits {
		return messages.RejectReason_REJECT_REASON_QUEUE_FULL,
			fmt.Sprintf("%v is waiting, adding %v passes the bound %v",
				toAmount(c.queue.units), toAmount(u), toAmount(c.maxQueuedUnits))
	}

	return granted, ""
}

// try handles a TryAcquire: granted now or rejected, never queued.
func (c *core) try(now int64, sender *actor.PID, m *messages.TryAcquire) {
	c.out = c.out[:0]
	c.advanceClock(now)

	w := &waiter{key: keyOf(sender, m.GetRequestId()), sender: sender}
	u, reason, detail := c.rule.amountUnits(m.GetAmount())
	w.units = u
	switch {
	case reason != granted:
		c.reject(w, reason, detail)
	case c.queue.len() > 0:
		c.reject(w, messages.RejectReason_REJECT_REASON_WOULD_WAIT,
			fmt.Sprintf("%d requests are waiting", c.queue.len()))
	case !c.fits(u):
		c.reject(w, messages.RejectReason_REJECT_REASON_WOULD_WAIT,
			fmt.Sprintf("amount %v does not fit before %v", m.GetAmount(),
				time.Duration(c.dueAt(u)-c.now)))
	default:
		c.grant(w)
	}
}

// cancel withdraws the waiter with key k, if it waits, and lets the queue
// behind it move up in the same step.
func (c *core) cancel(now int64, k waiterKey) {
	c.out = c.out[:0]
	c.advanceClock(now)

	w, ok := c.queue.index[k]
	if !ok {
		return
	}
	c.queue.remove(w)
	c.reject(w, messages.RejectReason_REJECT_REASON_CANCELLED, "cancelled by the caller")

	c.drain()
}

// dropSender withdraws every waiter of sender, which has died: nobody is
// left to answer, so no outcome is recorded. The queue behind them moves up
// in the same step. It returns how many were dropped.
func (c *core) dropSender(now int64, sender *actor.PID) int {
	c.out = c.out[:0]
	c.advanceClock(now)

	address, id := sender.GetAddress(), sender.GetId()
	dropped := 0
	for w := c.queue.head; w != nil; {
		next := w.next
		if w.key.address == address && w.key.id == id {
			c.queue.remove(w)
			c.rejectedTotal++
			dropped++
		}
		w = next
	}
	c.drain()

	return dropped
}

// release takes back the grant with key k if it is still the latest one.
// Undoing an older grant exactly would need the history of every grant
// since; keeping it errs on the side of the limit.
func (c *core) release(now int64, k waiterKey) bool {
	c.out = c.out[:0]
	c.advanceClock(now)

	if !c.last.valid || c.last.request != k.request || keyOf(c.last.sender, k.request) != k {
		return false
	}

	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		c.log.undo(c.last.at, c.last.units)
	} else {
		c.tat = c.last.tat
	}
	c.grantedTotal--
	c.grantedUnitsTotal -= c.last.units
	c.last = lastGrant{}

	c.drain()

	return true
}

// leak grants from the head of the queue for as long as the head fits.
func (c *core) leak(now int64) {
	c.out = c.out[:0]
	c.advanceClock(now)
	c.drain()
}

// drain grants the head while it fits and drops heads whose deadline passed.
func (c *core) drain() {
	for w := c.queue.head; w != nil; w = c.queue.head {
		if w.deadline != 0 && c.now > w.deadline {
			c.queue.remove(w)
			c.reject(w, messages.RejectReason_REJECT_REASON_DEADLINE,
				"the wait limit passed before the request reached the head")
			continue
		}
		if !c.fits(w.units) {
			return
		}
		c.queue.remove(w)
		c.grant(w)
	}
}

// setLimit changes the rule and re-times the queue. What is in the bucket
// stays and drains at the new rate from now on.
func (c *core) setLimit(now int64, l *messages.Limit) error {
	c.out = c.out[:0]
	c.advanceClock(now)

	r, err := newRule(l)
	if err != nil {
		return err
	}
	if r.mode != c.rule.mode {
		return fmt.Errorf("cannot change mode from %v to %v",
			c.rule.mode, r.mode)
	}
	if r.mode == messages.Mode_MODE_LEAKY_BUCKET {
		level := c.levelUnits()
		c.tat = r.add(vtime{ns: c.now}, r.cost(level))
	}
	c.rule = r
	c.memo = costMemo{} // costs under the old rule
	c.last = lastGrant{}

	// Waiters that no longer fit in the bucket at all could wait forever.
	for w := c.queue.head; w != nil; {
		next := w.next
		if w.units > r.burst {
			c.queue.remove(w)
			c.reject(w, messages.RejectReason_REJECT_REASON_TOO_LARGE,
				fmt.Sprintf("amount %v exceeds the new capacity %v",
					toAmount(w.units), toAmount(r.burst)))
		}
		w = next
	}
	c.drain()

	return nil
}

// restart puts the bucket in the state it is in after a failure: full, so
// that a crash never hands out a free burst. The queue is kept. A level
// above full (the limit was lowered) is kept too: a restart never makes
// room.
func (c *core) restart(now int64) {
	c.out = c.out[:0]
	c.advanceClock(now)

	c.last = lastGrant{}
	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		// One entry at now of at least what the window holds outlasts every
		// grant it replaces, whatever period a later limit brings.
		held := max(c.rule.rate, c.levelUnits())
		c.log.reset()
		c.log.add(c.now, held)
		return
	}
	full := c.rule.add(vtime{ns: c.now}, c.rule.burstCost)
	if full.ns > c.tat.ns || (full.ns == c.tat.ns && full.frac > c.tat.frac) {
		c.tat = full
	}
}

// stop rejects every waiter.
func (c *core) stop(now int64) {
	c.out = c.out[:0]
	c.advanceClock(now)

	for w := c.queue.head; w != nil; w = c.queue.head {
		c.queue.remove(w)
		c.reject(w, messages.RejectReason_REJECT_REASON_STOPPED, "the bucket stopped")
	}
}

// status reports the bucket's state at now.
func (c *core) status(now int64) *messages.Status {
	c.advanceClock(now)

	return &messages.Status{
		Limit:              c.rule.limit(),
		Level:              toAmount(c.levelUnits()),
		Queued:             uint64(c.queue.len()),
		QueuedAmount:       toAmount(c.queue.units),
		GrantedTotal:       c.grantedTotal,
		GrantedAmountTotal: toAmount(c.grantedUnitsTotal),
		RejectedTotal:      c.rejectedTotal,
		PausedForNanos:     c.pausedFor(),
	}
}

// nextDue returns when the head of the queue will fit, and false when the
// queue is empty.
func (c *core) nextDue() (int64, bool) {
	if c.queue.head == nil {
		return 0, false
	}

	return c.dueAt(c.queue.head.units), true
}

// levelUnits returns the level at c.now, rounded up.
func (c *core) levelUnits() uint64 {
	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		c.log.prune(c.now, c.rule.per)
		return c.log.units
	}
	if !c.tat.after(c.now) {
		return 0
	}

	return c.rule.units(c.rule.sub(c.tat, vtime{ns: c.now}))
}

// pause grants nothing before until, whatever the level: the server behind
// the limit asked for a break (an HTTP 429 with Retry-After, say). The
// level keeps draining meanwhile, so when the pause ends the bucket allows
// what its limit allows after that much idle time, and no more. A pause
// only ever lengthens: an earlier until than the one in force changes
// nothing. Waiters whose wait limit passes before the pause ends are
// rejected at once, and the rest are re-timed.
func (c *core) pause(now, until int64) {
	c.out = c.out[:0]
	c.advanceClock(now)

	c.pausedUntil = max(c.pausedUntil, until)
	for w := c.queue.head; w != nil; {
		next := w.next
		if w.deadline != 0 && w.deadline < c.pausedUntil {
			c.queue.remove(w)
			c.reject(w, messages.RejectReason_REJECT_REASON_DEADLINE,
				fmt.Sprintf("the bucket is paused for %v, beyond the wait limit",
					time.Duration(c.pausedUntil-c.now)))
		}
		w = next
	}
	c.drain()
}

// pausedFor returns how much of a pause is left at c.now.
func (c *core) pausedFor() int64 {
	return max(c.pausedUntil-c.now, 0)
}

// fits reports whether u units can be granted at c.now.
func (c *core) fits(u uint64) bool {
	return c.dueAt(u) <= c.now
}

// dueAt returns the first whole nanosecond, not before c.now, at which u
// units fit.
func (c *core) dueAt(u uint64) int64 {
	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		c.log.prune(c.now, c.rule.per)
		return max(c.log.fitsAt(c.now, u, c.rule.rate, c.rule.per), c.pausedUntil)
	}

	// u fits once the level has drained to burst-u:
	// at tat + cost(u) - cost(burst).
	at := c.rule.sub(c.rule.add(c.tat, c.costOf(u)), c.rule.burstCost)

	return max(c.now, at.ceil(), c.pausedUntil)
}

// earliest returns a time before which a new request of u units, queued
// behind the current waiters, cannot be granted. In leaky-bucket mode it is
// exact if the limit does not change; in sliding-window mode it is a lower
// bound, so a request admitted by it may still wait past its limit and be
// dropped at the head.
func (c *core) earliest(u uint64) int64 {
	total := c.queue.units + u
	if c.rule.mode == messages.Mode_MODE_LEAKY_BUCKET {
		// Nothing goes before a pause ends, and the queue drains from then.
		start := c.drained()
		if start.ns < c.pausedUntil {
			start = vtime{ns: c.pausedUntil}
		}
		at := c.rule.sub(c.rule.add(start, c.rule.cost(total)), c.rule.burstCost)
		return max(c.now, at.ceil(), c.pausedUntil)
	}

	if total <= c.rule.rate {
		return c.dueAt(total)
	}

	// At most rate units go in any window, so granting total units takes
	// at least ceil(total/rate)-1 periods after the first grant, which is
	// the head's.
	head := u
	if c.queue.head != nil {
		head = c.queue.head.units
	}
	periods := (total+c.rule.rate-1)/c.rule.rate - 1
	if periods >= uint64(forever)/c.rule.per {
		return forever
	}

	return c.dueAt(head) + int64(periods*c.rule.per)
}

// drained returns when the leaky bucket's level reaches zero, or c.now if
// it already has.
func (c *core) drained() vtime {
	if c.tat.after(c.now) {
		return c.tat
	}

	return vtime{ns: c.now}
}

// grant admits w at c.now.
func (c *core) grant(w *waiter) {
	c.grantTo(w.sender, w.key.request, w.units)
}

// grantTo admits request of sender, for u units, at c.now.
func (c *core) grantTo(sender *actor.PID, request, u uint64) {
	c.last = lastGrant{valid: true, sender: sender, request: request, units: u, at: c.now,
		tat: c.tat}
	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		c.log.add(c.now, u)
	} else {
		c.tat = c.rule.add(c.drained(), c.costOf(u))
	}

	c.grantedTotal++
	c.grantedUnitsTotal += u
	c.out = append(c.out, outcome{sender: sender, request: request, units: u})
}

// reject records a rejection of w.
func (c *core) reject(w *waiter, reason messages.RejectReason, detail string) {
	c.rejectTo(w.sender, w.key.request, w.units, reason, detail)
}

// rejectTo records a rejection of request of sender.
func (c *core) rejectTo(sender *actor.PID, request, u uint64, reason messages.RejectReason,
	detail string) {
	c.rejectedTotal++
	c.out = append(c.out, outcome{sender: sender, request: request, units: u, reason: reason,
		detail: detail})
}

// drainedAt returns the first whole nanosecond, not before now, at which
// the level is zero: in leaky-bucket mode the tat rounded up, in
// sliding-window mode the moment the newest grant leaves the window.
func (c *core) drainedAt(now int64) int64 {
	c.advanceClock(now)

	if c.rule.mode == messages.Mode_MODE_SLIDING_WINDOW {
		c.log.prune(c.now, c.rule.per)
		last := len(c.log.entries) - 1
		if last < c.log.start {
			return max(c.now, c.pausedUntil)
		}
		return max(c.now, c.log.entries[last].at+int64(c.rule.per), c.pausedUntil)
	}

	return max(c.now, c.tat.ceil(), c.pausedUntil)
}

// idle reports whether nobody waits and the level is zero at now: then the
// bucket is in the state of a new one, and replacing it with one loses
// nothing (its totals aside).
func (c *core) idle(now int64) bool {
	return c.queue.len() == 0 && c.drainedAt(now) <= c.now
}
