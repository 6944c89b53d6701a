package actors

import (
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// spawnRegistry spawns a registry with spec, whose Buckets it fills in and
// returns.
func spawnRegistry(t *testing.T, sys *actor.ActorSystem, spec RegistrySpec) (*actor.PID,
	*atomic.Int64) {
	t.Helper()

	spec.Buckets = new(atomic.Int64)
	props, err := RegistryProps(spec)
	if err != nil {
		t.Fatalf("RegistryProps: %v", err)
	}

	return sys.Root.Spawn(props), spec.Buckets
}

// testRules has one exact key, "a", and one pattern, "b*", both at 1 per
// second with a burst of 1, and no default.
func testRules(t *testing.T) *Rules {
	t.Helper()

	r, err := NewRules(map[string]*messages.Limit{"a": perSecond(1, 1)},
		[]Pattern{{"b*", perSecond(1, 1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}

	return r
}

// keyed sends m, a request naming its key, from in to the registry.
func (in *inbox) keyed(sys *actor.ActorSystem, registry *actor.PID, m any) {
	sys.Root.RequestWithCustomSender(registry, m, in.pid)
}

// expectNothing checks that in has received nothing more.
func (in *inbox) expectNothing(t *testing.T) {
	t.Helper()

	synctest.Wait()
	if n := len(in.got); n != 0 {
		t.Errorf("got %d more messages, want none; the first: %v", n, <-in.got)
	}
}

// checkBuckets checks the number of live buckets.
func checkBuckets(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()

	synctest.Wait()
	if got := n.Load(); got != want {
		t.Errorf("%d live buckets, want %d", got, want)
	}
}

// stopRegistry stops the registry and lets what it leaves behind settle,
// past the dead-letter throttle.
func stopRegistry(sys *actor.ActorSystem, registry *actor.PID) {
	sys.Root.Stop(registry)
	time.Sleep(10 * time.Millisecond)
	synctest.Wait()
}

// fakeTimer stands in for the timer actor: it records each ScheduleLeak
// with the bucket that sent it, and sends no Leak unless a test does.
type fakeTimer struct {
	got chan timerCall
}

type timerCall struct {
	bucket *actor.PID
	m      *messages.ScheduleLeak
}

func newFakeTimer(sys *actor.ActorSystem) *fakeTimer {
	ft := &fakeTimer{got: make(chan timerCall, 1024)}
	sys.ProcessRegistry.Add(ft, timerName)

	return ft
}

func (ft *fakeTimer) SendUserMessage(_ *actor.PID, message any) {
	_, m, sender := actor.UnwrapEnvelope(message)
	if m, ok := m.(*messages.ScheduleLeak); ok {
		ft.got <- timerCall{sender, m}
	}
}
func (ft *fakeTimer) SendSystemMessage(*actor.PID, any) {}
func (ft *fakeTimer) Stop(*actor.PID)                   {}

// next skips withdrawn wake-ups and returns the bucket that asked for the
// next wake-up, failing the test if there is none or it is not due after
// delay.
func (ft *fakeTimer) next(t *testing.T, delay time.Duration) *actor.PID {
	t.Helper()

	synctest.Wait()
	for {
		select {
		case c := <-ft.got:
			if c.m.GetCancel() {
				continue
			}
			if c.m.GetDelayNanos() != int64(delay) {
				t.Fatalf("got %v from %s, want a wake-up after %v", c.m, c.bucket.GetId(), delay)
			}
			return c.bucket
		default:
			t.Fatalf("no ScheduleLeak, want a wake-up after %v", delay)
			return nil
		}
	}
}

func TestRegistrySpawnsOnFirstUseAndKeepsKeysApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys, RegistrySpec{Rules: testRules(t)})
		start := time.Now()
		checkBuckets(t, buckets, 0)

		// "a" spawns one bucket, which #1 and #2 share; "b1" and "b2"
		// match the same pattern but each gets a bucket of its own.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		checkBuckets(t, buckets, 1)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 1, Key: "a"})
		in.keyed(sys, registry, &messages.Acquire{RequestId: 3, Amount: 1, Key: "b1"})
		in.keyed(sys, registry, &messages.Acquire{RequestId: 4, Amount: 1, Key: "b2"})
		for range 2 { // from two buckets, so in either order
			if m, ok := (<-in.got).(*messages.Granted); !ok || m.GetRequestId() < 3 {
				t.Errorf("got %v, want #3 and #4 granted at once", m)
			}
		}
		checkBuckets(t, buckets, 3)
		in.expect(t, start, 2, granted, time.Second)

		// A grant names its key, so that a Release finds its way back.
		in.keyed(sys, registry, &messages.TryAcquire{RequestId: 5, Amount: 1, Key: "b1"})
		if m, ok := (<-in.got).(*messages.Granted); !ok || m.GetKey() != "b1" {
			t.Errorf("got %v, want a grant of key b1", m)
		}

		stopRegistry(sys, registry)
	})
}

