package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// BucketSpec describes a bucket actor.
type BucketSpec struct {
	// Limit is the bucket's rule; it is validated by BucketProps.
	Limit *messages.Limit

	// Key is the bucket's key in a registry, if it has one; it is stamped
	// on every Granted so that an unwanted grant can find its way back.
	Key string

	// MaxQueue bounds the number of waiting requests; 0 means no bound.
	MaxQueue int

	// MaxQueuedAmount bounds the total amount waiting; 0 means no bound.
	MaxQueuedAmount float64

	// Logger receives the bucket's debug lines; nil means the actor
	// system's logger.
	Logger *slog.Logger

	// IdleAfter is how long the bucket stays idle (nobody waits and the
	// level is zero) before it sends messages.Idle to its parent, which may
	// answer with messages.Passivate; 0 means never. See passivate.
	IdleAfter time.Duration

	// StartFull makes the bucket start full instead of empty, as a bucket
	// that takes over a limit from one that failed must: a cluster
	// activation may be the successor of one on a member that died.
	StartFull bool

	// timer is the timer actor's PID, when the spawner has it: one PID for
	// all its buckets instead of one each (a registry of 100,000 keys).
	timer *actor.PID

	// beforeDecide, when set by tests, runs before each Acquire or
	// TryAcquire is decided; a panic in it is a failure of the bucket.
	beforeDecide func(msg any)
}

// BucketProps validates spec and returns the props of a bucket actor.
//
// The bucket is the only owner of its level and its queue: they are touched
// by its Receive alone, one message at a time, so there are no locks. If it
// panics, protoactor restarts it; the queue survives the restart, the level
// does not: the new incarnation starts full, so a crash gives no free burst.
//
// Stop a bucket with the Stop message (or actor.Poison), which queues
// behind the requests already sent. A system stop (actor.Stop) overtakes
// them, and protoactor drops what is left in the mailbox unanswered.
func BucketProps(spec BucketSpec) (*actor.Props, error) {
	c, err := newCore(spec.Limit, spec.MaxQueue, spec.MaxQueuedAmount, 0)
	if err != nil {
		return nil, err
	}
	if spec.IdleAfter < 0 {
		return nil, fmt.Errorf("idle timeout %v is negative", spec.IdleAfter)
	}
	if spec.StartFull {
		c.restart(0)
	}

	// The state lives outside the actor value so that a restart, which
	// produces a new value, keeps it.
	st := &bucketState{core: c, spec: spec, epoch: time.Now(), idleAt: int64(spec.IdleAfter)}
	producer := func() actor.Actor { return &bucket{st} }

	return actor.PropsFromProducer(producer,
		actor.WithSupervisor(actor.NewRestartingStrategy())), nil
}

// bucketState is what a bucket keeps across restarts.
type bucketState struct {
	core  *core
	spec  BucketSpec
	epoch time.Time // origin of the bucket's monotonic clock
	// readAt is the clock's last reading, which is when the decisions in
	// core.out were made: every handler reads it once before deciding.
	readAt int64

	incarnations int
	timer        *actor.PID
	scheduled    bool  // a wake-up is pending at the timer
	scheduledAt  int64 // its due time
	idleAt       int64 // when the bucket will have been idle for IdleAfter
	idleSent     bool  // Idle went to the parent in the current idle spell
	stopping     bool  // the bucket is stopping: it wants no more wake-ups

	// watched holds the remote requesters the bucket watches, so that the
	// waiters of a node that dies leave the queue (see watch).
	watched map[pidKey]struct{}

	// handling is the request being decided, so that if deciding panics
	// the restarted bucket can still answer it; its sender is nil between
	// requests.
	handling handling
}

// handling names the request a bucket is deciding.
type handling struct {
	sender  *actor.PID
	request uint64
}

// bucket is the bucket actor.
type bucket struct {
	*bucketState
}

var _ actor.Actor = (*bucket)(nil)

