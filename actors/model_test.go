package actors

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dripsched/drip/messages"
)

// modelSteps is how many random operations one run of the model test makes.
const modelSteps = 100_000

func TestModelLeakyBucket(t *testing.T) {
	t.Parallel()
	runModel(t, messages.Mode_MODE_LEAKY_BUCKET, 1)
}

func TestModelSlidingWindow(t *testing.T) {
	t.Parallel()
	runModel(t, messages.Mode_MODE_SLIDING_WINDOW, 2)
}

// runModel applies a seeded random sequence of operations to a core and to
// the reference simulation, and after each one compares their decisions
// and state and checks the contract on the history of grants.
func runModel(t *testing.T, mode messages.Mode, seed uint64) {
	m := &coreModel{t: t, mode: mode, seed: seed, rng: rand.New(rand.NewPCG(seed, 0)),
		seen: make(map[messages.RejectReason]int)}
	m.fresh()

	for m.step = 0; m.step < modelSteps; m.step++ {
		m.randomOp()
		m.compareState()
	}

	m.stop(m.now)

	// A run that never reaches some decision proves nothing about it.
	for r := range messages.RejectReason_name {
		reason := messages.RejectReason(r)
		if m.seen[reason] == 0 && !notMadeByCore[reason] {
			t.Errorf("seed %d: no decision %s in %d steps", seed, reasonName(reason), modelSteps)
		}
	}
}

// notMadeByCore lists the reasons the core never decides: the bucket actor
// (RESTARTED, INVALID_LIMIT as a reply), the registry (UNKNOWN_KEY) and the
// requester (UNREACHABLE) make them.
var notMadeByCore = map[messages.RejectReason]bool{
	messages.RejectReason_REJECT_REASON_RESTARTED:     true,
	messages.RejectReason_REJECT_REASON_INVALID_LIMIT: true,
	messages.RejectReason_REJECT_REASON_UNKNOWN_KEY:   true,
	messages.RejectReason_REJECT_REASON_UNREACHABLE:   true,
}

// modelDecision is one answer to one request.
type modelDecision struct {
	id     uint64
	reason messages.RejectReason
}

func (d modelDecision) String() string {
	return fmt.Sprintf("#%d %s", d.id, reasonName(d.reason))
}

// coreModel drives a core and a reference side by side.
type coreModel struct {
	t    *testing.T
	rng  *rand.Rand
	mode messages.Mode
	seed uint64
	step int

	c      *core
	ref    *refBucket
	limit  *messages.Limit
	now    int64 // the wall clock; calls may be made before it
	nextID uint64
	recent []string                      // the latest operations, for failure reports
	seen   map[messages.RejectReason]int // decisions over the whole run

	// Contract checks made on the core's own decisions.
	requests  int      // requests made to the current bucket
	answers   int      // answers it gave
	waiting   []uint64 // queued requests in arrival order
	lastGrant uint64   // request id of the latest grant
	leaky     leakyCheck
	sliding   slidingCheck
}

// fresh replaces the core and the reference with a new bucket with a random
// limit, created at the current time.
func (m *coreModel) fresh() {
	m.limit = m.randomLimit()
	maxQueue := []int{0, 5, 30}[m.rng.IntN(3)]
	maxQueued := []float64{0, 3, 20}[m.rng.IntN(3)] * m.capacity()

	c, err := newCore(m.limit, maxQueue, maxQueued, m.now)
	if err != nil {
		m.t.Fatalf("seed %d: newCore(%v) = %v", m.seed, m.limit, err)
	}
	m.c = c
	m.ref = newReference(m.limit, maxQueue, maxQueued, m.now)
	m.requests, m.answers, m.waiting = 0, 0, nil
	m.leaky = newLeakyCheck(m.ref)
	m.sliding = slidingCheck{rate: m.ref.rate, per: m.ref.per, cutoff: math.MinInt64}
	m.note(fmt.Sprintf("new bucket %v, max queue %d, max queued %v",
		m.limit, maxQueue, maxQueued))
}

// randomLimit returns a valid limit of the model's mode. The periods are
// few, so that exact sums over them keep small denominators.
func (m *coreModel) randomLimit() *messages.Limit {
	pers := []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second,
		3 * time.Second, 7 * time.Second}
	per := pers[m.rng.IntN(len(pers))]
	if m.mode == messages.Mode_MODE_SLIDING_WINDOW {
		rates := []float64{1, 2, 2.5, 3, 5, 10}
		return slidingLimit(rates[m.rng.IntN(len(rates))], per)
	}

	rates := []float64{0.5, 1, 2.5, 3, 7, 10, 100}
	bursts := []float64{1, 2, 3.5, 5, 10}

	return leakyLimit(rates[m.rng.IntN(len(rates))], per, bursts[m.rng.IntN(len(bursts))])
}

