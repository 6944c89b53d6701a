package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dripsched/drip/messages"
)

// holdSteps is how many random operations one run of the all-or-nothing
// model test makes.
const holdSteps = 100_000

// TestModelAllOrNothing plays the protocol of scheduler.AcquireAll on two
// cores, a and b, always in that order, among plain requests to each: a
// multi request asks a for a hold, then, once a holds it, asks b for a
// hold, and commits both once b grants; a cancel hands back what is held
// and withdraws what waits. After every step it checks that
//
//   - each core keeps its limit, counting only grants that were kept
//     (exact references of the bound, leakyCheck and slidingCheck);
//   - every hand-back undoes its grant exactly (release reports it did);
//   - grants leave each queue in arrival order (FIFO);
//   - nothing is granted by a core while it holds a part;
//
// and at the end, after time has passed with no new requests, that every
// request was answered: no two multi requests wait for each other.
func TestModelAllOrNothing(t *testing.T) {
	t.Parallel()

	m := newHoldModel(t, 11)
	for m.step = 0; m.step < holdSteps; m.step++ {
		m.randomOp()
	}
	m.finish()

	if m.committed == 0 || m.rolledBack == 0 || m.heldWaits == 0 {
		t.Errorf("%d committed, %d rolled back, %d waited on b while a held: want all > 0",
			m.committed, m.rolledBack, m.heldWaits)
	}
}

// holdCore is one bucket of the model with its contract check.
type holdCore struct {
	name    string
	c       *core
	check   func(at, u int64) error
	undo    func()
	waiting []uint64 // queued request ids, in arrival order
}

// multi is one all-or-nothing request: parts on a and b.
type multi struct {
	idA, idB uint64
	uA, uB   float64
	state    string // "wait a", "held a", "wait b", "done", "cancelled"
}

type holdModel struct {
	t    *testing.T
	rng  *rand.Rand
	step int
	now  int64

	a, b   *holdCore
	multis map[uint64]*multi // by the id of either part
	plain  map[uint64]bool   // plain requests still waiting
	nextID uint64
	recent []string

	committed, rolledBack, heldWaits int
}

func newHoldModel(t *testing.T, seed uint64) *holdModel {
	m := &holdModel{t: t, rng: rand.New(rand.NewPCG(seed, 0)), multis: make(map[uint64]*multi),
		plain: make(map[uint64]bool)}
	m.a = m.newCore("a", leakyLimit(5, time.Second, 3))
	m.b = m.newCore("b", slidingLimit(4, time.Second))

	return m
}

// newCore makes a bucket whose holds never expire, so that a hand-back is
// always exact; expiry is TestCoreHold's.
func (m *holdModel) newCore(name string, l *messages.Limit) *holdCore {
	c, err := newCore(l, 0, 0, 0)
	if err != nil {
		m.t.Fatal(err)
	}
	c.maxHold = forever

	hc := &holdCore{name: name, c: c}
	r := newReference(l, 0, 0, 0)
	if l.GetMode() == messages.Mode_MODE_SLIDING_WINDOW {
		k := &slidingCheck{rate: r.rate, per: r.per, cutoff: -1 << 62}
		hc.check, hc.undo = k.grant, k.release
	} else {
		k := newLeakyCheck(r)
		hc.check, hc.undo = k.grant, k.release
	}

	return hc
}

func (m *holdModel) randomOp() {
	switch p := m.rng.IntN(100); {
	case p < 20 && len(m.plain)+len(m.multis) < 60:
		m.acquirePlain([]*holdCore{m.a, m.b}[m.rng.IntN(2)])
	case p < 35 && len(m.plain)+len(m.multis) < 60:
		m.acquireMulti()
	case p < 45:
		m.cancelRandom()
	case p < 75:
		m.leakDue()
	default:
		m.now += m.rng.Int64N(int64(700 * time.Millisecond))
	}
}

func (m *holdModel) id() uint64 {
	m.nextID++
	return m.nextID
}

func (m *holdModel) acquirePlain(hc *holdCore) {
	id := m.id()
	amount := []float64{0.5, 1, 2}[m.rng.IntN(3)]
	m.note(fmt.Sprintf("at %v %s.acquire(#%d, %v)", time.Duration(m.now), hc.name, id, amount))

	m.plain[id] = true
	hc.c.acquire(m.now, testSender, &messages.Acquire{RequestId: id, Amount: amount})
	m.track(hc, id)
	m.settle(hc)
}

func (m *holdModel) acquireMulti() {
	mu := &multi{idA: m.id(), idB: m.id(), uA: []float64{1, 2, 3}[m.rng.IntN(3)],
		uB: []float64{1, 2, 4}[m.rng.IntN(3)], state: "wait a"}
	m.note(fmt.Sprintf("at %v multi(a #%d %v, b #%d %v)", time.Duration(m.now), mu.idA, mu.uA,
		mu.idB, mu.uB))

	m.multis[mu.idA], m.multis[mu.idB] = mu, mu
	m.a.c.acquire(m.now, testSender, &messages.Acquire{RequestId: mu.idA, Amount: mu.uA,
		Hold: true})
	m.track(m.a, mu.idA)
	m.settle(m.a)
}

// track records id as waiting in hc if hc queued it.
func (m *holdModel) track(hc *holdCore, id uint64) {
	if _, ok := hc.c.queue.index[keyOf(testSender, id)]; ok {
		hc.waiting = append(hc.waiting, id)
	}
}

