package actors

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dripsched/drip/messages"
)

// FuzzCheckLimit checks limit validation on any numbers: it never panics,
// it refuses every rate, period, burst or mode that is not valid and names
// the value, and a limit it accepts reads back as itself (as Status reports
// it) and drains its burst in a finite, positive time.
func FuzzCheckLimit(f *testing.F) {
	f.Add(100.0, int64(time.Second), 100.0, int32(1))
	f.Add(3.0, int64(7*time.Second), 5.0, int32(0))
	f.Add(10.0, int64(time.Millisecond), 0.0, int32(2))
	f.Add(1e-6, int64(math.MaxInt64), 1e-6, int32(1))
	f.Add(9e9, int64(1), 9e9, int32(1))
	f.Add(math.NaN(), int64(time.Second), math.Inf(1), int32(1))
	f.Add(-1.0, int64(-1), -1.0, int32(7))
	f.Add(5e-7, int64(time.Second), 1e300, int32(2))

	f.Fuzz(func(t *testing.T, rate float64, per int64, burst float64, mode int32) {
		l := &messages.Limit{Rate: rate, PerNanos: per, Burst: burst, Mode: messages.Mode(mode)}
		err := CheckLimit(l)

		sliding := l.GetMode() == messages.Mode_MODE_SLIDING_WINDOW
		invalid := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 }
		_, known := messages.Mode_name[mode]
		if err == nil && (!known || per <= 0 || invalid(rate) || !sliding && invalid(burst)) {
			t.Fatalf("CheckLimit(%v) = nil, want an error", l)
		}

		if err != nil {
			named := []string{fmt.Sprint("rate ", rate), fmt.Sprint("period ", time.Duration(per)),
				fmt.Sprint("burst ", burst), fmt.Sprint("mode ", mode)}
			for _, v := range named {
				if strings.Contains(err.Error(), v) {
					return
				}
			}
			t.Fatalf("CheckLimit(%v) = %q, which names none of %q", l, err, named)
		}

		r, err := newRule(l)
		if err != nil {
			t.Fatalf("newRule(%v) = %v after CheckLimit accepted it", l, err)
		}
		if back, err := newRule(r.limit()); err != nil || back != r {
			t.Fatalf("limit %v reads back as %v: %+v, want %+v (%v)", l, r.limit(), back, r, err)
		}
		if d := r.cost(r.burst); d.ns < 0 || d.ns >= forever || d.ns == 0 && d.frac == 0 {
			t.Fatalf("limit %v: the burst drains in %v + %d/%d ns", l, time.Duration(d.ns),
				d.frac, r.rate)
		}
	})
}

// The operations FuzzCoreMessages decodes, one byte each, followed by
// their arguments.
const (
	fuzzAcquire  = iota // id byte, amount, wait
	fuzzTry             // id byte, amount
	fuzzCancel          // id byte
	fuzzRelease         // id byte
	fuzzLeak            // one byte: even to leak at the due time, odd at now
	fuzzTick            // int16 milliseconds, either way
	fuzzSetLimit        // rate amount, period uint16 milliseconds, burst amount, mode byte
	fuzzRestart
	fuzzStop
	fuzzStatus
	fuzzOps
)

// fuzzMillis is a time step or a period for fuzzSeed, in milliseconds.
type fuzzMillis int16

// fuzzWait is a wait limit for fuzzSeed, in milliseconds.
type fuzzWait int8

// fuzzSeed encodes a seed for FuzzCoreMessages: ints as one byte, float64
// and int64 as a marker byte and their eight bytes (any amount, any wait
// limit), fuzzMillis as two bytes and fuzzWait as a marker byte and one.
func fuzzSeed(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = append(b, byte(p))
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, 250), math.Float64bits(p))
		case int64:
			b = binary.BigEndian.AppendUint64(append(b, 250), uint64(p))
		case fuzzMillis:
			b = binary.BigEndian.AppendUint16(b, uint16(p))
		case fuzzWait:
			b = append(b, 128, byte(p))
		}
	}

	return b
}