// invalidLimit returns a limit the bucket must refuse: one of the other
// mode, or one with a rate or period that is not a positive number.
func (m *coreModel) invalidLimit() *messages.Limit {
	per := int64(time.Second)
	bad := []*messages.Limit{
		{Rate: 0, PerNanos: per, Burst: 1, Mode: m.mode},
		{Rate: math.Inf(1), PerNanos: per, Burst: 1, Mode: m.mode},
		{Rate: 1, PerNanos: 0, Burst: 1, Mode: m.mode},
		{Rate: 1, PerNanos: per, Burst: 1, Mode: messages.Mode_MODE_SLIDING_WINDOW},
	}
	if m.mode == messages.Mode_MODE_SLIDING_WINDOW {
		bad[3] = leakyLimit(1, time.Second, 1)
	}

	return bad[m.rng.IntN(len(bad))]
}

// capacity returns the largest amount one request may ask for.
func (m *coreModel) capacity() float64 {
	if m.mode == messages.Mode_MODE_SLIDING_WINDOW {
		return m.limit.GetRate()
	}

	return m.limit.GetBurst()
}

// randomOp makes one random operation, mostly at the current time and
// sometimes at an earlier one.
func (m *coreModel) randomOp() {
	at := m.now
	if m.rng.IntN(20) == 0 {
		at -= 1 + m.rng.Int64N(2*m.ref.per)
	}

	switch p := m.rng.IntN(1000); {
	case p < 280 && len(m.ref.queue) < 40:
		m.acquire(at)
	case p < 350:
		m.try(at)
	case p < 430:
		m.cancel(at)
	case p < 470:
		m.release(at)
	case p < 640:
		m.leakDue()
	case p < 680:
		m.leak(at)
	case p < 970:
		m.advance()
	case p < 990:
		m.setLimit(at)
	case p < 999:
		m.restart(at)
	default:
		m.stop(at)
		m.fresh()
	}
}

// advance moves the wall clock: often not at all, mostly by less than a
// period, now and then by many periods.
func (m *coreModel) advance() {
	per := m.ref.per
	var d int64
	switch p := m.rng.IntN(100); {
	case p < 30:
	case p < 70:
		d = m.rng.Int64N(per/10 + 1)
	case p < 90:
		d = m.rng.Int64N(2 * per)
	case p < 98:
		d = m.rng.Int64N(20 * per)
	default:
		d = 1000 * per
	}
	m.now += d
}

// randomAmount returns an amount to ask for: mostly a multiple of 1/4 in
// [1, capacity], sometimes any fraction, too large or invalid.
func (m *coreModel) randomAmount() float64 {
	capacity := m.capacity()
	switch p := m.rng.IntN(100); {
	case p < 1:
		return []float64{math.NaN(), 0, -1, math.Inf(1), 1e-7}[m.rng.IntN(5)]
	case p < 3:
		return capacity + []float64{1e-6, 0.25, capacity}[m.rng.IntN(3)]
	case p < 13:
		return m.rng.Float64() * capacity
	}

	return float64(4+m.rng.IntN(int(4*capacity)-3)) / 4
}

// randomWait returns a wait limit for a request of u millionths: mostly
// none, sometimes random, sometimes within a nanosecond of when the
// request could be granted.
func (m *coreModel) randomWait(u int64) int64 {
	switch p := m.rng.IntN(100); {
	case p < 70 || u == 0:
		return 0
	case p < 90:
		return 1 + m.rng.Int64N(3*m.ref.per)
	}

	return max(1, m.ref.earliest(u)-m.ref.now+m.rng.Int64N(3)-1)
}

func (m *coreModel) newID() uint64 {
	m.nextID++
	return m.nextID
}