func TestRegistryRefusesUnknownAndEmptyKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys, RegistrySpec{Rules: testRules(t)})
		start := time.Now()

		const unknown = messages.RejectReason_REJECT_REASON_UNKNOWN_KEY
		for id, m := range map[uint64]any{
			1: &messages.Acquire{RequestId: 1, Amount: 1, Key: "zz-top"},
			2: &messages.TryAcquire{RequestId: 2, Amount: 1, Key: "zz-top"},
			3: &messages.GetStatus{RequestId: 3, Key: "zz-top"},
			4: &messages.SetLimit{RequestId: 4, Limit: perSecond(1, 1), Key: "zz-top"},
		} {
			in.keyed(sys, registry, m)
			rej, ok := (<-in.got).(*messages.Rejected)
			if !ok || rej.GetRequestId() != id || rej.GetReason() != unknown ||
				!strings.Contains(rej.GetDetail(), `"zz-top"`) {
				t.Errorf("%T: got %v, want #%d %v naming the key", m, rej, id, unknown)
			}
		}

		in.keyed(sys, registry, &messages.Acquire{RequestId: 5, Amount: 1})
		in.expect(t, start, 5, messages.RejectReason_REJECT_REASON_INVALID_REQUEST, 0)

		// Neither a Cancel nor a Release for a key without a live bucket
		// spawns one, nor do these: nothing answers them.
		in.keyed(sys, registry, &messages.Cancel{RequestId: 6, Key: "a"})
		in.keyed(sys, registry, &messages.Release{RequestId: 7, Key: "b1"})
		in.keyed(sys, registry, &messages.Cancel{RequestId: 8, Key: "zz-top"})
		in.keyed(sys, registry, &messages.Release{RequestId: 9})
		sys.Root.Send(registry, &messages.Acquire{RequestId: 10, Amount: 1, Key: "a"}) // no sender
		sys.Root.Send(registry, "not a drip message")
		in.expectNothing(t)
		checkBuckets(t, buckets, 1) // the Acquire without a sender spawned "a", and nothing else

		stopRegistry(sys, registry)
	})
}

func TestRegistryPassivatesIdleBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: testRules(t), IdleAfter: 10 * time.Second})
		start := time.Now()

		// Granted at 0, drained at 1 s, idle long enough at 11 s.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		time.Sleep(11*time.Second - time.Nanosecond)
		checkBuckets(t, buckets, 1)
		time.Sleep(time.Nanosecond)
		checkBuckets(t, buckets, 0)

		// The next request gets a new bucket, which starts empty: its
		// totals count from zero.
		time.Sleep(time.Second)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 1, Key: "a"})
		in.expect(t, start, 2, granted, 12*time.Second)
		in.keyed(sys, registry, &messages.GetStatus{RequestId: 3, Key: "a"})
		if st, ok := (<-in.got).(*messages.Status); !ok || st.GetGrantedTotal() != 1 {
			t.Errorf("got %v, want the status of a new bucket with one grant", st)
		}
		checkBuckets(t, buckets, 1)

		stopRegistry(sys, registry)
	})
}

func TestRegistryKeepsBusyBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: testRules(t), IdleAfter: 10 * time.Second})
		start := time.Now()

		// A grant every 5 s: the bucket is never idle for 10 s.
		for i := range uint64(6) {
			in.keyed(sys, registry, &messages.Acquire{RequestId: i, Amount: 1, Key: "a"})
			in.expect(t, start, i, granted, time.Duration(i)*5*time.Second)
			checkBuckets(t, buckets, 1)
			time.Sleep(5 * time.Second)
		}

		// A waiter keeps it too, however long it waits.
		in.keyed(sys, registry, &messages.SetLimit{RequestId: 7, Key: "a",
			Limit: &messages.Limit{Rate: 1, PerNanos: int64(time.Minute), Burst: 1}})
		if _, ok := (<-in.got).(*messages.Status); !ok {
			t.Fatal("SetLimit failed")
		}
		in.keyed(sys, registry, &messages.Acquire{RequestId: 8, Amount: 1, Key: "a"})
		in.keyed(sys, registry, &messages.Acquire{RequestId: 9, Amount: 1, Key: "a"})
		in.expect(t, start, 8, granted, 30*time.Second)
		in.expect(t, start, 9, granted, 90*time.Second)
		checkBuckets(t, buckets, 1)
		time.Sleep(70*time.Second - time.Nanosecond) // drained at 150 s, idle at 160 s
		checkBuckets(t, buckets, 1)
		time.Sleep(time.Nanosecond)
		checkBuckets(t, buckets, 0)

		stopRegistry(sys, registry)
	})
}

