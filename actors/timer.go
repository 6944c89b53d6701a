package actors

import (
	"container/heap"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

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
	wakeups wakeups
	byPID   map[pidKey]*wakeup
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
	return &timer{byPID: make(map[pidKey]*wakeup), epoch: time.Now()}
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
	w, ok := t.byPID[k]
	switch {
	case m.GetCancel() && ok:
		heap.Remove(&t.wakeups, w.index)
		delete(t.byPID, k)
	case m.GetCancel():
	case ok:
		w.due = t.now() + max(m.GetDelayNanos(), 0)
		heap.Fix(&t.wakeups, w.index)
	default:
		w = &wakeup{due: t.now() + max(m.GetDelayNanos(), 0), bucket: bucket}
		heap.Push(&t.wakeups, w)
		t.byPID[k] = w
	}
}

// fire sends Leak to every bucket whose wake-up is due.
func (t *timer) fire(ctx actor.Context) {
	t.goTimer = nil
	now := t.now()
	for len(t.wakeups) > 0 && t.wakeups[0].due <= now {
		w := heap.Pop(&t.wakeups).(*wakeup)
		delete(t.byPID, pidKey{w.bucket.GetAddress(), w.bucket.GetId()})
		ctx.Send(w.bucket, leakMessage)
	}
}

// arm points the Go timer at the earliest wake-up, or stops it when there
// is none.
func (t *timer) arm(ctx actor.Context) {
	if len(t.wakeups) == 0 {
		t.disarm()
		return
	}

	due := t.wakeups[0].due
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

// wakeup is one bucket's due wake-up.
type wakeup struct {
	due    int64
	bucket *actor.PID
	index  int
}

// wakeups is a min-heap by due time.
type wakeups []*wakeup

func (h wakeups) Len() int           { return len(h) }
func (h wakeups) Less(i, j int) bool { return h[i].due < h[j].due }

func (h wakeups) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *wakeups) Push(x any) {
	w := x.(*wakeup)
	w.index = len(*h)
	*h = append(*h, w)
}

func (h *wakeups) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]

	return w
}