func (m *coreModel) acquire(at int64) {
	id := m.newID()
	if len(m.ref.queue) > 0 && m.rng.IntN(30) == 0 {
		id = m.ref.queue[m.rng.IntN(len(m.ref.queue))].id // a duplicate
	}
	amount := m.randomAmount()
	m.ref.advance(at)
	u, _ := m.ref.units(amount)
	wait := m.randomWait(u)
	m.note(fmt.Sprintf("at %v acquire(#%d, %v, wait %v)", time.Duration(at), id, amount,
		time.Duration(wait)))

	m.c.acquire(at, testSender, &messages.Acquire{RequestId: id, Amount: amount,
		MaxWaitNanos: wait})
	late := len(m.c.out) == 1 &&
		m.c.out[0].reason == messages.RejectReason_REJECT_REASON_DEADLINE
	if late && m.mode == messages.Mode_MODE_SLIDING_WINDOW {
		// The core judges deadlines by a lower bound in this mode, so it
		// may admit a request that will be late, but it must never turn
		// away one that could be in time.
		if e := m.ref.earliest(u); e-m.ref.now <= wait {
			m.fail("rejected as late, but the queue drains in %v, within %v",
				time.Duration(e-m.ref.now), time.Duration(wait))
		}
	}

	m.compareOut(m.ref.acquire(id, amount, wait, late))
	m.requests++
	m.observe(true)
	if len(m.c.out) == 0 {
		if tail := m.c.queue.tail; tail == nil || tail.key.request != id {
			m.fail("#%d got no answer and is not last in the queue", id)
		}
		m.waiting = append(m.waiting, id)
	}
}

func (m *coreModel) try(at int64) {
	id, amount := m.newID(), m.randomAmount()
	m.note(fmt.Sprintf("at %v try(#%d, %v)", time.Duration(at), id, amount))

	m.c.try(at, testSender, &messages.TryAcquire{RequestId: id, Amount: amount})
	m.ref.advance(at)
	m.compareOut(m.ref.try(id, amount))
	m.requests++
	m.observe(true)
	if len(m.c.out) != 1 {
		m.fail("try(#%d) got %d answers", id, len(m.c.out))
	}
}

func (m *coreModel) cancel(at int64) {
	id := 1 + m.rng.Uint64N(m.nextID+5)
	if len(m.ref.queue) > 0 && m.rng.IntN(10) < 7 {
		id = m.ref.queue[m.rng.IntN(len(m.ref.queue))].id
	}
	m.note(fmt.Sprintf("at %v cancel(#%d)", time.Duration(at), id))

	m.c.cancel(at, keyOf(testSender, id))
	m.ref.advance(at)
	m.compareOut(m.ref.cancel(id))
	m.observe(false)
}

func (m *coreModel) release(at int64) {
	id := m.lastGrant
	if m.rng.IntN(10) < 4 {
		id = 1 + m.rng.Uint64N(m.nextID+5)
	}
	m.note(fmt.Sprintf("at %v release(#%d)", time.Duration(at), id))

	got := m.c.release(at, keyOf(testSender, id))
	m.ref.advance(at)
	want, wantOut := m.ref.release(id)
	if got != want {
		m.fail("release(#%d) = %v, want %v", id, got, want)
	}
	if got {
		m.leaky.release()
		m.sliding.release()
	}
	m.compareOut(wantOut)
	m.observe(false)
}

// leakDue is the timer's wake-up at the time the core asked for, or at the
// current time if that has passed. Now and then it comes a nanosecond
// early, when nothing may be granted yet.
func (m *coreModel) leakDue() {
	due, ok := m.c.nextDue()
	if !ok {
		m.advance()
		return
	}
	if due > m.now && m.rng.IntN(3) == 0 {
		due--
	}
	m.now = max(m.now, due)
	m.leak(m.now)
}

func (m *coreModel) leak(at int64) {
	m.note(fmt.Sprintf("at %v leak()", time.Duration(at)))

	m.c.leak(at)
	m.ref.advance(at)
	m.compareOut(m.ref.drain())
	m.observe(false)
}

func (m *coreModel) setLimit(at int64) {
	l, valid := m.randomLimit(), m.rng.IntN(10) != 0
	if !valid {
		l = m.invalidLimit()
	}
	m.note(fmt.Sprintf("at %v setLimit(%v)", time.Duration(at), l))

	// Drop what has left the window before the limit changes, as any
	// other call would: without it the core may keep a grant that left the
	// old window at this very nanosecond, which is safe but not what the
	// reference (and the status the caller saw) says.
	m.c.status(at)
	m.ref.advance(at)

	err := m.c.setLimit(at, l)
	if (err == nil) != valid {
		m.fail("setLimit(%v) = %v, want valid %v", l, err, valid)
	}
	if !valid {
		m.compareOut(nil)
		return
	}

	m.leaky.setLimit(m.ref.now, l)
	m.sliding.setLimit(m.ref.now, l)
	m.limit = l
	m.compareOut(m.ref.setLimit(l))
	m.observe(false)
}

func (m *coreModel) restart(at int64) {
	m.note(fmt.Sprintf("at %v restart()", time.Duration(at)))

	m.c.restart(at)
	m.ref.advance(at)
	m.ref.restart()
	m.compareOut(nil)
}

