package actors

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/messages"
)

// testSender is the requester every core test speaks for.
var testSender = actor.NewPID("test", "a")

// leakyLimit returns a leaky-bucket limit of rate units per per with the
// given burst.
func leakyLimit(rate float64, per time.Duration, burst float64) *messages.Limit {
	return &messages.Limit{Rate: rate, PerNanos: int64(per), Burst: burst,
		Mode: messages.Mode_MODE_LEAKY_BUCKET}
}

// slidingLimit returns a sliding-window limit of rate units per per.
func slidingLimit(rate float64, per time.Duration) *messages.Limit {
	return &messages.Limit{Rate: rate, PerNanos: int64(per),
		Mode: messages.Mode_MODE_SLIDING_WINDOW}
}

// newTestCore returns a core for l created at time 0, failing the test if
// l is rejected.
func newTestCore(t testing.TB, l *messages.Limit, maxQueue int, maxQueued float64) *core {
	t.Helper()

	c, err := newCore(l, maxQueue, maxQueued, 0)
	if err != nil {
		t.Fatalf("newCore(%v) = %v", l, err)
	}

	return c
}

// coreStep is one call on the core at a time, and what it must report.
type coreStep struct {
	at   time.Duration
	op   coreOp
	want string
}

// coreOp is an operation on the core: do runs it at now and describes what
// happened, so that a step can compare the description with what it wants.
type coreOp struct {
	name string
	do   func(c *core, now int64) string
}

// runSteps runs steps in order on c and reports every step whose result
// differs from what it wants.
func runSteps(t *testing.T, c *core, steps []coreStep) {
	t.Helper()

	for i, s := range steps {
		if got := s.op.do(c, int64(s.at)); got != s.want {
			t.Errorf("step %d: at %v %s = %q, want %q", i, s.at, s.op.name, got, s.want)
		}
	}
}

// describeOut renders the decisions of the latest call, in order, as
// "#1 granted, #2 CANCELLED", or "nothing".
func describeOut(out []outcome) string {
	if len(out) == 0 {
		return "nothing"
	}

	parts := make([]string, len(out))
	for i, o := range out {
		parts[i] = fmt.Sprintf("#%d %s", o.request, reasonName(o.reason))
	}

	return strings.Join(parts, ", ")
}

// reasonName returns "granted" for a grant and the reason without its
// prefix for a rejection.
func reasonName(r messages.RejectReason) string {
	if r == granted {
		return "granted"
	}

	return strings.TrimPrefix(r.String(), "REJECT_REASON_")
}

// opAcquire asks for amount with no wait limit.
func opAcquire(id uint64, amount float64) coreOp {
	return opAcquireWait(id, amount, 0)
}

// opAcquireWait asks for amount, waiting at most wait (0: no limit). A
// request that neither got an answer nor failed is reported as "queued".
func opAcquireWait(id uint64, amount float64, wait time.Duration) coreOp {
	name := fmt.Sprintf("acquire(#%d, %v)", id, amount)
	if wait != 0 {
		name = fmt.Sprintf("acquire(#%d, %v, wait %v)", id, amount, wait)
	}

	return coreOp{name, func(c *core, now int64) string {
		m := &messages.Acquire{RequestId: id, Amount: amount, MaxWaitNanos: int64(wait)}
		c.acquire(now, testSender, m)
		if _, ok := c.queue.index[keyOf(testSender, id)]; ok && len(c.out) == 0 {
			return "queued"
		}
		return describeOut(c.out)
	}}
}

// opTry asks for amount without waiting.
func opTry(id uint64, amount float64) coreOp {
	return coreOp{fmt.Sprintf("try(#%d, %v)", id, amount), func(c *core, now int64) string {
		c.try(now, testSender, &messages.TryAcquire{RequestId: id, Amount: amount})
		return describeOut(c.out)
	}}
}

// opCancel withdraws request id.
func opCancel(id uint64) coreOp {
	return coreOp{fmt.Sprintf("cancel(#%d)", id), func(c *core, now int64) string {
		c.cancel(now, keyOf(testSender, id))
		return describeOut(c.out)
	}}
}

// opRelease hands back the grant of request id; the result says whether
// the bucket took it back, then what that let through.
func opRelease(id uint64) coreOp {
	return coreOp{fmt.Sprintf("release(#%d)", id), func(c *core, now int64) string {
		if !c.release(now, keyOf(testSender, id)) {
			return "kept; " + describeOut(c.out)
		}
		return "released; " + describeOut(c.out)
	}}
}

// opLeak is the timer's wake-up.
func opLeak() coreOp {
	return coreOp{"leak()", func(c *core, now int64) string {
		c.leak(now)
		return describeOut(c.out)
	}}
}

// opSetLimit changes the limit; a rejected limit is reported as "invalid".
func opSetLimit(l *messages.Limit) coreOp {
	name := fmt.Sprintf("setLimit(%v per %v, burst %v)", l.GetRate(),
		time.Duration(l.GetPerNanos()), l.GetBurst())

	return coreOp{name, func(c *core, now int64) string {
		if err := c.setLimit(now, l); err != nil {
			return "invalid"
		}
		return describeOut(c.out)
	}}
}

// opRestart restarts the bucket as after a crash.
func opRestart() coreOp {
	return coreOp{"restart()", func(c *core, now int64) string {
		c.restart(now)
		return describeOut(c.out)
	}}
}

// opStop stops the bucket.
func opStop() coreOp {
	return coreOp{"stop()", func(c *core, now int64) string {
		c.stop(now)
		return describeOut(c.out)
	}}
}