func TestRegistryHoldsRequestsDuringPassivation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newFakeTimer(sys)
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: testRules(t), IdleAfter: 10 * time.Second})
		start := time.Now()

		// A new bucket asks to be woken when it will have been idle for
		// 10 s; the grant moves that to 11 s, which it will find out then.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		bucket := timer.next(t, 10*time.Second)
		time.Sleep(11 * time.Second)

		// The bucket's Idle, then #2 and a Cancel, in that order: the
		// registry holds both back until the bucket has answered Passivate.
		sys.Root.RequestWithCustomSender(registry, &messages.Idle{}, bucket)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 1, Key: "a"})
		in.keyed(sys, registry, &messages.Cancel{RequestId: 2, Key: "a"})

		// The bucket was idle, so it stopped; #2 went to a new one, once,
		// and was granted (the Cancel came too late to withdraw it).
		in.expect(t, start, 2, granted, 11*time.Second)
		in.expectNothing(t)
		if next := timer.next(t, 10*time.Second); next.Equal(bucket) {
			t.Errorf("bucket %s was not replaced", bucket.GetId())
		}
		in.keyed(sys, registry, &messages.GetStatus{RequestId: 3, Key: "a"})
		if st, ok := (<-in.got).(*messages.Status); !ok || st.GetGrantedTotal() != 1 {
			t.Errorf("got %v, want the status of a new bucket with one grant", st)
		}
		checkBuckets(t, buckets, 1)

		stopRegistry(sys, registry)
	})
}

func TestRegistryKeepsBucketThatTurnsBusyDuringPassivation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newFakeTimer(sys)
		in := newInbox(sys, "caller")
		rules, err := NewRules(map[string]*messages.Limit{"a": perSecond(1, 2)}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: rules, IdleAfter: 10 * time.Second})
		start := time.Now()

		// A new bucket asks to be woken when it will have been idle for
		// 10 s; the grant moves that to 11 s, which it will find out then.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		bucket := timer.next(t, 10*time.Second)
		time.Sleep(11 * time.Second)

		// #2 reaches the bucket before Passivate and makes it busy; #3 is
		// held back and then goes to the same bucket, behind #2.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 2, Key: "a"})
		sys.Root.RequestWithCustomSender(registry, &messages.Idle{}, bucket)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 3, Amount: 1, Key: "a"})
		in.expect(t, start, 2, granted, 11*time.Second)
		timer.next(t, time.Second) // when #3 fits: the timer is ours, so wake it by hand
		time.Sleep(time.Second)
		sys.Root.Send(bucket, &messages.Leak{})
		in.expect(t, start, 3, granted, 12*time.Second)
		in.keyed(sys, registry, &messages.GetStatus{RequestId: 4, Key: "a"})
		if st, ok := (<-in.got).(*messages.Status); !ok || st.GetGrantedTotal() != 3 {
			t.Errorf("got %v, want the status of the first bucket with three grants", st)
		}
		checkBuckets(t, buckets, 1)

		stopRegistry(sys, registry)
	})
}

func TestRegistryForgetsBucketStoppedFromOutside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newFakeTimer(sys)
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: testRules(t), IdleAfter: time.Minute})
		start := time.Now()

		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		bucket := timer.next(t, time.Minute)
		sys.Root.Stop(bucket)
		checkBuckets(t, buckets, 0)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 3, Amount: 1, Key: "b1"})
		in.expect(t, start, 3, granted, 0) // another key is not affected

		// A late Idle from it changes nothing; the next request gets a new
		// bucket, which starts full: the old one might have been busy.
		sys.Root.RequestWithCustomSender(registry, &messages.Idle{}, bucket)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 1, Key: "a"})
		synctest.Wait()
		var full *actor.PID
		for full == nil {
			if c := <-timer.got; c.m.GetDelayNanos() == int64(time.Second) {
				full = c.bucket // the timer is ours: wake #2's bucket by hand
			}
		}
		time.Sleep(time.Second)
		sys.Root.Send(full, &messages.Leak{})
		in.expect(t, start, 2, granted, time.Second)
		checkBuckets(t, buckets, 2)

		stopRegistry(sys, registry)
	})
}