func (m *coreModel) stop(at int64) {
	m.note(fmt.Sprintf("at %v stop()", time.Duration(at)))

	m.c.stop(at)
	m.ref.advance(at)
	m.compareOut(m.ref.stop())
	m.observe(false)

	if len(m.waiting) != 0 || m.answers != m.requests {
		m.fail("%d requests, %d answers; %d still waiting", m.requests, m.answers,
			len(m.waiting))
	}
}

// note records the operation about to be made.
func (m *coreModel) note(op string) {
	if len(m.recent) == 12 {
		m.recent = m.recent[1:]
	}
	m.recent = append(m.recent, fmt.Sprintf("step %d: %s", m.step, op))
}

// fail stops the test with the seed, the step and the latest operations.
func (m *coreModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s mode, seed %d, step %d: %s\nlatest operations:\n\t%s", m.mode, m.seed,
		m.step, fmt.Sprintf(format, args...), strings.Join(m.recent, "\n\t"))
}

// compareOut compares the core's decisions in the latest call with want.
func (m *coreModel) compareOut(want []modelDecision) {
	got := make([]modelDecision, len(m.c.out))
	for i, o := range m.c.out {
		got[i] = modelDecision{id: o.request, reason: o.reason}
	}
	if !slices.Equal(got, want) {
		m.fail("decided %v, want %v", got, want)
	}
}

// observe checks the contract on the core's decisions in the latest call.
// fresh says whether the call was an Acquire or TryAcquire, whose only
// possible decision is about the new request; other calls decide only
// about waiters. Each waiter is answered once, waiters are granted in
// arrival order, nobody jumps the queue, and the grants keep to the limit.
func (m *coreModel) observe(fresh bool) {
	if fresh && len(m.c.out) > 1 {
		m.fail("one request got %d answers", len(m.c.out))
	}
	for _, o := range m.c.out {
		id := o.request
		i := slices.Index(m.waiting, id)
		switch {
		case fresh && o.reason == granted && len(m.waiting) > 0:
			m.fail("#%d granted at once while #%d waits", id, m.waiting[0])
		case fresh:
		case i < 0:
			m.fail("#%d answered, but it was not waiting", id)
		case o.reason == granted && i > 0:
			m.fail("#%d granted before #%d, which came first", id, m.waiting[0])
		default:
			m.waiting = slices.Delete(m.waiting, i, i+1)
		}
		m.answers++
		m.seen[o.reason]++
		if o.reason != granted {
			continue
		}

		m.lastGrant = id
		var err error
		if m.mode == messages.Mode_MODE_SLIDING_WINDOW {
			err = m.sliding.grant(m.c.now, int64(o.units))
		} else {
			err = m.leaky.grant(m.c.now, int64(o.units))
		}
		if err != nil {
			m.fail("#%d granted over the limit: %v", id, err)
		}
	}
}

// compareState compares the core's queue, due time, level and totals with
// the reference's.
func (m *coreModel) compareState() {
	if m.c.now != m.ref.now {
		m.fail("clock %d, want %d", m.c.now, m.ref.now)
	}

	i := 0
	for w := m.c.queue.head; w != nil; w, i = w.next, i+1 {
		if i >= len(m.ref.queue) {
			m.fail("queue longer than %d", len(m.ref.queue))
		}
		want := m.ref.queue[i]
		if w.key.request != want.id || int64(w.units) != want.units ||
			w.deadline != want.deadline {
			m.fail("waiter %d is #%d (%d, deadline %d), want #%d (%d, deadline %d)", i,
				w.key.request, w.units, w.deadline, want.id, want.units, want.deadline)
		}
	}
	if i != len(m.ref.queue) || m.c.queue.len() != i ||
		int64(m.c.queue.units) != m.ref.queuedUnits() {
		m.fail("queue of %d (%d listed, %d units), want %d (%d units)", m.c.queue.len(), i,
			m.c.queue.units, len(m.ref.queue), m.ref.queuedUnits())
	}

	gotDue, gotOK := m.c.nextDue()
	wantDue, wantOK := m.ref.nextDue()
	if gotDue != wantDue || gotOK != wantOK {
		m.fail("due %v (%v), want %v (%v)", gotDue, gotOK, wantDue, wantOK)
	}

	if got, want := int64(m.c.levelUnits()), m.ref.levelUnits(); got != want {
		m.fail("level %d, want %d", got, want)
	}
	if m.c.grantedTotal != m.ref.granted || m.c.grantedUnitsTotal != m.ref.grantedUnits ||
		m.c.rejectedTotal != m.ref.rejected {
		m.fail("totals granted %d (%d units), rejected %d; want %d (%d), %d",
			m.c.grantedTotal, m.c.grantedUnitsTotal, m.c.rejectedTotal,
			m.ref.granted, m.ref.grantedUnits, m.ref.rejected)
	}
}