// opDue reports when the head of the queue is due, to the nanosecond, or
// "idle". It does not move the core's clock.
func opDue() coreOp {
	return coreOp{"nextDue()", func(c *core, _ int64) string {
		due, ok := c.nextDue()
		if !ok {
			return "idle"
		}
		return time.Duration(due).String()
	}}
}

// opLevel reports the level and the queue from the status at now.
func opLevel() coreOp {
	return coreOp{"status()", func(c *core, now int64) string {
		st := c.status(now)
		return fmt.Sprintf("level %v, %d queued", st.GetLevel(), st.GetQueued())
	}}
}

func TestCoreLeakyStartsEmpty(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 3), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opLevel(), "level 0, 0 queued"},
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "#2 granted"},
		{0, opAcquire(3, 1), "#3 granted"},
		{0, opAcquire(4, 1), "queued"},
		{0, opDue(), "1s"},
		{999 * ms, opLeak(), "nothing"},
		{1000 * ms, opLeak(), "#4 granted"},
	})

	// The whole burst also goes in one request.
	c = newTestCore(t, leakyLimit(1, time.Second, 3), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 3), "#1 granted"},
		{0, opLevel(), "level 3, 0 queued"},
		{0, opTry(2, 1e-6), "#2 WOULD_WAIT"},
	})
}

func TestCoreFitsUpToBurst(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1.5), "#1 granted"},
		{0, opTry(2, 0.500001), "#2 WOULD_WAIT"},
		{0, opTry(3, 0.5), "#3 granted"}, // level+amount == burst
		{0, opTry(4, 1e-6), "#4 WOULD_WAIT"},
		{250 * ms, opTry(5, 0.25), "#5 granted"},
		{250 * ms, opLevel(), "level 2, 0 queued"},
	})
}

func TestCoreNeverEarly(t *testing.T) {
	// 3 per second with a burst of 3: after the burst, the n-th unit is due
	// at n/3 s, which is never a whole nanosecond, so every due time must be
	// rounded up.
	c := newTestCore(t, leakyLimit(3, time.Second, 3), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 3), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opDue(), "333.333334ms"},
		{333333333, opLeak(), "nothing"},
		{333333334, opLeak(), "#2 granted"},
		{333333334, opAcquire(3, 1), "queued"},
		{333333334, opDue(), "666.666667ms"},
		{666666666, opLeak(), "nothing"},
		{666666667, opLeak(), "#3 granted"},
		{666666667, opAcquire(4, 1), "queued"},
		{666666667, opDue(), "1s"},
		{999999999, opLeak(), "nothing"},
		{1000000000, opLeak(), "#4 granted"},
	})

	// With a burst of 1, any two grants must be a whole 1/3 s apart, so
	// each waits 1/3 s, rounded up, after the previous one's actual time.
	c = newTestCore(t, leakyLimit(3, time.Second, 1), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opDue(), "333.333334ms"},
		{333333333, opLeak(), "nothing"},
		{333333334, opLeak(), "#2 granted"},
		{333333334, opAcquire(3, 1), "queued"},
		{333333334, opDue(), "666.666668ms"},
		{666666667, opLeak(), "nothing"},
		{666666668, opLeak(), "#3 granted"},
	})
}

func TestCoreFIFO(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 2), "#1 granted"},
		{0, opAcquire(2, 2), "queued"},
		{0, opAcquire(3, 0.5), "queued"},
		{0, opDue(), "2s"},
		// #3 would fit from 500 ms on, but #2 came first.
		{500 * ms, opLeak(), "nothing"},
		{1000 * ms, opLeak(), "nothing"},
		{1000 * ms, opTry(4, 0.5), "#4 WOULD_WAIT"},
		{1000 * ms, opAcquire(5, 0.5), "queued"},
		{2000 * ms, opLeak(), "#2 granted"},
		{2000 * ms, opDue(), "2.5s"},
		{2500 * ms, opLeak(), "#3 granted"},
		{3000 * ms, opLeak(), "#5 granted"},
		{3000 * ms, opDue(), "idle"},
		{4000 * ms, opTry(6, 1), "#6 granted"},
	})
}

func TestCoreCancel(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(3, 1), "queued"},
		{0, opAcquire(4, 1), "queued"},
		{0, opAcquire(5, 0.5), "queued"},
		{0, opAcquire(6, 1), "queued"},
		{100 * ms, opCancel(6), "#6 CANCELLED"}, // back
		{200 * ms, opCancel(3), "#3 CANCELLED"}, // middle
		{200 * ms, opCancel(3), "nothing"},
		{200 * ms, opCancel(99), "nothing"},
		{200 * ms, opLevel(), "level 0.8, 3 queued"},
		{200 * ms, opDue(), "1s"},
		{1000 * ms, opLeak(), "#2 granted"},
		{1000 * ms, opDue(), "2s"},
		// At 1.5 s the level is 0.5: #4 does not fit, #5 behind it does,
		// and moves up in the same step as #4 leaves.
		{1500 * ms, opCancel(4), "#4 CANCELLED, #5 granted"}, // front
		{1500 * ms, opDue(), "idle"},
		{1500 * ms, opLevel(), "level 1, 0 queued"},
	})

	// A cancelled head whose successor does not fit yet moves the due time.
	c = newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 2), "#1 granted"},
		{0, opAcquire(2, 2), "queued"},
		{0, opAcquire(3, 1), "queued"},
		{0, opDue(), "2s"},
		{0, opCancel(2), "#2 CANCELLED"},
		{0, opDue(), "1s"},
	})
}