func TestRegistryStopAnswersEveryWaiterOfEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys, RegistrySpec{Rules: testRules(t)})

		// #1 and #2 granted, #3 and #4 waiting, #5 still in a bucket's
		// mailbox when Stop comes: Stop queues behind it.
		for i, key := range []string{"a", "b", "a", "b"} {
			id := uint64(i + 1)
			in.keyed(sys, registry, &messages.Acquire{RequestId: id, Amount: 1, Key: key})
		}
		synctest.Wait()
		for range 2 {
			if _, ok := (<-in.got).(*messages.Granted); !ok {
				t.Fatal("want the first two granted")
			}
		}
		in.keyed(sys, registry, &messages.Acquire{RequestId: 5, Amount: 1, Key: "a"})
		in.keyed(sys, registry, &messages.Stop{RequestId: 9})
		in.keyed(sys, registry, &messages.Acquire{RequestId: 6, Amount: 1, Key: "b"})

		// The waiters (#3, #4, #5) are answered before Stop is. #6 came
		// after Stop and is refused by the registry, before or after the
		// Status: the buckets' Terminated, system messages, may overtake it
		// in the registry's mailbox.
		const stopped = messages.RejectReason_REJECT_REASON_STOPPED
		got := map[uint64]bool{}
		status := false
		for range 5 {
			switch m := (<-in.got).(type) {
			case *messages.Rejected:
				if m.GetReason() != stopped {
					t.Errorf("got %v, want %v", m, stopped)
				}
				got[m.GetRequestId()] = true
			case *messages.Status:
				if m.GetRequestId() != 9 {
					t.Errorf("got %v, want the Status answering Stop", m)
				}
				if !got[3] || !got[4] || !got[5] {
					t.Errorf("Stop answered before every waiter: %v", got)
				}
				status = true
			}
		}
		for _, id := range []uint64{3, 4, 5, 6} {
			if !got[id] {
				t.Errorf("#%d was not answered, want %v", id, stopped)
			}
		}
		if !status {
			t.Error("Stop was not answered")
		}
		checkBuckets(t, buckets, 0)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
	})
}

func TestBucketAsksTimerOncePerIdleSpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newFakeTimer(sys)
		in := newInbox(sys, "caller")
		rules, err := NewRules(map[string]*messages.Limit{"a": perSecond(10, 10)}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		registry, buckets := spawnRegistry(t, sys,
			RegistrySpec{Rules: rules, IdleAfter: 10 * time.Second})
		start := time.Now()

		// Grants move the end of the idle spell (to 10.1 s, then 10.2 s),
		// but the wake-up asked for at the start, due earlier, stays.
		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		time.Sleep(50 * time.Millisecond)
		in.keyed(sys, registry, &messages.Acquire{RequestId: 2, Amount: 1, Key: "a"})
		in.expect(t, start, 2, granted, 50*time.Millisecond)
		bucket := timer.next(t, 10*time.Second)
		if n := len(timer.got); n != 0 {
			t.Fatalf("the bucket asked the timer %d more times, want none", n)
		}

		// Woken at 10 s, it asks again for 10.2 s, and then tells the
		// registry, which passivates it.
		time.Sleep(10*time.Second - 50*time.Millisecond)
		sys.Root.Send(bucket, &messages.Leak{})
		timer.next(t, 200*time.Millisecond)
		checkBuckets(t, buckets, 1)
		time.Sleep(200 * time.Millisecond)
		sys.Root.Send(bucket, &messages.Leak{})
		checkBuckets(t, buckets, 0)
		if n := len(timer.got); n != 0 {
			t.Errorf("the bucket asked the timer %d more times, want none", n)
		}

		stopRegistry(sys, registry)
	})
}

func TestBucketWithoutIdleTimeoutIsNeverPassivated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		timer := newFakeTimer(sys)
		in := newInbox(sys, "caller")
		registry, buckets := spawnRegistry(t, sys, RegistrySpec{Rules: testRules(t)})
		start := time.Now()

		in.keyed(sys, registry, &messages.Acquire{RequestId: 1, Amount: 1, Key: "a"})
		in.expect(t, start, 1, granted, 0)
		time.Sleep(24 * time.Hour)
		checkBuckets(t, buckets, 1)
		if n := len(timer.got); n != 0 {
			t.Errorf("an idle bucket asked the timer %d times, want none", n)
		}

		stopRegistry(sys, registry)
	})
}

func TestBadRegistrySpecIsRefused(t *testing.T) {
	tests := []struct {
		spec RegistrySpec
		want string
	}{
		{RegistrySpec{}, "rules are missing"},
		{RegistrySpec{Rules: &Rules{}, IdleAfter: -time.Second}, "idle timeout -1s"},
		{RegistrySpec{Rules: &Rules{}, MaxQueue: -2}, "max queue -2"},
		{RegistrySpec{Rules: &Rules{}, MaxQueuedAmount: -1}, "max queued amount -1"},
	}

	for _, tt := range tests {
		if _, err := RegistryProps(tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RegistryProps(%+v) = %v, want an error naming %q", tt.spec, err, tt.want)
		}
	}
	if _, err := BucketProps(BucketSpec{Limit: perSecond(1, 1), IdleAfter: -1}); err == nil ||
		!strings.Contains(err.Error(), "idle timeout -1ns") {
		t.Errorf("BucketProps with IdleAfter -1 = %v, want an error naming it", err)
	}
}