// refBucket is the model's reference: a simple simulation of a bucket,
// written from DESIGN.md rather than from the core. The leaky bucket's
// level is an exact fraction that drains with time, the sliding window a
// plain list of what it holds, and the queue a plain slice. Amounts are in
// millionths of a unit, the documented resolution.
type refBucket struct {
	mode                messages.Mode
	rate, per, burst    int64 // burst equals rate in sliding-window mode
	maxQueue, maxQueued int64
	now                 int64

	level   *big.Rat   // leaky bucket: the level at levelAt
	levelAt int64      // leaky bucket
	memo    *big.Rat   // leaky bucket: the level at memoAt, or nil
	memoAt  int64      // leaky bucket
	window  []refEntry // sliding window: what it holds, oldest first
	seq     int        // numbers the grants

	queue []refWaiter
	last  *refGrant // the latest grant, while it can be handed back

	granted, grantedUnits, rejected uint64
}

type refEntry struct {
	at, units int64
	seq       int // 0 for what a restart puts in
}

type refWaiter struct {
	id              uint64
	units, deadline int64
}

// refGrant is what undoing the latest grant needs.
type refGrant struct {
	id      uint64
	units   int64
	seq     int
	level   *big.Rat
	levelAt int64
}

func newReference(l *messages.Limit, maxQueue int, maxQueued float64, now int64) *refBucket {
	r := &refBucket{mode: l.GetMode(), maxQueue: int64(maxQueue),
		maxQueued: int64(math.Round(maxQueued * 1e6)), now: now,
		level: new(big.Rat), levelAt: now}
	r.setRule(l)

	return r
}

// setRule takes the rate, period and burst of l.
func (r *refBucket) setRule(l *messages.Limit) {
	r.rate = int64(math.Round(l.GetRate() * 1e6))
	r.per = l.GetPerNanos()
	r.burst = int64(math.Round(l.GetBurst() * 1e6))
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		r.burst = r.rate
	}
}

// advance moves the clock to at, unless at is earlier, and forgets what
// has left the window.
func (r *refBucket) advance(at int64) {
	r.now = max(r.now, at)
	r.window = slices.DeleteFunc(r.window, func(e refEntry) bool { return e.at <= r.now-r.per })
}

// units converts an amount to millionths, or says why it is not valid.
func (r *refBucket) units(amount float64) (int64, messages.RejectReason) {
	if !(amount > 0) || math.IsInf(amount, 1) {
		return 0, messages.RejectReason_REJECT_REASON_INVALID_AMOUNT
	}

	u := math.Round(amount * 1e6)
	switch {
	case u < 1:
		return 0, messages.RejectReason_REJECT_REASON_INVALID_AMOUNT
	case u > float64(r.burst):
		return 0, messages.RejectReason_REJECT_REASON_TOO_LARGE
	}

	return int64(u), granted
}

// levelNow returns the exact leaky-bucket level now, which the caller must
// not change.
func (r *refBucket) levelNow() *big.Rat {
	if r.memo != nil && r.memoAt == r.now {
		return r.memo
	}

	drained := new(big.Rat).SetFrac64(r.now-r.levelAt, r.per)
	drained.Mul(drained, new(big.Rat).SetInt64(r.rate))

	level := new(big.Rat).Sub(r.level, drained)
	if level.Sign() < 0 {
		level.SetInt64(0)
	}
	r.memo, r.memoAt = level, r.now

	return level
}

// setLevel makes level the level now.
func (r *refBucket) setLevel(level *big.Rat) {
	r.level, r.levelAt, r.memo = level, r.now, nil
}

// held returns the sum of what the window holds now.
func (r *refBucket) held() int64 {
	var sum int64
	for _, e := range r.window {
		if e.at > r.now-r.per {
			sum += e.units
		}
	}

	return sum
}

// levelUnits returns the level in millionths, rounded up.
func (r *refBucket) levelUnits() int64 {
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		return r.held()
	}

	return ceilRat(r.levelNow())
}

func (r *refBucket) queuedUnits() int64 {
	var sum int64
	for _, w := range r.queue {
		sum += w.units
	}

	return sum
}

// fits reports whether u more units may be granted now.
func (r *refBucket) fits(u int64) bool {
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		return r.held()+u <= r.rate
	}

	sum := new(big.Rat).Add(r.levelNow(), new(big.Rat).SetInt64(u))

	return sum.Cmp(new(big.Rat).SetInt64(r.burst)) <= 0
}