// Receive implements actor.Actor.
func (b *bucket) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		b.started(ctx)
	case *messages.Acquire:
		if b.expectSender(ctx, m) {
			b.watch(ctx)
			b.handle(ctx, m.GetRequestId(), func() { b.core.acquire(b.now(), ctx.Sender(), m) })
		}
	case *messages.TryAcquire:
		if b.expectSender(ctx, m) {
			b.handle(ctx, m.GetRequestId(), func() { b.core.try(b.now(), ctx.Sender(), m) })
		}
	case *messages.Cancel:
		b.core.cancel(b.now(), keyOf(ctx.Sender(), m.GetRequestId()))
		b.answer(ctx)
	case *messages.Release:
		b.core.release(b.now(), keyOf(ctx.Sender(), m.GetRequestId()))
		b.answer(ctx)
	case *messages.Commit:
		b.core.commit(b.now(), keyOf(ctx.Sender(), m.GetRequestId()))
		b.answer(ctx)
	case *messages.Leak:
		b.scheduled = false
		b.core.leak(b.now())
		b.answer(ctx)
	case *messages.GetStatus:
		st := b.core.status(b.now())
		st.RequestId = m.GetRequestId()
		b.respond(ctx, st)
	case *messages.SetLimit:
		b.setLimit(ctx, m)
	case *messages.Pause:
		b.pause(ctx, m)
	case *messages.Passivate:
		// Only the registry that made the bucket may passivate it; from
		// anyone else, such as another node, it is dropped.
		if samePID(ctx.Sender(), ctx.Parent()) {
			b.passivate(ctx)
		}
	case *messages.Stop:
		b.stop(ctx)
		st := b.core.status(b.now())
		st.RequestId = m.GetRequestId()
		b.respond(ctx, st)
		ctx.Stop(ctx.Self())
		return
	case *actor.Stopping:
		b.stop(ctx)
		return
	case *actor.Terminated:
		b.senderDied(ctx, m.GetWho())
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return
	default:
		b.logger(ctx).Debug("drip: bucket dropped an unknown message",
			slog.String("type", fmt.Sprintf("%T", m)), slog.Any("sender", ctx.Sender()))
		return
	}

	b.reschedule(ctx)
}

// started runs when the bucket starts, and again after each restart.
func (b *bucket) started(ctx actor.Context) {
	b.incarnations++
	if b.timer == nil {
		b.timer = b.spec.timer
		if b.timer == nil {
			b.timer = Timer(ctx.ActorSystem())
		}
	}
	if b.incarnations == 1 {
		return
	}

	b.core.restart(b.now())
	b.scheduled = false // the timer still holds it; asking again replaces it

	// The request being handled when the bucket failed was neither queued
	// nor answered: answer it now so it does not wait forever.
	if h := b.handling; h.sender != nil {
		b.handling = handling{}
		if _, queued := b.core.queue.index[keyOf(h.sender, h.request)]; !queued {
			ctx.Send(h.sender, &messages.Rejected{RequestId: h.request,
				Reason: messages.RejectReason_REJECT_REASON_RESTARTED,
				Detail: "the bucket failed while handling the request"})
		}
	}
	b.logger(ctx).Debug("drip: bucket restarted full", slog.Any("pid", ctx.Self()),
		slog.Int("waiting", b.core.queue.len()))
}

// watch starts watching the sender of the current request if it lives on
// another node, once per sender. When that node dies or its connection
// breaks, protoactor's remote sends Terminated and senderDied drops the
// sender's waiters. Local requesters need no watch: they withdraw their
// own calls when they stop.
func (b *bucket) watch(ctx actor.Context) {
	sender := ctx.Sender()
	if sender.GetAddress() == ctx.Self().GetAddress() {
		return
	}

	k := pidKey{sender.GetAddress(), sender.GetId()}
	if _, ok := b.watched[k]; ok {
		return
	}
	if b.watched == nil {
		b.watched = make(map[pidKey]struct{})
	}
	b.watched[k] = struct{}{}
	ctx.Watch(sender)
}