func TestCoreRelease(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 0.5), "#1 granted"},
		{0, opAcquire(2, 0.5), "#2 granted"},
		{0, opRelease(1), "kept; nothing"}, // not the latest grant
		{0, opLevel(), "level 1, 0 queued"},
		{0, opRelease(2), "released; nothing"},
		{0, opLevel(), "level 0.5, 0 queued"},
		{0, opRelease(2), "kept; nothing"}, // only once
		{0, opRelease(1), "kept; nothing"},
		{0, opLevel(), "level 0.5, 0 queued"},

		// A release lets the head of the queue through in the same step.
		{0, opAcquire(3, 0.5), "#3 granted"},
		{0, opAcquire(4, 1), "queued"},
		{0, opDue(), "1s"},
		{300 * ms, opRelease(3), "released; nothing"},
		{300 * ms, opDue(), "500ms"},
		{300 * ms, opRelease(3), "kept; nothing"},
		{500 * ms, opLeak(), "#4 granted"},
		{500 * ms, opRelease(4), "released; nothing"},
		{500 * ms, opLevel(), "level 0, 0 queued"},
	})
}

func TestCoreDeadline(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquireWait(2, 1, time.Second-1), "#2 DEADLINE"},
		{0, opAcquireWait(3, 1, time.Second), "queued"}, // exactly in time
		{0, opAcquireWait(4, 1, 2*time.Second-1), "#4 DEADLINE"},
		{0, opAcquireWait(5, 1, 2*time.Second), "queued"},
		{0, opLevel(), "level 1, 2 queued"},
		{1000 * ms, opLeak(), "#3 granted"},
		{2000 * ms, opLeak(), "#5 granted"},
	})

	// A slower rate makes the head miss its wait limit: it is dropped when
	// the bucket next looks, and the waiter behind it moves up.
	c = newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquireWait(2, 1, time.Second), "queued"},
		{0, opAcquire(3, 0.5), "queued"},
		{500 * ms, opSetLimit(leakyLimit(0.5, time.Second, 1)), "nothing"},
		{500 * ms, opDue(), "1.5s"},
		{1500 * ms, opLeak(), "#2 DEADLINE, #3 granted"},
	})

	// In sliding-window mode a grant leaves the window one period later.
	c = newTestCore(t, slidingLimit(2, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 2), "#1 granted"},
		{200 * ms, opAcquireWait(2, 1, 800*ms-1), "#2 DEADLINE"},
		{200 * ms, opAcquireWait(3, 1, 800*ms), "queued"},
		{1000 * ms, opLeak(), "#3 granted"},
	})
}

// TestCoreDeadlineFarAway checks that a wait limit too long to add to the
// bucket's clock means no limit rather than one already passed. A context
// with a far deadline gives such a limit: time.Until saturates at the
// largest duration.
func TestCoreDeadlineFarAway(t *testing.T) {
	const forever = time.Duration(math.MaxInt64)
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{time.Second, opAcquire(1, 1), "#1 granted"},
		{time.Second, opAcquireWait(2, 1, forever), "queued"},
		{time.Second, opAcquireWait(3, 1, forever-time.Second), "queued"},
		{2 * time.Second, opLeak(), "#2 granted"},
		{3 * time.Second, opLeak(), "#3 granted"},
	})
}

func TestCoreDeadlineDetail(t *testing.T) {
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)
	c.acquire(0, testSender, &messages.Acquire{RequestId: 1, Amount: 1})
	c.acquire(0, testSender, &messages.Acquire{RequestId: 2, Amount: 1,
		MaxWaitNanos: int64(300 * time.Millisecond)})

	if len(c.out) != 1 || c.out[0].reason != messages.RejectReason_REJECT_REASON_DEADLINE {
		t.Fatalf("acquire(#2, 1, wait 300ms) = %s, want #2 DEADLINE", describeOut(c.out))
	}
	for _, v := range []string{"1s", "300ms"} {
		if !strings.Contains(c.out[0].detail, v) {
			t.Errorf("detail %q does not name %s", c.out[0].detail, v)
		}
	}
}

func TestCoreQueueBounds(t *testing.T) {
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 2, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(3, 0.5), "queued"},
		{0, opAcquire(4, 1e-6), "#4 QUEUE_FULL"},
		{0, opCancel(3), "#3 CANCELLED"},
		{0, opAcquire(5, 1e-6), "queued"},
		{0, opLevel(), "level 1, 2 queued"},
	})

	c = newTestCore(t, leakyLimit(1, time.Second, 1), 0, 1.5)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(3, 0.5), "queued"}, // 1.5 waiting: at the bound
		{0, opAcquire(4, 1e-6), "#4 QUEUE_FULL"},
		{1000 * time.Millisecond, opLeak(), "#2 granted"},
		{1000 * time.Millisecond, opAcquire(5, 1), "queued"},
		{1000 * time.Millisecond, opAcquire(6, 0.1), "#6 QUEUE_FULL"},
	})
}

func TestCoreDuplicateRequest(t *testing.T) {
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(2, 0.5), "#2 INVALID_REQUEST"},
		{0, opLevel(), "level 1, 1 queued"},
		{time.Second, opLeak(), "#2 granted"},
	})
}

