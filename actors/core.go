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
	bands []band // the limit's own rule first; a grant must fit all of them
	now   int64  // latest time seen

	pausedUntil int64 // nothing is granted before it (see pause)
	hold        hold  // a grant not yet committed (see Acquire.hold)
	maxHold     int64 // how long a hold may last before it counts as committed

	queue          queue
	maxQueue       int    // 0 for unbounded
	maxQueuedUnits uint64 // 0 for unbounded

	last lastGrant

	grantedTotal      uint64
	grantedUnitsTotal uint64
	rejectedTotal     uint64

	out []outcome // decisions of the current call, reused between calls
}

// hold is a grant made as part of an all-or-nothing request across buckets:
// while it lasts, the bucket grants nothing else, so the holder can still
// hand it back exactly (Release) if another bucket refuses its part, or
// keep it (Commit). A hold that outlasts maxHold is taken as committed:
// the grant stays, which errs on the side of the limit, and the bucket
// serves its queue again. So does one whose holder dies.
type hold struct {
	active  bool
	sender  *actor.PID
	request uint64
	until   int64
}

// defaultMaxHold is how long a hold lasts at most unless the bucket says
// otherwise: an all-or-nothing request asks its buckets one after another,
// each answer takes a round trip, so seconds are plenty.
const defaultMaxHold = int64(10 * time.Second)

// lastGrant remembers the most recent grant so that it can be handed back
// exactly (see release).
type lastGrant struct {
	valid   bool
	sender  *actor.PID
	request uint64
	units   uint64
	at      int64
	tats    []vtime // each band's tat before the grant; reused between grants
}

// newCore returns an empty bucket: the whole burst is available at once.
func newCore(l *messages.Limit, maxQueue int, maxQueuedAmount float64, now int64) (*core, error) {
	rules, err := newRules(l)
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

	c := &core{now: now, maxQueue: maxQueue, maxQueuedUnits: maxQueued, maxHold: defaultMaxHold}
	for _, r := range rules {
		c.bands = append(c.bands, newBand(r, now))
	}

	return c, nil
}

// amountUnits converts a requested amount to internal units, or says why
// no band can ever grant it.
func (c *core) amountUnits(amount float64) (uint64, messages.RejectReason, string) {
	u, reason, detail := c.bands[0].rule.amountUnits(amount)
	if reason != granted {
		return u, reason, detail
	}
	for i := range c.bands[1:] {
		if r := c.bands[i+1].rule; u > r.burst {
			return 0, messages.RejectReason_REJECT_REASON_TOO_LARGE,
				fmt.Sprintf("amount %v exceeds the capacity %v of band %d", amount,
					toAmount(r.burst), i+1)
		}
	}

	return u, granted, ""
}

// capacity returns the largest amount, in units, that every band can hold.
func (c *core) capacity() uint64 {
	capacity := c.bands[0].rule.burst
	for i := range c.bands[1:] {
		capacity = min(capacity, c.bands[i+1].rule.burst)
	}

	return capacity
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
	u, reason, detail := c.amountUnits(m.GetAmount())
	if reason != granted {
		c.rejectTo(sender, id, 0, reason, detail)
		return
	}

	if c.queue.len() == 0 && c.fits(u) {
		c.grantTo(sender, id, u)
		c.startHold(m.GetHold())
		return
	}
	c.enqueue(waiter{key: keyOf(sender, id), sender: sender, units: u, hold: m.GetHold()}, m)
}

// startHold makes the grant just made a hold, if asked is set.
func (c *core) startHold(asked bool) {
	if !asked {
		return
	}

	until := forever // saturating: a hold that long never expires
	if c.maxHold < forever-c.now {
		until = c.now + c.maxHold
	}
	c.hold = hold{active: true, sender: c.last.sender, request: c.last.request, until: until}
}

// commit ends the hold of request k, keeping its grant, and lets the queue
// move again. A Commit for anything else is ignored.
func (c *core) commit(now int64, k waiterKey) {
	c.out = c.out[:0]
	c.advanceClock(now)

	if !c.holds(k) {
		return
	}
	c.hold = hold{}
	c.drain()
}

// holds reports whether the hold in force is request k's.
func (c *core) holds(k waiterKey) bool {
	return c.hold.active && c.hold.request == k.request && keyOf(c.hold.sender, k.request) == k
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
	u, reason, detail := c.amountUnits(m.GetAmount())
	w.units = u
	switch {
	case reason != granted:
		c.reject(w, reason, detail)
	case c.queue.len() > 0:
		c.reject(w, messages.RejectReason_REJECT_REASON_WOULD_WAIT,
			fmt.Sprintf("%d requests are waiting", c.queue.len()))
	case c.hold.active:
		c.reject(w, messages.RejectReason_REJECT_REASON_WOULD_WAIT,
			"a grant is held for an all-or-nothing request")
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
	if c.hold.active && c.hold.sender.GetAddress() == address && c.hold.sender.GetId() == id {
		c.hold = hold{} // nobody is left to commit: the grant stays
	}
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

	// Nothing is granted while a hold lasts, so unless the limit changed
	// meanwhile a held grant is still the latest: undone exactly. Either
	// way the hold ends and the queue moves again.
	held := c.holds(k)
	if held {
		c.hold = hold{}
	}
	latest := c.last.valid && c.last.request == k.request && keyOf(c.last.sender, k.request) == k
	if latest {
		for i := range c.bands {
			c.bands[i].undo(c.last.at, c.last.units, c.last.tats[i])
		}
		c.grantedTotal--
		c.grantedUnitsTotal -= c.last.units
		c.last.valid = false
	}
	if held || latest {
		c.drain()
	}

	return latest
}

// leak grants from the head of the queue for as long as the head fits,
// once a hold that has lasted too long is taken as committed.
func (c *core) leak(now int64) {
	c.out = c.out[:0]
	c.advanceClock(now)

	if c.hold.active && c.now >= c.hold.until {
		c.hold = hold{}
	}
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
		c.startHold(w.hold)
	}
}