// senderDied drops the waiters of a watched requester that has gone.
func (b *bucket) senderDied(ctx actor.Context, who *actor.PID) {
	delete(b.watched, pidKey{who.GetAddress(), who.GetId()})
	n := b.core.dropSender(b.now(), who)
	b.answer(ctx)

	b.logger(ctx).Debug("drip: bucket dropped the waiters of a requester that is gone",
		slog.Any("requester", who), slog.Int("dropped", n))
}

// expectSender drops a request that has nobody to answer to.
func (b *bucket) expectSender(ctx actor.Context, m any) bool {
	if ctx.Sender() != nil {
		return true
	}

	b.logger(ctx).Debug("drip: bucket dropped a request without a sender",
		slog.String("type", fmt.Sprintf("%T", m)))

	return false
}

// handle runs decide for request id and sends its answers, remembering the
// request meanwhile in case deciding panics.
func (b *bucket) handle(ctx actor.Context, id uint64, decide func()) {
	b.handling = handling{sender: ctx.Sender(), request: id}
	if b.spec.beforeDecide != nil {
		b.spec.beforeDecide(ctx.Message())
	}
	decide()
	b.handling = handling{}

	b.answer(ctx)
}

// setLimit applies m and answers with the new status or a rejection.
func (b *bucket) setLimit(ctx actor.Context, m *messages.SetLimit) {
	if err := b.core.setLimit(b.now(), m.GetLimit()); err != nil {
		b.respond(ctx, &messages.Rejected{RequestId: m.GetRequestId(),
			Reason: messages.RejectReason_REJECT_REASON_INVALID_LIMIT, Detail: err.Error()})
		return
	}
	b.answer(ctx)

	st := b.core.status(b.now())
	st.RequestId = m.GetRequestId()
	b.respond(ctx, st)
}

// pause applies m and answers with the new status, or a rejection for a
// moment that is no time at all.
func (b *bucket) pause(ctx actor.Context, m *messages.Pause) {
	until := m.GetUntilUnixNanos()
	if until <= 0 {
		b.respond(ctx, &messages.Rejected{RequestId: m.GetRequestId(),
			Reason: messages.RejectReason_REJECT_REASON_INVALID_REQUEST,
			Detail: fmt.Sprintf("pause until %d is not a time", until)})
		return
	}

	// Wall clock to the bucket's monotonic one, clamped so a moment far
	// away cannot overflow it.
	now := b.now()
	wait := min(max(until-time.Now().UnixNano(), 0), forever)
	b.core.pause(now, now+wait)
	b.answer(ctx)

	st := b.core.status(b.now())
	st.RequestId = m.GetRequestId()
	b.respond(ctx, st)
}

// stop answers every waiter and cancels the pending wake-up.
func (b *bucket) stop(ctx actor.Context) {
	b.stopping = true
	b.core.stop(b.now())
	b.answer(ctx)
	b.reschedule(ctx)
}

// answer sends the core's decisions to their requesters.
func (b *bucket) answer(ctx actor.Context) {
	grantedAt := b.epoch.UnixNano() + b.readAt
	for i, o := range b.core.out {
		var msg any = &messages.Granted{RequestId: o.request, Key: b.spec.Key,
			GrantedAtUnixNanos: grantedAt}
		if o.reason != granted {
			msg = &messages.Rejected{RequestId: o.request, Reason: o.reason, Detail: o.detail}
		}
		ctx.Send(o.sender, msg)
		b.core.out[i] = outcome{}
	}

	b.core.out = b.core.out[:0]
	if cap(b.core.out) > bigQueue { // after a mass stop or grant, let it go
		b.core.out = nil
	}
}