func TestCoreSetLimitRetimes(t *testing.T) {
	// The example of DESIGN.md: the 0.8 left at 200 ms drains at the new
	// rate in 80 ms.
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opDue(), "1s"},
		{200 * ms, opSetLimit(leakyLimit(10, time.Second, 1)), "nothing"},
		{200 * ms, opLevel(), "level 0.8, 1 queued"},
		{200 * ms, opDue(), "280ms"},
		{280*ms - 1, opLeak(), "nothing"},
		{280 * ms, opLeak(), "#2 granted"},
	})

	// A larger burst lets the waiters through at once.
	c = newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(3, 1), "queued"},
		{0, opAcquire(4, 1), "queued"},
		{500 * ms, opSetLimit(leakyLimit(1, time.Second, 2)), "#2 granted"},
		{500 * ms, opDue(), "1s"},
		// A burst below the level: nothing fits until it has drained.
		{500 * ms, opSetLimit(leakyLimit(1, time.Second, 1)), "nothing"},
		{500 * ms, opLevel(), "level 1.5, 2 queued"},
		{500 * ms, opDue(), "2s"},
		{2000 * ms, opLeak(), "#3 granted"},
	})

	// In sliding-window mode the window's grants stay and count against
	// the new rate.
	c = newTestCore(t, slidingLimit(4, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 3), "#1 granted"},
		{100 * ms, opSetLimit(slidingLimit(2, time.Second)), "nothing"},
		{100 * ms, opAcquire(2, 1), "queued"},
		{100 * ms, opDue(), "1s"},
		{500 * ms, opSetLimit(slidingLimit(4, time.Second)), "#2 granted"},
	})
}

func TestCoreSetLimitInvalidChangesNothing(t *testing.T) {
	invalid := []*messages.Limit{
		nil,
		leakyLimit(0, time.Second, 1),
		leakyLimit(-1, time.Second, 1),
		leakyLimit(math.NaN(), time.Second, 1),
		leakyLimit(math.Inf(1), time.Second, 1),
		leakyLimit(1, 0, 1),
		leakyLimit(1, -time.Second, 1),
		leakyLimit(1, time.Second, 0),
		leakyLimit(1, time.Second, math.NaN()),
		{Rate: 1, PerNanos: int64(time.Second), Burst: 1, Mode: 9},
		slidingLimit(1, time.Second), // another mode
	}

	for _, l := range invalid {
		c := newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)
		c.acquire(0, testSender, &messages.Acquire{RequestId: 1, Amount: 2})
		c.acquire(0, testSender, &messages.Acquire{RequestId: 2, Amount: 1})
		now := int64(300 * time.Millisecond)
		before := c.status(now)
		due, _ := c.nextDue()

		if err := c.setLimit(now, l); err == nil {
			t.Errorf("setLimit(%v) = nil, want an error", l)
		}
		if after := c.status(now); !proto.Equal(before, after) {
			t.Errorf("setLimit(%v): status %v, want %v", l, after, before)
		}
		if len(c.out) != 0 {
			t.Errorf("setLimit(%v) decided %s, want nothing", l, describeOut(c.out))
		}
		if got, _ := c.nextDue(); got != due {
			t.Errorf("setLimit(%v): due %v, want %v", l, time.Duration(got), time.Duration(due))
		}
	}
}

func TestCoreSetLimitDropsTooLarge(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 3), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 3), "#1 granted"},
		{0, opAcquire(2, 2), "queued"},
		{0, opAcquire(3, 0.5), "queued"},
		{0, opAcquire(4, 3), "queued"},
		{0, opAcquire(5, 1), "queued"},
		{500 * ms, opSetLimit(leakyLimit(1, time.Second, 1)), "#2 TOO_LARGE, #4 TOO_LARGE"},
		{500 * ms, opLevel(), "level 2.5, 2 queued"},
		{500 * ms, opDue(), "2.5s"},
		{2500 * ms, opLeak(), "#3 granted"},
		{3500 * ms, opLeak(), "#5 granted"},
	})

	c = newTestCore(t, slidingLimit(3, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 3), "#1 granted"},
		{0, opAcquire(2, 2), "queued"},
		{0, opAcquire(3, 1), "queued"},
		{0, opSetLimit(slidingLimit(1, time.Second)), "#2 TOO_LARGE"},
		{1000 * ms, opLeak(), "#3 granted"},
	})
}

func TestCoreRestartStartsFull(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opRestart(), "nothing"},
		{0, opLevel(), "level 2, 0 queued"},
		{0, opTry(1, 1e-6), "#1 WOULD_WAIT"},
		{0, opAcquire(2, 2), "queued"},
		{0, opDue(), "2s"}, // the whole burst must drain first
		{2000*ms - 1, opLeak(), "nothing"},
		{2000 * ms, opLeak(), "#2 granted"},
	})

	// A restart keeps the queue and re-times it from full.
	c = newTestCore(t, leakyLimit(1, time.Second, 2), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 2), "queued"},
		{0, opDue(), "1s"},
		{500 * ms, opRestart(), "nothing"},
		{500 * ms, opLevel(), "level 2, 1 queued"},
		{500 * ms, opDue(), "2.5s"},
		{500 * ms, opRelease(1), "kept; nothing"}, // a restart forgets grants
	})

	c = newTestCore(t, slidingLimit(2, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{300 * ms, opAcquire(1, 1), "#1 granted"},
		{400 * ms, opRestart(), "nothing"},
		{400 * ms, opLevel(), "level 2, 0 queued"},
		{400 * ms, opAcquire(2, 1e-6), "queued"},
		{400 * ms, opDue(), "1.4s"}, // a whole period after the restart
		{1400*ms - 1, opLeak(), "nothing"},
		{1400 * ms, opLeak(), "#2 granted"},
	})
}