// cancelRandom cancels a random waiting plain request or multi request.
func (m *holdModel) cancelRandom() {
	var ids []uint64
	for id := range m.plain {
		ids = append(ids, id)
	}
	for id, mu := range m.multis {
		if id == mu.idA {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	id := ids[m.rng.IntN(len(ids))]

	if m.plain[id] {
		hc := m.a
		if !slices.Contains(m.a.waiting, id) {
			hc = m.b
		}
		m.note(fmt.Sprintf("at %v %s.cancel(#%d)", time.Duration(m.now), hc.name, id))
		hc.c.cancel(m.now, keyOf(testSender, id))
		m.settle(hc)
		return
	}
	m.cancelMulti(m.multis[id])
}

// cancelMulti does what AcquireAll does when its context ends.
func (m *holdModel) cancelMulti(mu *multi) {
	m.note(fmt.Sprintf("at %v cancel multi #%d (%s)", time.Duration(m.now), mu.idA, mu.state))

	switch mu.state {
	case "wait a":
		m.a.c.cancel(m.now, keyOf(testSender, mu.idA))
		m.settle(m.a)
	case "wait b":
		// b answers the cancel, and answered hands a's part back.
		m.b.c.cancel(m.now, keyOf(testSender, mu.idB))
		m.settle(m.b)
	}
}

// handBack releases a's held part, which must be undone exactly.
func (m *holdModel) handBack(mu *multi) {
	if !m.a.c.release(m.now, keyOf(testSender, mu.idA)) {
		m.fail("a kept the held part of #%d instead of undoing it (hold %+v, last %+v)", mu.idA,
			m.a.c.hold, m.a.c.last)
	}
	m.a.undo()
	m.rolledBack++
	mu.state = "cancelled"
	m.forget(mu)
	m.settle(m.a)
}

func (m *holdModel) forget(mu *multi) {
	delete(m.multis, mu.idA)
	delete(m.multis, mu.idB)
}

// leakDue moves the clock to the earliest wake-up of either core and
// leaks there.
func (m *holdModel) leakDue() {
	next, ok := int64(0), false
	for _, hc := range []*holdCore{m.a, m.b} {
		if due, waiting := hc.c.nextDue(); waiting && (!ok || due < next) {
			next, ok = due, true
		}
	}
	if !ok {
		return
	}
	m.now = max(m.now, next)
	m.note(fmt.Sprintf("at %v leak", time.Duration(m.now)))

	for _, hc := range []*holdCore{m.a, m.b} {
		hc.c.leak(m.now)
		m.settle(hc)
	}
}

// settle handles the decisions of hc's latest call, and whatever they set
// off in turn, as the Go API would.
func (m *holdModel) settle(hc *holdCore) {
	out := slices.Clone(hc.c.out)
	for _, o := range out {
		m.answered(hc, o)
	}
}

// answered handles one decision of hc.
func (m *holdModel) answered(hc *holdCore, o outcome) {
	i := slices.Index(hc.waiting, o.request)
	if i > 0 && o.reason == granted {
		m.fail("%s granted #%d before #%d, which came first", hc.name, o.request, hc.waiting[0])
	}
	if i >= 0 {
		hc.waiting = slices.Delete(hc.waiting, i, i+1)
	}

	if o.reason == granted {
		if err := hc.check(hc.c.now, int64(o.units)); err != nil {
			m.fail("%s over its limit granting #%d: %v", hc.name, o.request, err)
		}
	}

	mu, isMulti := m.multis[o.request]
	if !isMulti {
		delete(m.plain, o.request)
		return
	}
	if o.reason != granted {
		// Refused or cancelled: on a, nothing is held yet; on b, a's part
		// goes back.
		if hc == m.b {
			m.handBack(mu)
		} else {
			mu.state = "cancelled"
			m.forget(mu)
		}
		return
	}

	if hc == m.a {
		m.heldByA(mu)
		return
	}
	m.commitBoth(mu)
}

// heldByA asks b for its part once a holds the first.
func (m *holdModel) heldByA(mu *multi) {
	if !m.a.c.hold.active {
		m.fail("a granted multi #%d but holds nothing", mu.idA)
	}
	mu.state = "wait b"
	m.b.c.acquire(m.now, testSender, &messages.Acquire{RequestId: mu.idB, Amount: mu.uB,
		Hold: true})
	m.track(m.b, mu.idB)
	if len(m.b.c.out) == 0 {
		m.heldWaits++
	}
	m.settle(m.b)
}

// commitBoth commits both parts, which lets a and b serve their queues.
func (m *holdModel) commitBoth(mu *multi) {
	mu.state = "done"
	m.committed++
	m.forget(mu)

	for _, p := range []struct {
		hc *holdCore
		id uint64
	}{{m.a, mu.idA}, {m.b, mu.idB}} {
		p.hc.c.commit(m.now, keyOf(testSender, p.id))
		m.settle(p.hc)
	}
}

// finish lets time pass with no new requests and checks that every
// request has been answered.
func (m *holdModel) finish() {
	for range 10_000 {
		if len(m.plain) == 0 && len(m.multis) == 0 {
			return
		}
		m.now += int64(time.Second)
		m.leakDue()
	}
	m.fail("%d plain and %d multi requests still wait after the queues had time to drain",
		len(m.plain), len(m.multis)/2)
}

func (m *holdModel) note(op string) {
	if len(m.recent) == 12 {
		m.recent = m.recent[1:]
	}
	m.recent = append(m.recent, fmt.Sprintf("step %d: %s", m.step, op))
}

func (m *holdModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("step %d: %s\nlatest operations:\n\t%s", m.step, fmt.Sprintf(format, args...),
		strings.Join(m.recent, "\n\t"))
}