// dueAt returns the first whole nanosecond from now at which u more units
// fit, if nothing else is granted meanwhile.
func (r *refBucket) dueAt(u int64) int64 {
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		return slidingFit(r.window, r.now, u, r.rate, r.per)
	}
	if r.fits(u) {
		return r.now
	}

	// The level must drain to burst-u: from level at levelAt that takes
	// (level+u-burst)·per/rate.
	over := new(big.Rat).Add(r.level, new(big.Rat).SetInt64(u-r.burst))
	at := over.Mul(over, new(big.Rat).SetFrac64(r.per, r.rate))
	at.Add(at, new(big.Rat).SetInt64(r.levelAt))

	return ceilRat(at)
}

// earliest returns when a request of u units queued now would be granted
// if every waiter ahead is granted as soon as it fits and the limit stays.
func (r *refBucket) earliest(u int64) int64 {
	units := make([]int64, 0, len(r.queue)+1)
	for _, w := range r.queue {
		units = append(units, w.units)
	}
	units = append(units, u)

	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		window, at := slices.Clone(r.window), r.now
		for _, u := range units {
			at = slidingFit(window, at, u, r.rate, r.per)
			window = append(window, refEntry{at: at, units: u})
		}
		return at
	}

	level, at := new(big.Rat).Set(r.levelNow()), new(big.Rat).SetInt64(r.now)
	burst, perRate := new(big.Rat).SetInt64(r.burst), new(big.Rat).SetFrac64(r.per, r.rate)
	for _, u := range units {
		// Wait until the level is down to burst-u, then add u.
		over := new(big.Rat).Add(level, new(big.Rat).SetInt64(u))
		over.Sub(over, burst)
		if over.Sign() > 0 {
			at.Add(at, over.Mul(over, perRate))
			level.SetInt64(r.burst - u)
		}
		level.Add(level, new(big.Rat).SetInt64(u))
	}

	return ceilRat(at)
}

// slidingFit returns the first time from t at which u more units fit in a
// window of per holding entries (oldest first), if nothing else is granted.
func slidingFit(entries []refEntry, t, u, rate, per int64) int64 {
	var held int64
	for _, e := range entries {
		if e.at > t-per {
			held += e.units
		}
	}

	// Wait for the oldest grants to leave until enough has gone.
	excess, fit := held+u-rate, t
	for _, e := range entries {
		if excess <= 0 {
			break
		}
		if e.at > t-per {
			excess -= e.units
			fit = e.at + per
		}
	}

	return fit
}

// grant admits id for u units now.
func (r *refBucket) grant(id uint64, u int64) modelDecision {
	r.seq++
	r.last = &refGrant{id: id, units: u, seq: r.seq, level: r.level, levelAt: r.levelAt}
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		r.window = append(r.window, refEntry{at: r.now, units: u, seq: r.seq})
	} else {
		r.setLevel(new(big.Rat).Add(r.levelNow(), new(big.Rat).SetInt64(u)))
	}
	r.granted++
	r.grantedUnits += uint64(u)

	return modelDecision{id: id, reason: granted}
}

func (r *refBucket) reject(id uint64, reason messages.RejectReason) modelDecision {
	r.rejected++
	return modelDecision{id: id, reason: reason}
}

// acquire follows DESIGN.md for an Acquire. In sliding-window mode, where
// the core may judge a wait limit by a lower bound, late says what it
// decided; the model checks that decision against earliest separately.
func (r *refBucket) acquire(id uint64, amount float64, wait int64, late bool) []modelDecision {
	u, reason := r.units(amount)
	switch {
	case reason != granted:
		return []modelDecision{r.reject(id, reason)}
	case len(r.queue) == 0 && r.fits(u):
		return []modelDecision{r.grant(id, u)}
	case slices.ContainsFunc(r.queue, func(w refWaiter) bool { return w.id == id }):
		return []modelDecision{r.reject(id, messages.RejectReason_REJECT_REASON_INVALID_REQUEST)}
	case r.maxQueue > 0 && int64(len(r.queue)) >= r.maxQueue,
		r.maxQueued > 0 && r.queuedUnits()+u > r.maxQueued:
		return []modelDecision{r.reject(id, messages.RejectReason_REJECT_REASON_QUEUE_FULL)}
	}

	w := refWaiter{id: id, units: u}
	if wait > 0 {
		if r.mode == messages.Mode_MODE_LEAKY_BUCKET {
			late = r.earliest(u)-r.now > wait
		}
		if late {
			return []modelDecision{r.reject(id, messages.RejectReason_REJECT_REASON_DEADLINE)}
		}
		w.deadline = r.now + wait
	}
	r.queue = append(r.queue, w)

	return nil
}