// TestCoreRestartKeepsHigherLevel checks that a restart never lowers the
// level. After a burst is lowered below the level, "full" at the new burst
// is less than what is in the bucket; taking it as the new level would hand
// out capacity the limit has not yet drained.
func TestCoreRestartKeepsHigherLevel(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 10), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 10), "#1 granted"},
		{0, opSetLimit(leakyLimit(1, time.Second, 1)), "nothing"},
		{0, opRestart(), "nothing"},
		{0, opLevel(), "level 10, 0 queued"},
		{0, opAcquire(2, 1), "queued"},
		{0, opDue(), "10s"},
		{9999 * ms, opLeak(), "nothing"},
		{10000 * ms, opLeak(), "#2 granted"},
	})

	// The same in sliding-window mode, where the grants of a lowered rate
	// must still count once a longer period brings them back into view.
	c = newTestCore(t, slidingLimit(10, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 10), "#1 granted"},
		{100 * ms, opSetLimit(slidingLimit(2, time.Second)), "nothing"},
		{200 * ms, opRestart(), "nothing"},
		{300 * ms, opSetLimit(slidingLimit(10, 10*time.Second)), "nothing"},
		{300 * ms, opLevel(), "level 10, 0 queued"},
		{300 * ms, opTry(2, 1e-6), "#2 WOULD_WAIT"},
	})
}

func TestCoreClockBackwards(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{10000 * ms, opAcquire(1, 1), "#1 granted"},
		{5000 * ms, opTry(2, 1e-6), "#2 WOULD_WAIT"},
		{5000 * ms, opLevel(), "level 1, 0 queued"},
		{10500 * ms, opLevel(), "level 0.5, 0 queued"},
		{0, opLevel(), "level 0.5, 0 queued"},
		{0, opAcquire(3, 1), "queued"},
		{0, opDue(), "11s"},
		{0, opLeak(), "nothing"},
		{10999 * ms, opLeak(), "nothing"},
		{3000 * ms, opLeak(), "nothing"},
		{11000 * ms, opLeak(), "#3 granted"},
		{10000 * ms, opTry(4, 1e-6), "#4 WOULD_WAIT"},
	})

	c = newTestCore(t, slidingLimit(1, time.Second), 0, 0)
	runSteps(t, c, []coreStep{
		{5000 * ms, opAcquire(1, 1), "#1 granted"},
		{1000 * ms, opTry(2, 1e-6), "#2 WOULD_WAIT"},
		{5999 * ms, opTry(3, 1e-6), "#3 WOULD_WAIT"},
		{1000 * ms, opTry(4, 1e-6), "#4 WOULD_WAIT"},
		{6000 * ms, opTry(5, 1), "#5 granted"},
	})
}

func TestCoreSlidingWindow(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, slidingLimit(3, time.Second), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{400 * ms, opAcquire(2, 2), "#2 granted"},
		{500 * ms, opAcquire(3, 1), "queued"},
		{500 * ms, opDue(), "1s"},
		{500 * ms, opLevel(), "level 3, 1 queued"},
		// The window is half-open: #1 is out at exactly 1 s, not before.
		{1000*ms - 1, opLeak(), "nothing"},
		{1000 * ms, opLeak(), "#3 granted"},
		{1000 * ms, opAcquire(4, 2), "queued"},
		{1000 * ms, opDue(), "1.4s"},
		{1400*ms - 1, opLeak(), "nothing"},
		{1400 * ms, opLeak(), "#4 granted"},
		// Nothing more fits until #3 leaves at 2 s.
		{1999 * ms, opTry(5, 1e-6), "#5 WOULD_WAIT"},
		{2000 * ms, opTry(6, 1), "#6 granted"},
		{2000 * ms, opTry(7, 1e-6), "#7 WOULD_WAIT"},
		{2400 * ms, opTry(8, 2), "#8 granted"},
		{10 * time.Second, opTry(9, 3), "#9 granted"},
	})
}

func TestCoreStop(t *testing.T) {
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquire(3, 0.5), "queued"},
		{0, opStop(), "#2 STOPPED, #3 STOPPED"},
		{0, opStop(), "nothing"},
		{0, opLevel(), "level 1, 0 queued"},
		{0, opDue(), "idle"},
	})
}

func TestCoreBadAmounts(t *testing.T) {
	const (
		invalid  = messages.RejectReason_REJECT_REASON_INVALID_AMOUNT
		tooLarge = messages.RejectReason_REJECT_REASON_TOO_LARGE
	)
	tests := []struct {
		limit  *messages.Limit
		amount float64
		want   messages.RejectReason
	}{
		{leakyLimit(1, time.Second, 3), math.NaN(), invalid},
		{leakyLimit(1, time.Second, 3), math.Inf(1), invalid},
		{leakyLimit(1, time.Second, 3), math.Inf(-1), invalid},
		{leakyLimit(1, time.Second, 3), -1, invalid},
		{leakyLimit(1, time.Second, 3), math.Copysign(0, -1), invalid},
		{leakyLimit(1, time.Second, 3), 0, invalid},
		{leakyLimit(1, time.Second, 3), 1e-7, invalid},
		{leakyLimit(1, time.Second, 3), 4e-7, invalid},
		{leakyLimit(1, time.Second, 3), math.SmallestNonzeroFloat64, invalid},
		{leakyLimit(1, time.Second, 3), 3.000001, tooLarge},
		{leakyLimit(1, time.Second, 3), 4, tooLarge},
		{leakyLimit(1, time.Second, 3), math.MaxFloat64, tooLarge},
		{slidingLimit(3, time.Second), math.NaN(), invalid},
		{slidingLimit(3, time.Second), -0.5, invalid},
		{slidingLimit(3, time.Second), 1e-7, invalid},
		{slidingLimit(3, time.Second), 3.5, tooLarge},
		{slidingLimit(3, time.Second), 1e300, tooLarge},
	}

	for _, tt := range tests {
		for _, viaTry := range []bool{false, true} {
			c := badAmountCore(t, tt.limit)
			now := int64(500 * time.Millisecond)
			before := c.status(now)
			due, _ := c.nextDue()

			call := fmt.Sprintf("acquire(%v) in %v mode", tt.amount, tt.limit.GetMode())
			if viaTry {
				call = fmt.Sprintf("try(%v) in %v mode", tt.amount, tt.limit.GetMode())
				c.try(now, testSender, &messages.TryAcquire{RequestId: 9, Amount: tt.amount})
			} else {
				c.acquire(now, testSender, &messages.Acquire{RequestId: 9, Amount: tt.amount})
			}

			if len(c.out) != 1 || c.out[0].reason != tt.want {
				t.Errorf("%s = %s, want #9 %s", call, describeOut(c.out), reasonName(tt.want))
				continue
			}
			if v := fmt.Sprint(tt.amount); !strings.Contains(c.out[0].detail, v) {
				t.Errorf("%s: detail %q does not name %s", call, c.out[0].detail, v)
			}

			// Only the count of rejections may change.
			after := c.status(now)
			if after.RejectedTotal != before.RejectedTotal+1 {
				t.Errorf("%s: rejected total %d, want %d", call,
					after.RejectedTotal, before.RejectedTotal+1)
			}
			after.RejectedTotal = before.RejectedTotal
			if !proto.Equal(before, after) {
				t.Errorf("%s: status %v, want %v", call, after, before)
			}
			if got, _ := c.nextDue(); got != due {
				t.Errorf("%s: due %v, want %v", call, time.Duration(got), time.Duration(due))
			}
		}
	}
}

