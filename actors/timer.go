package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/dueheap"
	"github.com/dripsched/drip/messages"
)

// timerName is the name of the one timer actor of each actor system.
const timerName = "drip-timer"

// Timer returns the PID of sys's timer actor, spawning it on first use. All
// buckets of a system share it.
func Timer(sys *actor.ActorSystem) *actor.PID {
	if _, ok := sys.ProcessRegistry.GetLocal(timerName); ok {
		return sys.NewLocalPID(timerName)
	}

	// Two buckets may get here at once; the process registry lets one spawn
	// win and hands the other the same PID with ErrNameExists.
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(newTimer), timerName)
	if err != nil && !errors.Is(err, actor.ErrNameExists) {
		return nil
	}

	return pid
}

// timer is the timer actor: a min-heap of due wake-ups, one per bucket, and
// one Go timer armed for the earliest of them. With nothing due it holds no
// Go timer, so idle buckets cost nothing.
//
// It computes due times from its own monotonic clock when a request
// arrives, so a request's transit only ever makes the wake-up later. Being
// late is harmless: the bucket decides from virtual time, and it re-asks if
// woken before its head fits.
type timer struct {
	wakeups *dueheap.Heap[pidKey, *actor.PID]
	epoch   time.Time
	goTimer *time.Timer
	armedAt int64 // due time goTimer is armed for, if goTimer != nil
}

// pidKey identifies a bucket without allocating.
type pidKey struct{ address, id string }

// wake is what the Go timer sends the timer actor when it fires.
type wake struct{}

// leakMessage is shared by every Leak sent: messages are never modified
// once sent.
var leakMessage = &messages.Leak{}

var _ actor.Actor = (*timer)(nil)

func newTimer() actor.Actor {
	return &timer{wakeups: dueheap.New[pidKey, *actor.PID](), epoch: time.Now()}
}

// Receive implements actor.Actor.
func (t *timer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.ScheduleLeak:
		t.schedule(ctx.Sender(), m)
	case wake:
		t.fire(ctx)
	case *actor.Stopping:
		t.disarm()
	default:
		return
	}

	t.arm(ctx)
}

// schedule adds, moves or removes the wake-up of bucket.
func (t *timer) schedule(bucket *actor.PID, m *messages.ScheduleLeak) {
	if bucket == nil {
		return
	}

	k := pidKey{bucket.GetAddress(), bucket.GetId()}
	if m.GetCancel() {
		t.wakeups.Remove(k)
		return
	}
	t.wakeups.Set(k, bucket, t.now()+max(m.GetDelayNanos(), 0))
}

// fire sends Leak to every bucket whose wake-up is due.
func (t *timer) fire(ctx actor.Context) {
	t.goTimer = nil
	now := t.now()
	for {
		bucket, ok := t.wakeups.PopDue(now)
		if !ok {
			return
		}
		ctx.Send(bucket, leakMessage)
	}
}

// arm points the Go timer at the earliest wake-up, or stops it when there
// is none.
func (t *timer) arm(ctx actor.Context) {
	due, ok := t.wakeups.Next()
	if !ok {
		t.disarm()
		return
	}

	if t.goTimer != nil && t.armedAt == due {
		return
	}
	t.disarm()

	self, sys := ctx.Self(), ctx.ActorSystem()
	t.armedAt = due
	t.goTimer = time.AfterFunc(time.Duration(due-t.now()), func() {
		sys.Root.Send(self, wake{})
	})
}

// disarm stops the Go timer. A wake already on its way finds nothing due
// and re-arms for what is left.
func (t *timer) disarm() {
	if t.goTimer != nil {
		t.goTimer.Stop()
		t.goTimer = nil
	}
}

func (t *timer) now() int64 {
	return int64(time.Since(t.epoch))
}