// setLimit changes the rules and re-times the queue. What is in each band
// stays and drains at its new rate from now on. A band that is new, or
// whose mode changed, starts full: it knows nothing of what was granted
// before, and full is the state that cannot let more through than its
// limit allows. The limit's own mode cannot change.
func (c *core) setLimit(now int64, l *messages.Limit) error {
	c.out = c.out[:0]
	c.advanceClock(now)

	rules, err := newRules(l)
	if err != nil {
		return err
	}
	if old := c.bands[0].rule.mode; rules[0].mode != old {
		return fmt.Errorf("cannot change mode from %v to %v", old, rules[0].mode)
	}

	bands := make([]band, len(rules))
	for i, r := range rules {
		if i < len(c.bands) && c.bands[i].rule.mode == r.mode {
			bands[i] = c.bands[i]
			bands[i].setRule(c.now, r)
			continue
		}
		bands[i] = newBand(r, c.now)
		bands[i].fill(c.now)
	}
	c.bands = bands
	c.last.valid = false

	// Waiters that no longer fit in the bucket at all could wait forever.
	capacity := c.capacity()
	for w := c.queue.head; w != nil; {
		next := w.next
		if w.units > capacity {
			c.queue.remove(w)
			c.reject(w, messages.RejectReason_REJECT_REASON_TOO_LARGE,
				fmt.Sprintf("amount %v exceeds the new capacity %v",
					toAmount(w.units), toAmount(capacity)))
		}
		w = next
	}
	c.drain()

	return nil
}

// restart puts the bucket in the state it is in after a failure: every
// band full, so that a crash never hands out a free burst. The queue is
// kept. A level above full (the limit was lowered) is kept too: a restart
// never makes room.
func (c *core) restart(now int64) {
	c.out = c.out[:0]
	c.advanceClock(now)

	c.last.valid = false
	for i := range c.bands {
		c.bands[i].fill(c.now)
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

	levels := make([]float64, len(c.bands))
	for i := range c.bands {
		levels[i] = toAmount(c.bands[i].level(c.now))
	}

	return &messages.Status{
		Limit:              c.limit(),
		Level:              levels[0],
		Levels:             levels,
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
	if c.hold.active {
		// Nothing goes before the hold ends; wake up when it expires.
		return max(c.hold.until, c.dueAt(c.queue.head.units)), true
	}

	return c.dueAt(c.queue.head.units), true
}

// limit returns the bucket's limit, every band included, as a message.
func (c *core) limit() *messages.Limit {
	rules := make([]rule, len(c.bands))
	for i := range c.bands {
		rules[i] = c.bands[i].rule
	}

	return limitOf(rules)
}

// levelUnits returns the level of the limit's own band at c.now, rounded
// up.
func (c *core) levelUnits() uint64 {
	return c.bands[0].level(c.now)
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

// fits reports whether u units can be granted at c.now: never while a
// hold lasts.
func (c *core) fits(u uint64) bool {
	return !c.hold.active && c.dueAt(u) <= c.now
}

// dueAt returns the first whole nanosecond, not before c.now, at which u
// units fit in every band and no pause holds them.
func (c *core) dueAt(u uint64) int64 {
	at := max(c.now, c.pausedUntil)
	for i := range c.bands {
		at = max(at, c.bands[i].dueAt(c.now, u))
	}

	return at
}

// earliest returns a time before which a new request of u units, queued
// behind the current waiters, cannot be granted. With one leaky-bucket band
// it is exact if the limit does not change; otherwise it is a lower bound
// (each band's, and the latest of them), so a request admitted by it may
// still wait past its limit and be dropped at the head.
func (c *core) earliest(u uint64) int64 {
	total, head := c.queue.units+u, u
	if c.queue.head != nil {
		head = c.queue.head.units
	}

	at := max(c.now, c.pausedUntil)
	for i := range c.bands {
		at = max(at, c.bands[i].earliest(c.now, total, head, c.pausedUntil))
	}

	return at
}

// grant admits w at c.now.
func (c *core) grant(w *waiter) {
	c.grantTo(w.sender, w.key.request, w.units)
}

// grantTo admits request of sender, for u units, at c.now.
func (c *core) grantTo(sender *actor.PID, request, u uint64) {
	c.last = lastGrant{valid: true, sender: sender, request: request, units: u, at: c.now,
		tats: c.last.tats[:0]}
	for i := range c.bands {
		c.last.tats = append(c.last.tats, c.bands[i].tat)
		c.bands[i].grant(c.now, u)
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
// every band is empty and no pause holds: in leaky-bucket mode the tat
// rounded up, in sliding-window mode the moment the newest grant leaves
// the window.
func (c *core) drainedAt(now int64) int64 {
	c.advanceClock(now)

	at := max(c.now, c.pausedUntil)
	for i := range c.bands {
		at = max(at, c.bands[i].drainedAt(c.now))
	}

	return at
}

// idle reports whether nobody waits and the level is zero at now: then the
// bucket is in the state of a new one, and replacing it with one loses
// nothing (its totals aside).
func (c *core) idle(now int64) bool {
	return c.queue.len() == 0 && c.drainedAt(now) <= c.now
}