// badAmountCore returns a core for l with part of its capacity used and one
// waiter queued, so that bad input has some state to disturb.
func badAmountCore(t *testing.T, l *messages.Limit) *core {
	t.Helper()

	c := newTestCore(t, l, 0, 0)
	c.acquire(0, testSender, &messages.Acquire{RequestId: 1, Amount: 2})
	c.acquire(0, testSender, &messages.Acquire{RequestId: 2, Amount: 2})
	if len(c.out) != 0 {
		t.Fatalf("setup: acquire(#2, 2) = %s, want queued", describeOut(c.out))
	}

	return c
}

func TestCheckLimit(t *testing.T) {
	tests := []struct {
		limit *messages.Limit
		want  string // a part of the error; "" for a valid limit
	}{
		{leakyLimit(100, time.Second, 100), ""},
		{leakyLimit(3, 7*time.Second, 5), ""},
		{leakyLimit(1e-6, time.Nanosecond, 1e-6), ""},
		{&messages.Limit{Rate: 1, PerNanos: 1, Burst: 1}, ""}, // unspecified mode: leaky
		{slidingLimit(10, time.Second), ""},                   // burst plays no part
		{nil, "missing"},
		{leakyLimit(0, time.Second, 1), "rate 0"},
		{leakyLimit(-2, time.Second, 1), "rate -2"},
		{leakyLimit(math.NaN(), time.Second, 1), "rate NaN"},
		{leakyLimit(math.Inf(1), time.Second, 1), "rate +Inf"},
		{leakyLimit(math.Inf(-1), time.Second, 1), "rate -Inf"},
		{leakyLimit(1e-7, time.Second, 1), "rate 1e-07"},
		{leakyLimit(1e12, time.Second, 1), "rate 1e+12"},
		{slidingLimit(0, time.Second), "rate 0"},
		{leakyLimit(1, time.Second, 0), "burst 0"},
		{leakyLimit(1, time.Second, -3), "burst -3"},
		{leakyLimit(1, time.Second, math.NaN()), "burst NaN"},
		{leakyLimit(1, time.Second, math.Inf(1)), "burst +Inf"},
		{leakyLimit(1, 0, 1), "period 0s"},
		{leakyLimit(1, -time.Second, 1), "period -1s"},
		{slidingLimit(1, -5), "period -5ns"},
		{leakyLimit(1e-6, math.MaxInt64, 1), "period 2562047h47m16.854775807s"},
		{&messages.Limit{Rate: 1, PerNanos: 1, Burst: 1, Mode: 3}, "mode 3"},
		{&messages.Limit{Rate: 1, PerNanos: 1, Burst: 1, Mode: -1}, "mode -1"},
	}

	for _, tt := range tests {
		err := CheckLimit(tt.limit)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckLimit(%v) = %v, want nil", tt.limit, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckLimit(%v) = nil, want an error naming %q", tt.limit, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("CheckLimit(%v) = %q, want an error naming %q", tt.limit, err, tt.want)
		}
	}
}

func TestCoreDropSender(t *testing.T) {
	const ms = time.Millisecond
	other := &actor.PID{Address: "node-b:8090", Id: "requester-1"}
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	// #1 takes the burst; #2 (ours) waits behind #3 and #4 of a node that
	// dies. Dropping them answers nobody, and #2 moves to the head.
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
	})
	c.acquire(0, other, &messages.Acquire{RequestId: 3, Amount: 1})
	c.acquire(0, other, &messages.Acquire{RequestId: 4, Amount: 1})
	runSteps(t, c, []coreStep{
		{0, opAcquire(2, 1), "queued"},
		{0, opLevel(), "level 1, 3 queued"},
		{0, opDue(), "1s"},
	})

	if n := c.dropSender(500*int64(ms), other); n != 2 || len(c.out) != 0 {
		t.Fatalf("dropSender = %d with %d outcomes, want 2 and none", n, len(c.out))
	}
	runSteps(t, c, []coreStep{
		{500 * ms, opLevel(), "level 0.5, 1 queued"},
		{500 * ms, opDue(), "1s"},
		{1000 * ms, opLeak(), "#2 granted"},
	})

	// A sender with nothing queued changes nothing.
	if n := c.dropSender(int64(time.Second), other); n != 0 {
		t.Fatalf("dropSender of a sender with no waiters = %d, want 0", n)
	}
}

