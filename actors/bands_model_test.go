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

// bandSteps is how many random operations one run of the multi-band model
// test makes.
const bandSteps = 100_000

// TestModelBands drives a core with several bands, leaky and sliding mixed,
// and a reference made of one single-band reference per band (see
// refBucket) side by side: a request is granted when every band's
// reference allows it, FIFO across them. After every operation the
// decisions, the queue and every band's level must agree, and every band's
// grants must keep to that band's limit.
func TestModelBands(t *testing.T) {
	t.Parallel()

	m := &bandModel{t: t, rng: rand.New(rand.NewPCG(7, 0))}
	m.fresh()
	for m.step = 0; m.step < bandSteps; m.step++ {
		m.randomOp()
		m.compareState()
	}

	for _, r := range []messages.RejectReason{granted,
		messages.RejectReason_REJECT_REASON_TOO_LARGE,
		messages.RejectReason_REJECT_REASON_CANCELLED,
		messages.RejectReason_REJECT_REASON_WOULD_WAIT} {
		if m.seen[r] == 0 {
			t.Errorf("no decision %s in %d steps", reasonName(r), bandSteps)
		}
	}
	if m.multiWaits == 0 {
		t.Error("no grant ever waited on a band other than the first")
	}
}

// bandModel is the state of the multi-band model test.
type bandModel struct {
	t    *testing.T
	rng  *rand.Rand
	step int
	now  int64

	c      *core
	refs   []*refBucket // one per band, with empty queues of their own
	queue  []refWaiter  // the reference's FIFO
	checks []func(at, u int64) error
	nextID uint64
	recent []string
	seen   map[messages.RejectReason]int

	multiWaits int // grants whose due time a later band set
}

// fresh starts a new bucket with two to four random bands.
func (m *bandModel) fresh() {
	l := m.randomBand()
	for range 1 + m.rng.IntN(3) {
		b := m.randomBand()
		l.Bands = append(l.Bands, &messages.Band{Rate: b.GetRate(), PerNanos: b.GetPerNanos(),
			Burst: b.GetBurst(), Mode: b.GetMode()})
	}

	c, err := newCore(l, 0, 0, m.now)
	if err != nil {
		m.t.Fatalf("newCore(%v) = %v", l, err)
	}
	m.c, m.queue, m.refs, m.checks = c, nil, nil, nil
	if m.seen == nil {
		m.seen = make(map[messages.RejectReason]int)
	}
	for _, b := range append([]*messages.Limit{l}, bandLimits(l)...) {
		r := newReference(b, 0, 0, m.now)
		m.refs = append(m.refs, r)
		if b.GetMode() == messages.Mode_MODE_SLIDING_WINDOW {
			k := &slidingCheck{rate: r.rate, per: r.per, cutoff: -1 << 62}
			m.checks = append(m.checks, k.grant)
		} else {
			k := newLeakyCheck(r)
			m.checks = append(m.checks, k.grant)
		}
	}
	m.note(fmt.Sprintf("new bucket %v", l))
}

// bandLimits returns the extra bands of l as limits of their own.
func bandLimits(l *messages.Limit) []*messages.Limit {
	var out []*messages.Limit
	for _, b := range l.GetBands() {
		out = append(out, &messages.Limit{Rate: b.GetRate(), PerNanos: b.GetPerNanos(),
			Burst: b.GetBurst(), Mode: b.GetMode()})
	}

	return out
}

// randomBand returns a valid one-band limit of a random mode.
func (m *bandModel) randomBand() *messages.Limit {
	pers := []time.Duration{100 * time.Millisecond, time.Second, 3 * time.Second,
		10 * time.Second}
	per := pers[m.rng.IntN(len(pers))]
	if m.rng.IntN(2) == 0 {
		rates := []float64{2, 3, 5, 10}
		return slidingLimit(rates[m.rng.IntN(len(rates))], per)
	}

	rates := []float64{1, 2.5, 7, 20}
	bursts := []float64{2, 3.5, 5, 10}

	return leakyLimit(rates[m.rng.IntN(len(rates))], per, bursts[m.rng.IntN(len(bursts))])
}

// randomOp makes one random operation at the current time.
func (m *bandModel) randomOp() {
	switch p := m.rng.IntN(100); {
	case p < 30 && len(m.queue) < 30:
		m.acquire()
	case p < 38:
		m.try()
	case p < 46:
		m.cancel()
	case p < 70:
		m.leakDue()
	case p < 97:
		m.now += m.rng.Int64N(int64(2 * time.Second))
	case p < 99:
		m.restart()
	default:
		m.c.stop(m.now)
		m.fresh()
	}
}

// amount returns a random amount, now and then one too large for a band.
func (m *bandModel) amount() float64 {
	return []float64{0.5, 1, 1, 1, 2, 3, 4.5, 12}[m.rng.IntN(8)]
}

func (m *bandModel) acquire() {
	m.nextID++
	id, amount := m.nextID, m.amount()
	m.note(fmt.Sprintf("at %v acquire(#%d, %v)", time.Duration(m.now), id, amount))

	m.c.acquire(m.now, testSender, &messages.Acquire{RequestId: id, Amount: amount})
	m.advanceRefs()
	u, reason := m.units(amount)
	switch {
	case reason != granted:
		m.compare([]modelDecision{{id, reason}})
	case len(m.queue) == 0 && m.fits(u):
		m.compare([]modelDecision{m.grant(id, u)})
	default:
		m.queue = append(m.queue, refWaiter{id: id, units: u})
		m.compare(nil)
	}
}