// respond replies to the sender of the current message, if there is one.
func (b *bucket) respond(ctx actor.Context, msg any) {
	if ctx.Sender() == nil {
		return
	}
	ctx.Send(ctx.Sender(), msg)
}

// reschedule asks the timer to wake the bucket when the head of the queue
// will fit, or withdraws the wake-up when nobody waits.
func (b *bucket) reschedule(ctx actor.Context) {
	due, waiting := b.core.nextDue()
	if !waiting && b.spec.IdleAfter > 0 && !b.stopping {
		b.watchIdle(ctx)
		return
	}

	switch {
	case !waiting && b.scheduled:
		b.scheduled = false
		ctx.Request(b.timer, &messages.ScheduleLeak{Cancel: true})
	case waiting && (!b.scheduled || b.scheduledAt != due):
		b.scheduled, b.scheduledAt = true, due
		ctx.Request(b.timer, &messages.ScheduleLeak{DelayNanos: due - b.now()})
	}
}

// watchIdle runs when nobody waits in a bucket with an idle timeout. Once
// the bucket has been idle for IdleAfter it sends Idle to its parent, once
// per idle spell; until then it keeps a wake-up at the timer for the moment
// that will be, reusing its one wake-up slot.
//
// Every grant moves that moment, so asking the timer each time would cost
// a message per grant. Instead a wake-up that is already due earlier is
// kept: when it comes, the bucket finds it is not idle long enough yet and
// asks again. Under steady load that is one timer message per IdleAfter.
func (b *bucket) watchIdle(ctx actor.Context) {
	now := b.now()
	if drained := b.core.drainedAt(now); drained > now {
		// Busy: the idle spell starts once the level reaches zero, unless
		// a grant comes first and moves it again.
		b.idleAt, b.idleSent = forever, false
		if wait := int64(b.spec.IdleAfter); drained < forever-wait {
			b.idleAt = drained + wait
		}
	}

	if !b.idleSent && b.idleAt <= now {
		b.idleSent = true
		if ctx.Parent() != nil {
			ctx.Request(ctx.Parent(), idleMessage)
		}
	}

	switch {
	case b.idleSent:
		if b.scheduled {
			b.scheduled = false
			ctx.Request(b.timer, &messages.ScheduleLeak{Cancel: true})
		}
	case !b.scheduled || b.scheduledAt > b.idleAt:
		b.scheduled, b.scheduledAt = true, b.idleAt
		ctx.Request(b.timer, &messages.ScheduleLeak{DelayNanos: min(b.idleAt-now, forever)})
	}
}

// idleMessage is shared by every Idle sent: messages are never modified once
// sent.
var idleMessage = &messages.Idle{}

// passivate answers the parent's Passivate. The parent sends it after Idle
// and holds back every request for this bucket meanwhile, so Passivate comes
// after all the requests it forwarded before: if none of them made the
// bucket busy, it is still idle, a new bucket would be in the same state,
// and it stops. Otherwise it stays and starts a new idle spell. Either way
// it answers with Passivated, so the parent knows where to send what it
// held back.
func (b *bucket) passivate(ctx actor.Context) {
	// Sent as a request, so that the parent sees which child answers.
	stop := b.core.idle(b.now())
	if ctx.Sender() != nil {
		ctx.Request(ctx.Sender(), &messages.Passivated{Stopped: stop})
	}
	if !stop {
		b.idleSent = false
		return
	}

	// A system stop overtakes what is in the mailbox, which is nothing the
	// parent sent, and at most a Leak from the timer.
	b.stopping = true
	ctx.Stop(ctx.Self())
}

// now reads the bucket's monotonic clock.
func (b *bucket) now() int64 {
	b.readAt = int64(time.Since(b.epoch))

	return b.readAt
}

func (b *bucket) logger(ctx actor.Context) *slog.Logger {
	if b.spec.Logger != nil {
		return b.spec.Logger
	}

	return ctx.Logger()
}