// FuzzCoreMessages decodes bytes into calls on a core: requests with any
// amount, wait limit and id (duplicates included), cancels and releases of
// any id, limit changes, restarts, stops, and a clock that jumps both ways.
// The core must never panic; after every call its queue's units must equal
// the sum of its waiters', its list and index must agree, and each request
// must have had at most one answer, given as it left the queue.
func FuzzCoreMessages(f *testing.F) {
	const one, half, two = 16, 8, 32 // amounts in sixteenths
	f.Add(fuzzSeed(0))
	// Leaky bucket, 1 per second, burst 1: a queue, a missed wait limit,
	// time passing, a cancel, a release, a stop.
	f.Add(fuzzSeed(0, 0, 0,
		fuzzAcquire, 1, one, 0, fuzzAcquire, 2, one, 0, fuzzAcquire, 3, half, fuzzWait(100),
		fuzzTick, fuzzMillis(1000), fuzzLeak, 0, fuzzCancel, 2, fuzzRelease, 1,
		fuzzAcquire, 4, two, 0, fuzzStop, fuzzStatus))
	// Amounts that are no numbers, too small or too large.
	f.Add(fuzzSeed(1, 0, 0,
		fuzzAcquire, 1, math.NaN(), 0, fuzzAcquire, 2, math.Inf(1), 0,
		fuzzAcquire, 3, math.Inf(-1), 0, fuzzTry, 4, math.MaxFloat64,
		fuzzTry, 5, math.SmallestNonzeroFloat64, fuzzAcquire, 6, math.Copysign(0, -1), 0,
		fuzzAcquire, 7, 1e300, 0, fuzzAcquire, 8, 4.9999999e-7, 0))
	// Duplicate ids, and cancels and releases of ids nobody used.
	f.Add(fuzzSeed(0, 2, 3,
		fuzzAcquire, 5, one, 0, fuzzAcquire, 5, one, 0, fuzzAcquire, 5, half, 0,
		fuzzTry, 5, half, fuzzCancel, 5, fuzzCancel, 5, fuzzRelease, 5, fuzzRelease, 9,
		fuzzAcquire, 6, one, 0, fuzzAcquire, 7, one, 0, fuzzAcquire, 8, one, 0,
		fuzzLeak, 0, fuzzLeak, 0))
	// A clock that steps back, and wait limits at the extremes.
	f.Add(fuzzSeed(3, 0, 0,
		fuzzAcquire, 1, two, 0, fuzzTick, fuzzMillis(-32768), fuzzAcquire, 2, one,
		int64(math.MaxInt64), fuzzAcquire, 3, one, int64(-1), fuzzAcquire, 4, one,
		int64(math.MinInt64), fuzzAcquire, 5, one, fuzzWait(-5),
		fuzzLeak, 1, fuzzTick, fuzzMillis(500), fuzzLeak, 0, fuzzLeak, 0, fuzzLeak, 0))
	// Limit changes, valid and not, and restarts.
	f.Add(fuzzSeed(1, 0, 0,
		fuzzAcquire, 1, two, 0, fuzzAcquire, 2, two, 0, fuzzAcquire, 3, two, 0,
		fuzzAcquire, 4, one, 0,
		fuzzSetLimit, one, fuzzMillis(10), one, 1,
		fuzzSetLimit, 1e12, fuzzMillis(1), one, 1,
		fuzzSetLimit, two, fuzzMillis(0), two, 1,
		fuzzSetLimit, one, fuzzMillis(100), one, 3,
		fuzzSetLimit, one, fuzzMillis(100), one, 2,
		fuzzRestart, fuzzLeak, 0,
		fuzzSetLimit, half, fuzzMillis(math.MaxInt16), 1e-6, 0,
		fuzzRestart, fuzzLeak, 0, fuzzStop))
	// Sliding window, 2 per second.
	f.Add(fuzzSeed(3, 4, 0,
		fuzzAcquire, 1, one, 0, fuzzTick, fuzzMillis(400), fuzzAcquire, 2, one, 0,
		fuzzAcquire, 3, two, fuzzWait(127), fuzzAcquire, 4, half, 0, fuzzTry, 5, half,
		fuzzLeak, 0, fuzzRelease, 3, fuzzLeak, 0, fuzzRestart, fuzzLeak, 0,
		fuzzSetLimit, 4.0, fuzzMillis(250), 0, 2, fuzzLeak, 0))

	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzInput{data: data}
		limits := []*messages.Limit{
			leakyLimit(1, time.Second, 1), leakyLimit(3, 7*time.Second, 5),
			leakyLimit(1e6, time.Second, 1e3), slidingLimit(2, time.Second),
			slidingLimit(5, time.Millisecond), slidingLimit(1e-6, time.Hour),
		}
		l := limits[int(in.byte())%len(limits)]
		c, err := newCore(l, int(in.byte()%8), float64(in.byte()%16), 0)
		if err != nil {
			t.Fatalf("newCore(%v) = %v", l, err)
		}

		var now int64
		waiting := make(map[waiterKey]bool)
		for step := 0; !in.done(); step++ {
			op, fresh := in.byte()%fuzzOps, false
			switch op {
			case fuzzAcquire:
				fresh = true
				c.acquire(now, testSender, &messages.Acquire{RequestId: uint64(in.byte()),
					Amount: in.amount(), MaxWaitNanos: in.wait()})
			case fuzzTry:
				fresh = true
				c.try(now, testSender, &messages.TryAcquire{RequestId: uint64(in.byte()),
					Amount: in.amount()})
			case fuzzCancel:
				c.cancel(now, keyOf(testSender, uint64(in.byte())))
			case fuzzRelease:
				c.release(now, keyOf(testSender, uint64(in.byte())))
			case fuzzLeak:
				atDue := in.byte()%2 == 0
				if due, ok := c.nextDue(); ok && atDue {
					now = max(now, due)
				}
				c.leak(now)
			case fuzzTick:
				now += int64(int16(in.uint16())) * int64(time.Millisecond)
			case fuzzSetLimit:
				_ = c.setLimit(now, &messages.Limit{Rate: in.amount(),
					PerNanos: int64(in.uint16()) * int64(time.Millisecond),
					Burst:    in.amount(), Mode: messages.Mode(in.byte() % 4)})
			case fuzzRestart:
				c.restart(now)
			case fuzzStop:
				c.stop(now)
			case fuzzStatus:
				c.status(now)
			}

			if err := checkAnswers(c, waiting, fresh); err != nil {
				t.Fatalf("step %d (op %d): %v", step, op, err)
			}
			if err := checkQueue(&c.queue); err != nil {
				t.Fatalf("step %d (op %d): %v", step, op, err)
			}
			c.out = c.out[:0] // answered, as the bucket actor does
		}
	})
}

