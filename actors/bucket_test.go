package actors

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// perSecond returns a leaky-bucket limit of rate per second with burst.
func perSecond(rate, burst float64) *messages.Limit {
	return &messages.Limit{Rate: rate, PerNanos: int64(time.Second), Burst: burst}
}

// spawnBucket spawns a bucket actor with spec.
func spawnBucket(t *testing.T, sys *actor.ActorSystem, spec BucketSpec) *actor.PID {
	t.Helper()

	props, err := BucketProps(spec)
	if err != nil {
		t.Fatalf("BucketProps: %v", err)
	}

	return sys.Root.Spawn(props)
}

// acquire sends an Acquire of amount with request id from in to bucket.
func (in *inbox) acquire(sys *actor.ActorSystem, bucket *actor.PID, id uint64, amount float64) {
	sys.Root.RequestWithCustomSender(bucket, &messages.Acquire{RequestId: id, Amount: amount}, in.pid)
}

// expect receives the next message and checks that it is a Granted or
// Rejected (with reason) for request id at elapsed time at. A grant must
// carry its time too: in a bubble, time stands still while the bucket
// decides and the message travels.
func (in *inbox) expect(t *testing.T, start time.Time, id uint64, reason messages.RejectReason,
	at time.Duration) {
	t.Helper()

	m := <-in.got
	got := time.Since(start)
	switch m := m.(type) {
	case *messages.Granted:
		if reason != granted || m.GetRequestId() != id || got != at {
			t.Errorf("got grant of %d at %v, want %d %v at %v", m.GetRequestId(), got, id, reason, at)
		}
		if stamp := time.Unix(0, m.GetGrantedAtUnixNanos()); !stamp.Equal(start.Add(got)) {
			t.Errorf("grant of %d says it was granted at %v, got at %v", id, stamp.Sub(start), got)
		}
	case *messages.Rejected:
		if reason != m.GetReason() || m.GetRequestId() != id || got != at {
			t.Errorf("got %v for %d at %v (%s), want %d %v at %v",
				m.GetReason(), m.GetRequestId(), got, m.GetDetail(), id, reason, at)
		}
	default:
		t.Errorf("got %T, want an answer to %d", m, id)
	}
}

func TestBucketPanicLosesNoWaiterAndRestartsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		spec := BucketSpec{Limit: perSecond(1, 1), beforeDecide: func(m any) {
			if _, ok := m.(*messages.TryAcquire); ok {
				panic("test: bucket failure")
			}
		}}
		bucket := spawnBucket(t, sys, spec)
		start := time.Now()

		// One grant now, two waiters due at 1 s and 2 s.
		for id := uint64(1); id <= 3; id++ {
			in.acquire(sys, bucket, id, 1)
		}
		in.expect(t, start, 1, granted, 0)

		// Fail at 1.5 s, after the second grant at 1 s.
		in.expect(t, start, 2, granted, time.Second)
		time.Sleep(500 * time.Millisecond)
		sys.Root.RequestWithCustomSender(bucket, &messages.TryAcquire{RequestId: 9, Amount: 1}, in.pid)
		in.expect(t, start, 9, messages.RejectReason_REJECT_REASON_RESTARTED, 1500*time.Millisecond)

		// The restarted bucket is full at 1.5 s, so the last waiter goes a
		// whole burst later, at 2.5 s, not at 2 s.
		in.expect(t, start, 3, granted, 2500*time.Millisecond)

		sys.Root.Stop(bucket)
		synctest.Wait()
	})
}

func TestBucketAnswersRequestThatPanicked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		spec := BucketSpec{Limit: perSecond(1, 1), beforeDecide: func(m any) {
			if a, ok := m.(*messages.Acquire); ok && a.GetAmount() == 0.5 {
				panic("test: bucket failure")
			}
		}}
		bucket := spawnBucket(t, sys, spec)
		start := time.Now()

		in.acquire(sys, bucket, 1, 0.5)
		in.expect(t, start, 1, messages.RejectReason_REJECT_REASON_RESTARTED, 0)

		sys.Root.Stop(bucket)
		synctest.Wait()
	})
}

func TestBucketTakesBackReleasedGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		start := time.Now()

		in.acquire(sys, bucket, 1, 1)
		in.expect(t, start, 1, granted, 0)
		in.acquire(sys, bucket, 2, 1)
		time.Sleep(100 * time.Millisecond)

		// The first caller hands its grant back: the waiter goes at once.
		sys.Root.RequestWithCustomSender(bucket, &messages.Release{RequestId: 1}, in.pid)
		in.expect(t, start, 2, granted, 100*time.Millisecond)

		sys.Root.Stop(bucket)
		synctest.Wait()
	})
}

func TestBucketStopAnswersEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		start := time.Now()

		for id := uint64(1); id <= 4; id++ {
			in.acquire(sys, bucket, id, 1)
		}
		in.expect(t, start, 1, granted, 0)
		synctest.Wait() // all queued: a system Stop overtakes user messages
		sys.Root.Stop(bucket)
		for id := uint64(2); id <= 4; id++ {
			in.expect(t, start, id, messages.RejectReason_REJECT_REASON_STOPPED, 0)
		}
		synctest.Wait()
	})
}

func TestBucketDropsWhatItCannotAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		start := time.Now()

		// No sender, an unknown type, a Cancel and a Release for unknown
		// ids: none of them changes anything or gets an answer.
		sys.Root.Send(bucket, &messages.Acquire{RequestId: 7, Amount: 1})
		sys.Root.Send(bucket, "not a drip message")
		sys.Root.RequestWithCustomSender(bucket, &messages.Cancel{RequestId: 99}, in.pid)
		sys.Root.RequestWithCustomSender(bucket, &messages.Release{RequestId: 99}, in.pid)

		in.acquire(sys, bucket, 1, 1)
		in.expect(t, start, 1, granted, 0)
		synctest.Wait()
		if n := len(in.got); n != 0 {
			t.Errorf("got %d more messages, want none: %v", n, <-in.got)
		}

		sys.Root.Stop(bucket)
		synctest.Wait()
	})
}

func TestBucketWithdrawsWakeupWhenNobodyWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newInbox(sys, timerName) // stands in for the timer actor
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		start := time.Now()

		in.acquire(sys, bucket, 1, 1)
		in.expect(t, start, 1, granted, 0)
		in.acquire(sys, bucket, 2, 1)
		if m, ok := (<-timer.got).(*messages.ScheduleLeak); !ok || m.GetCancel() ||
			m.GetDelayNanos() != int64(time.Second) {
			t.Fatalf("got %v, want a wake-up in 1s", m)
		}

		sys.Root.RequestWithCustomSender(bucket, &messages.Cancel{RequestId: 2}, in.pid)
		in.expect(t, start, 2, messages.RejectReason_REJECT_REASON_CANCELLED, 0)
		if m, ok := (<-timer.got).(*messages.ScheduleLeak); !ok || !m.GetCancel() {
			t.Fatalf("got %v, want the wake-up withdrawn", m)
		}

		sys.Root.Stop(bucket)
		synctest.Wait()
	})
}

func TestTimerHoldsNoGoTimerWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		tm := newTimer().(*timer)
		timerPID, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
			return tm
		}), timerName)
		if err != nil {
			t.Fatal(err)
		}
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(10, 1)})
		start := time.Now()

		for id := uint64(1); id <= 5; id++ {
			in.acquire(sys, bucket, id, 1)
		}
		for id := uint64(1); id <= 5; id++ {
			in.expect(t, start, id, granted, time.Duration(id-1)*100*time.Millisecond)
		}

		synctest.Wait()
		if tm.goTimer != nil || tm.wakeups.Len() != 0 {
			t.Errorf("idle timer holds a Go timer %v and %d wake-ups", tm.goTimer != nil,
				tm.wakeups.Len())
		}

		sys.Root.Stop(bucket)
		sys.Root.Stop(timerPID)
		synctest.Wait()
	})
}

func TestRequesterHandsBackUnwantedGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		bucket := newInbox(sys, "bucket") // stands in for the bucket
		r := NewRequester(sys, bucket.pid)

		c := r.Start(&messages.Acquire{Amount: 1}, nil)
		id := c.ID()
		if m, ok := (<-bucket.got).(*messages.Acquire); !ok || m.GetRequestId() != id {
			t.Fatalf("got %v, want Acquire %d", m, id)
		}
		if !r.Abandon(id, true) {
			t.Fatal("Abandon found no call in flight")
		}
		if m, ok := (<-bucket.got).(*messages.Cancel); !ok || m.GetRequestId() != id {
			t.Fatalf("got %v, want Cancel of request %d", m, id)
		}

		// The grant was already on its way: it goes back to the bucket.
		r.SendUserMessage(r.PID(), &messages.Granted{RequestId: id})
		if m, ok := (<-bucket.got).(*messages.Release); !ok || m.GetRequestId() != id {
			t.Fatalf("got %v, want Release of request %d", m, id)
		}

		// A reply to a recycled call, whose slot is in use again, is no
		// reply to the new call.
		c2 := r.Start(&messages.Acquire{Amount: 1}, nil)
		<-bucket.got
		if c2.ID() == id {
			t.Fatalf("a reused slot kept the id %d", id)
		}
		r.SendUserMessage(r.PID(), &messages.Rejected{RequestId: id})
		if len(c2.Reply()) != 0 {
			t.Error("a reply to an old id reached the new call")
		}
		r.Close("test over")
	})
}

func TestRequesterFailsCallsWhenBucketIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		r := NewRequester(sys, sys.NewLocalPID("no-such-bucket"))

		c := r.Start(&messages.Acquire{Amount: 1}, nil)
		m, ok := (<-c.Reply()).(*messages.Rejected)
		if !ok || m.GetReason() != messages.RejectReason_REJECT_REASON_STOPPED {
			t.Fatalf("got %v, want a rejection: stopped", m)
		}
		if !r.Closed() {
			t.Error("the requester is still open after its bucket was found gone")
		}
		r.Close("test over")
		time.Sleep(time.Second) // past the dead-letter throttle interval, on the fake clock
	})
}

func TestBucketDropsWaitersOfRequesterThatIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		start := time.Now()

		// A requester on a node this system cannot reach: the bucket
		// watches it, protoactor answers the watch with Terminated, and
		// its waiter leaves the queue without an answer.
		gone := &actor.PID{Address: "node-gone:8090", Id: "requester"}
		in.acquire(sys, bucket, 1, 1)
		in.expect(t, start, 1, granted, 0)
		sys.Root.RequestWithCustomSender(bucket, &messages.Acquire{RequestId: 2, Amount: 1}, gone)
		in.acquire(sys, bucket, 3, 1)

		// #3 goes when the burst has drained, not a second later.
		in.expect(t, start, 3, granted, time.Second)

		sys.Root.Stop(bucket)
		time.Sleep(10 * time.Millisecond) // past the dead-letter throttle
		synctest.Wait()
	})
}
