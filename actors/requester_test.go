package actors

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

func TestRequesterFailsWaitersWhenBucketIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		bucket := spawnBucket(t, sys, BucketSpec{Limit: perSecond(1, 1)})
		r := NewRequester(sys, bucket)

		first := r.Start(&messages.Acquire{Amount: 1}, nil)
		if _, ok := (<-first.Reply()).(*messages.Granted); !ok {
			t.Fatal("the first unit was not granted")
		}
		waiting := r.Start(&messages.Acquire{Amount: 1}, nil)
		synctest.Wait()

		// A system stop overtakes the bucket's mailbox; the requester
		// learns from its watch and answers the waiter.
		sys.Root.Stop(bucket)
		m, ok := (<-waiting.Reply()).(*messages.Rejected)
		if !ok || m.GetReason() != messages.RejectReason_REJECT_REASON_STOPPED {
			t.Fatalf("got %v, want a rejection: stopped", m)
		}

		// The stopping bucket's answer may overtake the watch's Terminated.
		synctest.Wait()
		if !r.Closed() {
			t.Error("the requester is still open after its bucket stopped")
		}
		r.Close("test over")
		time.Sleep(time.Second) // past the dead-letter throttle interval
	})
}

func TestRequesterTellsWatchersWhenItCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		r := NewRequester(sys, newInbox(sys, "bucket").pid)
		watcher := newTerminatedInbox(sys, "watcher")

		r.SendSystemMessage(r.PID(), &actor.Watch{Watcher: watcher.pid})
		r.Close("test over")
		if who := <-watcher.terminated; !who.Equal(r.PID()) {
			t.Errorf("watcher told that %v terminated, want %v", who, r.PID())
		}

		// A watch that comes after Close is answered at once.
		r.SendSystemMessage(r.PID(), &actor.Watch{Watcher: watcher.pid})
		if who := <-watcher.terminated; !who.Equal(r.PID()) {
			t.Errorf("late watcher told that %v terminated, want %v", who, r.PID())
		}
	})
}

func TestRequesterRemoteBucketUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		far := newFarNode(sys, "node-far:8090")
		r := NewRequester(sys, &actor.PID{Address: "node-far:8090", Id: "bucket"},
			WithUnreachableAfter(time.Second))
		start := time.Now()

		// The node swallows everything: after a second of silence, with
		// probes every 200 ms, the call fails.
		c := r.Start(&messages.Acquire{Amount: 1}, nil)
		m, ok := (<-c.Reply()).(*messages.Rejected)
		if !ok || m.GetReason() != messages.RejectReason_REJECT_REASON_UNREACHABLE {
			t.Fatalf("got %v, want a rejection: unreachable", m)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("the call failed after %v, want 1s", took)
		}
		if n := far.probes(); n != 4 {
			t.Errorf("%d probes went out, want 4", n)
		}
		if r.Closed() {
			t.Error("an unreachable node closed the requester; later calls must try again")
		}

		// A node that answers the probes keeps a long wait alive.
		far.answer = true
		c = r.Start(&messages.Acquire{Amount: 1}, nil)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if len(c.Reply()) != 0 {
			t.Fatalf("a call to a node that answers probes failed: %v", <-c.Reply())
		}
		r.SendUserMessage(r.PID(), &messages.Granted{RequestId: c.ID()})
		if _, ok := (<-c.Reply()).(*messages.Granted); !ok {
			t.Error("the grant after a long wait did not arrive")
		}

		r.Close("test over")
		time.Sleep(time.Second)
	})
}

// farNode stands in for another node: every PID at its address resolves
// to it. It swallows what it gets and, if answer is set, answers probes.
type farNode struct {
	sys    *actor.ActorSystem
	answer bool
	mu     sync.Mutex
	n      int // probes seen
}