// opDrained reports when the level reaches zero and whether the bucket is
// idle (nobody waits, nothing left) at now.
func opDrained() coreOp {
	return coreOp{"drainedAt()", func(c *core, now int64) string {
		at := c.drainedAt(now)
		return fmt.Sprintf("drained at %v, idle %v", time.Duration(at), c.idle(now))
	}}
}

func TestCoreDrainedAtLeaky(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(3, time.Second, 3), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opDrained(), "drained at 0s, idle true"},
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opDrained(), "drained at 333.333334ms, idle false"}, // rounded up
		{333 * ms, opDrained(), "drained at 333.333334ms, idle false"},
		{333333334, opDrained(), "drained at 333.333334ms, idle true"},
		{time.Second, opDrained(), "drained at 1s, idle true"},
		{time.Second, opAcquire(2, 3), "#2 granted"},
		{time.Second, opAcquire(3, 1), "queued"},
		{1500 * ms, opDrained(), "drained at 2s, idle false"},
		{1500 * ms, opCancel(3), "#3 CANCELLED"},
		{2 * time.Second, opDrained(), "drained at 2s, idle true"},
		{2 * time.Second, opRestart(), "nothing"}, // full: no free burst
		{2 * time.Second, opDrained(), "drained at 3s, idle false"},
		{10 * ms, opDrained(), "drained at 3s, idle false"}, // the clock stepped back
	})
}

func TestCoreDrainedAtSliding(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, slidingLimit(2, time.Second), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opDrained(), "drained at 0s, idle true"},
		{0, opAcquire(1, 1), "#1 granted"},
		{300 * ms, opAcquire(2, 1), "#2 granted"},
		{300 * ms, opDrained(), "drained at 1.3s, idle false"},
		{1000 * ms, opDrained(), "drained at 1.3s, idle false"}, // #1 has left, #2 has not
		{1300 * ms, opDrained(), "drained at 1.3s, idle true"},  // windows are half-open
		{1300 * ms, opAcquire(3, 2), "#3 granted"},
		{1300 * ms, opAcquire(4, 1), "queued"},
		{2300 * ms, opLeak(), "#4 granted"},
		{2300 * ms, opDrained(), "drained at 3.3s, idle false"},
		{2300 * ms, opRelease(4), "released; nothing"}, // handed back: nothing left
		{2300 * ms, opDrained(), "drained at 2.3s, idle true"},
	})
}

// opPause pauses the bucket until the bucket time until.
func opPause(until time.Duration) coreOp {
	return coreOp{fmt.Sprintf("pause(until %v)", until), func(c *core, now int64) string {
		c.pause(now, int64(until))
		return describeOut(c.out)
	}}
}

func TestCorePause(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(1, time.Second, 1), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "queued"},
		{0, opAcquireWait(3, 1, 2500*ms), "queued"}, // due at 2 s, within its limit
		{0, opDue(), "1s"},
		// The pause re-times the queue; #3 cannot go before 3 s, so it
		// fails at once.
		{100 * ms, opPause(3000 * ms), "#3 DEADLINE"},
		{100 * ms, opDue(), "3s"},
		{1000 * ms, opLeak(), "nothing"},
		{1500 * ms, opTry(4, 0.5), "#4 WOULD_WAIT"},
		// A request whose wait limit ends before the pause does is refused.
		{1500 * ms, opAcquireWait(5, 1, time.Second), "#5 DEADLINE"},
		// The level drained during the pause: at its end one unit goes, and
		// the next a second later, not a burst.
		{3000 * ms, opLeak(), "#2 granted"},
		{3000 * ms, opAcquire(6, 1), "queued"},
		{3000 * ms, opDue(), "4s"},
		// An earlier end changes nothing; a pause never shortens.
		{3500 * ms, opPause(2000 * ms), "nothing"},
		{3500 * ms, opDue(), "4s"},
		{4000 * ms, opLeak(), "#6 granted"},
	})
}

func TestCorePauseSlidingWindow(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, slidingLimit(2, time.Second), 0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opPause(1500 * ms), "nothing"},
		{100 * ms, opAcquire(2, 1), "queued"},
		{100 * ms, opDue(), "1.5s"},
		{1500 * ms, opLeak(), "#2 granted"},
		{1500 * ms, opAcquire(3, 2), "queued"},
		// #1 left the window at 1 s, #2 leaves at 2.5 s.
		{1500 * ms, opDue(), "2.5s"},
	})
}

// withBands returns l with the extra bands bs.
func withBands(l *messages.Limit, bs ...*messages.Limit) *messages.Limit {
	for _, b := range bs {
		l.Bands = append(l.Bands, &messages.Band{Rate: b.GetRate(), PerNanos: b.GetPerNanos(),
			Burst: b.GetBurst(), Mode: b.GetMode()})
	}

	return l
}