// fuzzInput reads a fuzzer's bytes; past the end it reads zeros.
type fuzzInput struct {
	data []byte
}

func (in *fuzzInput) done() bool {
	return len(in.data) == 0
}

func (in *fuzzInput) byte() byte {
	if len(in.data) == 0 {
		return 0
	}
	b := in.data[0]
	in.data = in.data[1:]

	return b
}

func (in *fuzzInput) uint16() uint16 {
	return uint16(in.byte())<<8 | uint16(in.byte())
}

func (in *fuzzInput) uint64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = in.byte()
	}

	return binary.BigEndian.Uint64(b[:])
}

// amount reads a small amount in sixteenths from one byte, or any float64
// at all (NaN, infinities, subnormals, huge) from the eight after a byte
// of 250 or more.
func (in *fuzzInput) amount() float64 {
	b := in.byte()
	if b < 250 {
		return float64(b) / 16
	}

	return math.Float64frombits(in.uint64())
}

// wait reads a wait limit: none, a few milliseconds either side of zero, or
// any int64 at all.
func (in *fuzzInput) wait() int64 {
	switch b := in.byte(); {
	case b < 128:
		return 0
	case b < 250:
		return int64(int8(in.byte())) * int64(time.Millisecond)
	}

	return int64(in.uint64())
}

// checkAnswers checks the core's answers in the latest call against the
// requests known to wait, and updates them. A fresh call (an Acquire or a
// TryAcquire) answers at most the new request, once, or queues it; other
// calls answer only waiting requests, each as it leaves the queue. No
// request leaves the queue without an answer.
func checkAnswers(c *core, waiting map[waiterKey]bool, fresh bool) error {
	if fresh && len(c.out) > 1 {
		return fmt.Errorf("one request got %d answers", len(c.out))
	}
	for _, o := range c.out {
		k := keyOf(o.sender, o.request)
		_, queued := c.queue.index[k]
		switch {
		case fresh:
		case !waiting[k]:
			return fmt.Errorf("#%d answered (%s) but it was not waiting", k.request,
				reasonName(o.reason))
		case queued:
			return fmt.Errorf("#%d answered (%s) but it still waits", k.request,
				reasonName(o.reason))
		default:
			delete(waiting, k)
		}
	}

	for k := range waiting {
		if _, queued := c.queue.index[k]; !queued {
			return fmt.Errorf("#%d left the queue without an answer", k.request)
		}
	}
	switch added := c.queue.len() - len(waiting); {
	case added == 0:
	case added == 1 && fresh && len(c.out) == 0 && !waiting[c.queue.tail.key]:
		waiting[c.queue.tail.key] = true
	default:
		return fmt.Errorf("%d requests wait, but the queue holds %d", len(waiting),
			c.queue.len())
	}

	return nil
}

// checkQueue checks that q's list and index hold the same waiters, linked
// both ways, and that its units are their sum.
func checkQueue(q *queue) error {
	var n int
	var units uint64
	var prev *waiter
	for w := q.head; w != nil; prev, w = w, w.next {
		if w.prev != prev {
			return fmt.Errorf("waiter #%d is linked back to the wrong waiter", w.key.request)
		}
		if q.index[w.key] != w {
			return fmt.Errorf("waiter #%d is listed but not indexed", w.key.request)
		}
		n++
		units += w.units
	}

	switch {
	case q.tail != prev:
		return fmt.Errorf("the tail is not the last waiter")
	case n != q.len():
		return fmt.Errorf("%d waiters listed, %d indexed", n, q.len())
	case units != q.units:
		return fmt.Errorf("the waiters hold %d units, the queue counts %d", units, q.units)
	}

	return nil
}