func (m *bandModel) try() {
	m.nextID++
	id, amount := m.nextID, m.amount()
	m.note(fmt.Sprintf("at %v try(#%d, %v)", time.Duration(m.now), id, amount))

	m.c.try(m.now, testSender, &messages.TryAcquire{RequestId: id, Amount: amount})
	m.advanceRefs()
	u, reason := m.units(amount)
	switch {
	case reason != granted:
		m.compare([]modelDecision{{id, reason}})
	case len(m.queue) == 0 && m.fits(u):
		m.compare([]modelDecision{m.grant(id, u)})
	default:
		m.compare([]modelDecision{{id, messages.RejectReason_REJECT_REASON_WOULD_WAIT}})
	}
}

func (m *bandModel) cancel() {
	if len(m.queue) == 0 {
		return
	}
	i := m.rng.IntN(len(m.queue))
	id := m.queue[i].id
	m.note(fmt.Sprintf("at %v cancel(#%d)", time.Duration(m.now), id))

	m.c.cancel(m.now, keyOf(testSender, id))
	m.advanceRefs()
	m.queue = slices.Delete(m.queue, i, i+1)
	want := []modelDecision{{id, messages.RejectReason_REJECT_REASON_CANCELLED}}
	m.compare(append(want, m.drain()...))
}

// leakDue moves the clock to when the head is due, by the reference, and
// leaks there, as the timer would.
func (m *bandModel) leakDue() {
	if len(m.queue) == 0 {
		return
	}
	due, by := m.dueAt(m.queue[0].units)
	if by > 0 {
		m.multiWaits++
	}
	m.now = max(m.now, due)
	m.note(fmt.Sprintf("at %v leak()", time.Duration(m.now)))

	m.c.leak(m.now)
	m.advanceRefs()
	m.compare(m.drain())
}

func (m *bandModel) restart() {
	m.note(fmt.Sprintf("at %v restart()", time.Duration(m.now)))

	m.c.restart(m.now)
	m.advanceRefs()
	for _, r := range m.refs {
		r.restart()
	}
	m.compare(nil)
}

// advanceRefs moves every band's reference to the current time.
func (m *bandModel) advanceRefs() {
	for _, r := range m.refs {
		r.advance(m.now)
	}
}

// units converts amount, refused if any band cannot ever hold it.
func (m *bandModel) units(amount float64) (int64, messages.RejectReason) {
	var u int64
	for _, r := range m.refs {
		got, reason := r.units(amount)
		if reason != granted {
			return 0, reason
		}
		u = got
	}

	return u, granted
}

// fits reports whether every band allows u units now.
func (m *bandModel) fits(u int64) bool {
	for _, r := range m.refs {
		if !r.fits(u) {
			return false
		}
	}

	return true
}

// dueAt returns when every band allows u units, and which band is last.
func (m *bandModel) dueAt(u int64) (int64, int) {
	at, by := int64(0), 0
	for i, r := range m.refs {
		if d := r.dueAt(u); d > at {
			at, by = d, i
		}
	}

	return at, by
}

// grant charges u units to every band and checks each band's limit.
func (m *bandModel) grant(id uint64, u int64) modelDecision {
	for i, r := range m.refs {
		r.grant(id, u)
		if err := m.checks[i](m.now, u); err != nil {
			m.fail("#%d over band %d's limit: %v", id, i, err)
		}
	}

	return modelDecision{id: id, reason: granted}
}

// drain grants the head while every band allows it.
func (m *bandModel) drain() []modelDecision {
	var out []modelDecision
	for len(m.queue) > 0 && m.fits(m.queue[0].units) {
		w := m.queue[0]
		m.queue = m.queue[1:]
		out = append(out, m.grant(w.id, w.units))
	}

	return out
}

// compare checks the core's decisions in the latest call against want.
func (m *bandModel) compare(want []modelDecision) {
	got := make([]modelDecision, len(m.c.out))
	for i, o := range m.c.out {
		got[i] = modelDecision{id: o.request, reason: o.reason}
		m.seen[o.reason]++
	}
	if !slices.Equal(got, want) {
		m.fail("decided %v, want %v", got, want)
	}
}

// compareState compares the queue and every band's level.
func (m *bandModel) compareState() {
	i := 0
	for w := m.c.queue.head; w != nil; w, i = w.next, i+1 {
		if i >= len(m.queue) || w.key.request != m.queue[i].id {
			m.fail("waiter %d is #%d, want %v", i, w.key.request, m.queue)
		}
	}
	if i != len(m.queue) {
		m.fail("queue has %d waiters, want %d", i, len(m.queue))
	}

	m.c.advanceClock(m.now)
	m.advanceRefs()
	for b := range m.c.bands {
		if got, want := m.c.bands[b].level(m.c.now), m.refs[b].levelUnits(); int64(got) != want {
			m.fail("band %d level %d, want %d", b, got, want)
		}
	}
}

func (m *bandModel) note(op string) {
	if len(m.recent) == 12 {
		m.recent = m.recent[1:]
	}
	m.recent = append(m.recent, fmt.Sprintf("step %d: %s", m.step, op))
}

func (m *bandModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("step %d: %s\nlatest operations:\n\t%s", m.step, fmt.Sprintf(format, args...),
		strings.Join(m.recent, "\n\t"))
}