func TestCoreBands(t *testing.T) {
	const ms = time.Millisecond
	// 2 per second with burst 2, and at most 3 in any 10 s.
	c := newTestCore(t, withBands(leakyLimit(2, time.Second, 2), slidingLimit(3, 10*time.Second)),
		0, 0)

	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{0, opAcquire(2, 1), "#2 granted"},
		{0, opAcquire(3, 1), "queued"},
		{0, opDue(), "500ms"}, // the first band's turn
		{500 * ms, opLeak(), "#3 granted"},
		{500 * ms, opAcquire(4, 1), "queued"},
		{500 * ms, opDue(), "10s"}, // the second band is full until #1 and #2 leave it
		{1000 * ms, opLeak(), "nothing"},
		{10000 * ms, opLeak(), "#4 granted"},
		{10000 * ms, opAcquire(5, 1), "#5 granted"},
		{10000 * ms, opTry(6, 1), "#6 WOULD_WAIT"}, // #3, #4, #5 fill the window
		// 1.5 units need #4 or #5 to leave the window as well as #3.
		{10000 * ms, opAcquire(7, 1.5), "queued"},
		{10000 * ms, opDue(), "20s"},
	})

	c = newTestCore(t, withBands(leakyLimit(10, time.Second, 10), slidingLimit(3, time.Second)),
		0, 0)
	runSteps(t, c, []coreStep{{0, opAcquire(1, 4), "#1 TOO_LARGE"}})
	c.acquire(0, testSender, &messages.Acquire{RequestId: 2, Amount: 4})
	if d := c.out[0].detail; !strings.Contains(d, "band 1") || !strings.Contains(d, "4") {
		t.Errorf("too large for band 1: detail %q, want the amount and the band", d)
	}
}

func TestCoreSetLimitAddsBandFull(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(10, time.Second, 10), 0, 0)

	// A band added by SetLimit knows nothing of the past, so it starts
	// full: nothing goes until a whole window has passed.
	runSteps(t, c, []coreStep{
		{0, opAcquire(1, 1), "#1 granted"},
		{100 * ms, opSetLimit(withBands(leakyLimit(10, time.Second, 10),
			slidingLimit(2, time.Second))), "nothing"},
		{100 * ms, opAcquire(2, 1), "queued"},
		{100 * ms, opDue(), "1.1s"},
		{1100 * ms, opLeak(), "#2 granted"},
		// Dropping the band lets the first band alone decide again.
		{1100 * ms, opSetLimit(leakyLimit(10, time.Second, 10)), "nothing"},
		{1100 * ms, opAcquire(3, 1), "#3 granted"},
	})

	st := c.status(int64(1100 * ms))
	if len(st.GetLevels()) != 1 || len(st.GetLimit().GetBands()) != 0 {
		t.Errorf("status after dropping the band: %v", st)
	}
}

func TestCheckLimitBands(t *testing.T) {
	bad := withBands(leakyLimit(1, time.Second, 1), &messages.Limit{Rate: 1, PerNanos: -5})
	if err := CheckLimit(bad); err == nil || !strings.Contains(err.Error(), "band 1") ||
		!strings.Contains(err.Error(), "-5ns") {
		t.Errorf("CheckLimit(%v) = %v, want an error naming band 1 and its period", bad, err)
	}

	many := leakyLimit(1, time.Second, 1)
	for range maxBands {
		many = withBands(many, leakyLimit(1, time.Second, 1))
	}
	if err := CheckLimit(many); err == nil || !strings.Contains(err.Error(), "17 bands") {
		t.Errorf("CheckLimit with %d bands = %v, want an error naming the count",
			len(many.GetBands())+1, err)
	}
}

// opAcquireHold asks for amount as a hold.
func opAcquireHold(id uint64, amount float64) coreOp {
	return coreOp{fmt.Sprintf("acquire(#%d, %v, hold)", id, amount), func(c *core, now int64) string {
		m := &messages.Acquire{RequestId: id, Amount: amount, Hold: true}
		c.acquire(now, testSender, m)
		if _, ok := c.queue.index[keyOf(testSender, id)]; ok && len(c.out) == 0 {
			return "queued"
		}
		return describeOut(c.out)
	}}
}

// opCommit commits the hold of request id.
func opCommit(id uint64) coreOp {
	return coreOp{fmt.Sprintf("commit(#%d)", id), func(c *core, now int64) string {
		c.commit(now, keyOf(testSender, id))
		return describeOut(c.out)
	}}
}

func TestCoreHold(t *testing.T) {
	const ms = time.Millisecond
	c := newTestCore(t, leakyLimit(10, time.Second, 10), 0, 0)

	runSteps(t, c, []coreStep{
		// A held grant: the bucket grants nothing else until it ends.
		{0, opAcquireHold(1, 2), "#1 granted"},
		{0, opTry(2, 1), "#2 WOULD_WAIT"},
		{0, opAcquire(3, 1), "queued"},
		{0, opDue(), "10s"}, // the hold's expiry
		{50 * ms, opCommit(99), "nothing"},
		// Committed: the queue moves at once, and the grant stays.
		{50 * ms, opCommit(1), "#3 granted"},
		{50 * ms, opLevel(), "level 2.5, 0 queued"},

		// Handed back: undone exactly, and the waiter behind goes.
		{100 * ms, opAcquireHold(4, 5), "#4 granted"},
		{100 * ms, opAcquire(5, 7), "queued"},
		{100 * ms, opRelease(4), "released; #5 granted"},
		{100 * ms, opLevel(), "level 9, 0 queued"},

		// A hold nobody ends is taken as committed when it expires.
		{1100 * ms, opAcquireHold(6, 1), "#6 granted"},
		{1100 * ms, opAcquire(7, 1), "queued"},
		{1100 * ms, opDue(), "11.1s"},
		{11100 * ms, opLeak(), "#7 granted"},
		{11100 * ms, opRelease(6), "kept; nothing"},
	})

	// A hold whose holder dies ends too; its grant stays.
	other := &actor.PID{Address: "node-b:8090", Id: "requester"}
	c.acquire(int64(12*time.Second), other, &messages.Acquire{RequestId: 8, Amount: 1, Hold: true})
	runSteps(t, c, []coreStep{{12000 * ms, opAcquire(9, 1), "queued"}})
	c.dropSender(int64(12*time.Second), other)
	if got := describeOut(c.out); got != "#9 granted" {
		t.Errorf("after the holder died: %s, want #9 granted", got)
	}
}