// try follows DESIGN.md for a TryAcquire.
func (r *refBucket) try(id uint64, amount float64) []modelDecision {
	u, reason := r.units(amount)
	switch {
	case reason != granted:
		return []modelDecision{r.reject(id, reason)}
	case len(r.queue) > 0 || !r.fits(u):
		return []modelDecision{r.reject(id, messages.RejectReason_REJECT_REASON_WOULD_WAIT)}
	}

	return []modelDecision{r.grant(id, u)}
}

// cancel withdraws id if it waits and lets the queue move up.
func (r *refBucket) cancel(id uint64) []modelDecision {
	i := slices.IndexFunc(r.queue, func(w refWaiter) bool { return w.id == id })
	if i < 0 {
		return nil
	}
	r.queue = slices.Delete(r.queue, i, i+1)
	out := []modelDecision{r.reject(id, messages.RejectReason_REJECT_REASON_CANCELLED)}

	return append(out, r.drain()...)
}

// release undoes the latest grant if it was id's.
func (r *refBucket) release(id uint64) (bool, []modelDecision) {
	g := r.last
	if g == nil || g.id != id {
		return false, nil
	}

	r.last = nil
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		if n := len(r.window); n > 0 && r.window[n-1].seq == g.seq {
			r.window = r.window[:n-1]
		}
	} else {
		r.level, r.levelAt, r.memo = g.level, g.levelAt, nil
	}
	r.granted--
	r.grantedUnits -= uint64(g.units)

	return true, r.drain()
}

// drain grants the head while it fits, dropping heads whose wait limit
// has passed.
func (r *refBucket) drain() []modelDecision {
	var out []modelDecision
	for len(r.queue) > 0 {
		w := r.queue[0]
		switch {
		case w.deadline != 0 && r.now > w.deadline:
			out = append(out, r.reject(w.id, messages.RejectReason_REJECT_REASON_DEADLINE))
		case r.fits(w.units):
			out = append(out, r.grant(w.id, w.units))
		default:
			return out
		}
		r.queue = r.queue[1:]
	}

	return out
}

// nextDue returns when the head will fit.
func (r *refBucket) nextDue() (int64, bool) {
	if len(r.queue) == 0 {
		return 0, false
	}

	return r.dueAt(r.queue[0].units), true
}

// setLimit changes the rule: the level stays (to the millionth, rounded
// up) and drains at the new rate; the window keeps what it holds. Waiters
// larger than the new capacity are dropped.
func (r *refBucket) setLimit(l *messages.Limit) []modelDecision {
	if r.mode == messages.Mode_MODE_LEAKY_BUCKET {
		r.setLevel(new(big.Rat).SetInt64(ceilRat(r.levelNow())))
	}
	r.setRule(l)
	r.last = nil

	var out []modelDecision
	r.queue = slices.DeleteFunc(r.queue, func(w refWaiter) bool {
		if w.units <= r.burst {
			return false
		}
		out = append(out, r.reject(w.id, messages.RejectReason_REJECT_REASON_TOO_LARGE))
		return true
	})

	return append(out, r.drain()...)
}

// restart makes the bucket at least full: the level is at least the burst;
// the window holds at least the rate, all of it granted now.
func (r *refBucket) restart() {
	r.last = nil
	if r.mode == messages.Mode_MODE_SLIDING_WINDOW {
		r.window = []refEntry{{at: r.now, units: max(r.rate, r.held())}}
		return
	}

	level := r.levelNow()
	if burst := new(big.Rat).SetInt64(r.burst); level.Cmp(burst) < 0 {
		level = burst
	}
	r.setLevel(level)
}

// stop rejects every waiter.
func (r *refBucket) stop() []modelDecision {
	var out []modelDecision
	for _, w := range r.queue {
		out = append(out, r.reject(w.id, messages.RejectReason_REJECT_REASON_STOPPED))
	}
	r.queue = nil

	return out
}

// ceilRat returns the least integer not below x.
func ceilRat(x *big.Rat) int64 {
	q, m := new(big.Int).DivMod(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}

	return q.Int64()
}