func newFarNode(sys *actor.ActorSystem, address string) *farNode {
	f := &farNode{sys: sys}
	sys.ProcessRegistry.RegisterAddressResolver(func(pid *actor.PID) (actor.Process, bool) {
		return f, pid.GetAddress() == address
	})

	return f
}

func (f *farNode) probes() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.n
}

func (f *farNode) SendUserMessage(_ *actor.PID, m any) {
	sender := actor.UnwrapEnvelopeSender(m)
	if _, ok := actor.UnwrapEnvelopeMessage(m).(*messages.GetStatus); !ok {
		return
	}

	f.mu.Lock()
	f.n++
	answer := f.answer
	f.mu.Unlock()
	if answer {
		f.sys.Root.Send(sender, &messages.Status{})
	}
}

func (f *farNode) SendSystemMessage(*actor.PID, any) {}
func (f *farNode) Stop(*actor.PID)                   {}

// terminatedInbox is a process that reports whose Terminated it receives.
type terminatedInbox struct {
	pid        *actor.PID
	terminated chan *actor.PID
}

func newTerminatedInbox(sys *actor.ActorSystem, name string) *terminatedInbox {
	in := &terminatedInbox{terminated: make(chan *actor.PID, 8)}
	in.pid, _ = sys.ProcessRegistry.Add(in, name)

	return in
}

func (in *terminatedInbox) SendUserMessage(*actor.PID, any) {}
func (in *terminatedInbox) Stop(*actor.PID)                 {}

func (in *terminatedInbox) SendSystemMessage(_ *actor.PID, m any) {
	if t, ok := m.(*actor.Terminated); ok {
		in.terminated <- t.GetWho()
	}
}

func TestBucketStartFullGrantsNothingUntilDrained(t *testing.T) {
	leaky := perSecond(2, 2)
	leaky.Mode = messages.Mode_MODE_LEAKY_BUCKET
	for _, l := range []*messages.Limit{leaky,
		{Rate: 2, PerNanos: int64(time.Second), Mode: messages.Mode_MODE_SLIDING_WINDOW}} {
		t.Run(l.GetMode().String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sys := newSystem()
				in := newInbox(sys, "caller")
				bucket := spawnBucket(t, sys, BucketSpec{Limit: l, StartFull: true})
				start := time.Now()

				in.acquire(sys, bucket, 1, 2)
				in.expect(t, start, 1, granted, time.Second)

				sys.Root.Stop(bucket)
				synctest.Wait()
			})
		})
	}
}

func TestRequesterReusesAnAcquireOnlyAfterItsReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem()
		bucket := newInbox(sys, "bucket")
		r := NewRequester(sys, bucket.pid)

		// Answered by the bucket: the slot keeps the message for its next
		// call.
		c := r.StartAcquire(2, 0, "api")
		sent := (<-bucket.got).(*messages.Acquire)
		if sent.GetAmount() != 2 || sent.GetKey() != "api" || sent.GetRequestId() != c.ID() {
			t.Fatalf("sent %v, want 2 units of api as request %d", sent, c.ID())
		}
		r.SendUserMessage(r.PID(), &messages.Granted{RequestId: c.ID()})
		<-c.Reply()
		r.Recycle(c)
		if c.acquire != sent {
			t.Error("an Acquire answered by the bucket was not kept for reuse")
		}

		// Abandoned, or answered here: the message may still be on its way,
		// so the slot lets it go.
		c = r.StartAcquire(1, 0, "")
		<-bucket.got
		if !r.Abandon(c.ID(), false) || c.acquire != nil {
			t.Error("an abandoned call kept its Acquire")
		}
		c = r.StartAcquire(1, 0, "")
		<-bucket.got
		r.failAll(messages.RejectReason_REJECT_REASON_UNREACHABLE, "test")
		<-c.Reply()
		if c.acquire != nil {
			t.Error("a call answered by the requester kept its Acquire")
		}
		r.Recycle(c)
		r.Close("test over")
	})
}