// leakyCheck checks guarantee 1 for a leaky bucket on the history of grants:
// what is granted in [t1, t2] is at most the burst at t2 plus what the
// rates in force drain from t1 to t2. With one limit that is
// burst + rate·(t2-t1)/per; across a change it is what DESIGN.md's
// level-keeping semantics allow.
//
// With G(t) the amount granted up to t and D(t) the drain since the
// bucket began, the bound reads G(t2) - D(t2) - burst <= G(t1-) - D(t1), so
// the least right-hand side over earlier grants is enough.
type leakyCheck struct {
	rate, per, burst int64
	drainAt          int64
	drain            *big.Rat // D(drainAt)
	total            int64    // G now
	history          []leakyMark
}

// leakyMark is one grant and the least bound over the grants up to it.
type leakyMark struct {
	units   int64
	floor   *big.Rat // least G(t1-) - D(t1) so far
	floorAt int64    // its t1
}

func newLeakyCheck(r *refBucket) leakyCheck {
	return leakyCheck{rate: r.rate, per: r.per, burst: r.burst, drainAt: r.now,
		drain: new(big.Rat)}
}

// drainTo returns D(at).
func (k *leakyCheck) drainTo(at int64) *big.Rat {
	d := new(big.Rat).SetFrac64(at-k.drainAt, k.per)
	d.Mul(d, new(big.Rat).SetInt64(k.rate))

	return d.Add(d, k.drain)
}

// grant records u units granted at, or says how it breaks the bound.
func (k *leakyCheck) grant(at, u int64) error {
	d := k.drainTo(at)
	key := new(big.Rat).Sub(new(big.Rat).SetInt64(k.total), d)
	mark := leakyMark{units: u, floor: key, floorAt: at}
	if n := len(k.history); n > 0 && k.history[n-1].floor.Cmp(key) < 0 {
		mark.floor, mark.floorAt = k.history[n-1].floor, k.history[n-1].floorAt
	}

	lhs := new(big.Rat).SetInt64(k.total + u - k.burst)
	if lhs.Sub(lhs, d).Cmp(mark.floor) > 0 {
		// Back from the bound's terms to the amount and the interval.
		from := k.drainTo(mark.floorAt)
		amount := new(big.Rat).SetInt64(k.total + u)
		amount.Sub(amount, mark.floor).Sub(amount, from)
		bound := new(big.Rat).SetInt64(k.burst)
		bound.Add(bound, d).Sub(bound, from)
		return fmt.Errorf("%s millionths granted in [%v, %v], the bound is %s",
			amount.FloatString(3), time.Duration(mark.floorAt), time.Duration(at),
			bound.FloatString(3))
	}

	k.total += u
	k.history = append(k.history, mark)

	return nil
}

// release forgets the latest grant.
func (k *leakyCheck) release() {
	if n := len(k.history); n > 0 {
		k.total -= k.history[n-1].units
		k.history = k.history[:n-1]
	}
}

// setLimit makes l the rule from at on.
func (k *leakyCheck) setLimit(at int64, l *messages.Limit) {
	k.drain, k.drainAt = k.drainTo(at), at
	k.rate = int64(math.Round(l.GetRate() * 1e6))
	k.per = l.GetPerNanos()
	k.burst = int64(math.Round(l.GetBurst() * 1e6))
}

// slidingCheck checks guarantee 1 for a sliding window on the history of
// grants: each grant at t leaves at most rate in (t-per, t]. Across a
// limit change the window keeps what it holds: grants that had left it
// before the change stay out.
type slidingCheck struct {
	rate, per int64
	cutoff    int64   // grants at or before it have left the window for good
	at        []int64 // grant times, in order
	sum       []int64 // sum[i] is what grants 0..i-1 granted
}

// grant records u units granted at, or says how it breaks the bound.
func (k *slidingCheck) grant(at, u int64) error {
	if len(k.sum) == 0 {
		k.sum = append(k.sum, 0)
	}
	from := max(at-k.per, k.cutoff)
	i := sort.Search(len(k.at), func(i int) bool { return k.at[i] > from })
	total := k.sum[len(k.sum)-1]
	if held := total - k.sum[i] + u; held > k.rate {
		return fmt.Errorf("(%v, %v] holds %d millionths, the limit is %d",
			time.Duration(from), time.Duration(at), held, k.rate)
	}

	k.at = append(k.at, at)
	k.sum = append(k.sum, total+u)

	return nil
}

// release forgets the latest grant.
func (k *slidingCheck) release() {
	if n := len(k.at); n > 0 {
		k.at = k.at[:n-1]
		k.sum = k.sum[:n]
	}
}

// setLimit makes l the rule from at on.
func (k *slidingCheck) setLimit(at int64, l *messages.Limit) {
	k.cutoff = max(k.cutoff, at-k.per)
	k.rate = int64(math.Round(l.GetRate() * 1e6))
	k.per = l.GetPerNanos()
}
