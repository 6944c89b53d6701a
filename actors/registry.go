package actors

import (
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/messages"
)

// RegistrySpec describes a registry actor.
type RegistrySpec struct {
	// Rules gives each key its limit; required.
	Rules *Rules

	// MaxQueue, MaxQueuedAmount and Logger are given to every bucket, as in
	// BucketSpec.
	MaxQueue        int
	MaxQueuedAmount float64
	Logger          *slog.Logger

	// IdleAfter is how long a bucket stays idle before it is passivated; 0
	// means never.
	IdleAfter time.Duration

	// Buckets, if set, is kept equal to the number of live buckets, so that
	// other goroutines can read it.
	Buckets *atomic.Int64
}

// RegistryProps validates spec and returns the props of a registry actor.
//
// A registry holds one bucket per key, as its children. It forwards each
// Acquire, TryAcquire, Cancel, Release, GetStatus and SetLimit to the bucket
// of the message's key, keeping the sender, so the bucket answers the
// sender directly. A key's bucket is spawned on first use with the key's
// rule, and stopped (passivated) once it has been idle for IdleAfter; the
// next request spawns a new one, which starts empty, exactly where the old
// one ended. A key that matches no rule is rejected with
// REJECT_REASON_UNKNOWN_KEY, an empty key with REJECT_REASON_INVALID_REQUEST.
//
// The registry answers the Stop message once every bucket has answered its
// waiters (REJECT_REASON_STOPPED) and stopped; the reply is an empty Status.
// A system stop (actor.Stop, actor.Poison) stops the buckets too, but drops
// what is still in their mailboxes unanswered, as for a single bucket.
//
// Passivation keeps a handshake so that no request is lost or counted
// twice: a bucket that has been idle tells the registry (Idle); the
// registry holds back every new message for that key and sends Passivate,
// which the bucket reads after everything forwarded before it. The bucket
// stops only if it is still idle, and says so (Passivated); the registry
// then sends what it held back to a new bucket, or to the same one.
//
// A bucket that is stopped from outside (a system stop of its PID) is
// forgotten, and the next request for its key gets a new bucket that starts
// full: the old one may have been busy, and a failure gives no free burst.
func RegistryProps(spec RegistrySpec) (*actor.Props, error) {
	if spec.Rules == nil {
		return nil, fmt.Errorf("the rules are missing")
	}
	if err := checkBucketSpec(spec); err != nil {
		return nil, err
	}

	producer := func() actor.Actor { return newRegistry(spec) }

	// A parent's strategy governs its children: buckets are always
	// restarted, as in BucketProps. The registry itself must not fail: a
	// restart would stop every bucket.
	return actor.PropsFromProducer(producer,
		actor.WithSupervisor(actor.NewRestartingStrategy()),
		actor.WithSpawnMiddleware(detachChildPID)), nil
}

// detachChildPID works around a leak in protoactor's PIDSet, which holds a
// parent's children: Remove shortens its slice without clearing the slot
// it frees, so the set keeps a pointer to each child that has gone until a
// later child takes the slot. A PID caches a pointer to its process, so
// that one pointer would keep a whole passivated bucket alive, about 1 KiB.
// The set gets a copy of the PID instead, through which the registry never
// sends (see spawn): all a freed slot keeps is that small copy.
func detachChildPID(next actor.SpawnFunc) actor.SpawnFunc {
	return func(sys *actor.ActorSystem, id string, props *actor.Props,
		parent actor.SpawnerContext) (*actor.PID, error) {
		pid, err := next(sys, id, props, parent)
		if pid != nil {
			pid = actor.NewPID(pid.GetAddress(), pid.GetId())
		}

		return pid, err
	}
}

// checkBucketSpec checks the settings every bucket will get, so that a bad
// one fails RegistryProps rather than the first request.
func checkBucketSpec(spec RegistrySpec) error {
	if spec.IdleAfter < 0 {
		return fmt.Errorf("idle timeout %v is negative", spec.IdleAfter)
	}
	l := &messages.Limit{Rate: 1, PerNanos: int64(time.Second), Burst: 1}
	_, err := newCore(l, spec.MaxQueue, spec.MaxQueuedAmount, 0)

	return err
}

// registry is the registry actor. Its state is touched by its Receive
// alone, so there are no locks.
type registry struct {
	spec RegistrySpec

	children map[string]*actor.PID // key → its live bucket
	keys     map[string]string     // bucket PID id → key
	peak     int                   // most children since the maps were made

	// closing holds the keys whose bucket was sent Passivate and has not
	// answered yet, with the messages held back meanwhile, in order.
	closing map[string][]heldMessage

	// full holds the keys whose bucket stopped without being passivated:
	// it may have been busy, so the next one starts full, as a bucket
	// restarted after a failure does.
	full map[string]struct{}

	stopping  bool      // new requests are refused
	stopAsked bool      // Stop came: stop once no bucket is left
	stoppers  []stopper // senders of Stop, answered then

	timer *actor.PID // the timer actor, shared by every bucket
}

// heldMessage is a message held back for a bucket, with its sender.
type heldMessage struct {
	msg    any
	sender *actor.PID
}

// stopper is a Stop to answer.
type stopper struct {
	sender *actor.PID
	id     uint64
}

// requestMessage is what every request of the protocol has.
type requestMessage interface{ GetRequestId() uint64 }

var _ actor.Actor = (*registry)(nil)

// passivateMessage is shared by every Passivate sent.
var passivateMessage = &messages.Passivate{}

func newRegistry(spec RegistrySpec) *registry {
	return &registry{spec: spec, children: make(map[string]*actor.PID),
		keys: make(map[string]string), closing: make(map[string][]heldMessage),
		full: make(map[string]struct{})}
}

// Receive implements actor.Actor.
func (r *registry) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Acquire:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.TryAcquire:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.GetStatus:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.SetLimit:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.Pause:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.Cancel:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.Release:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.Commit:
		r.route(ctx, m.GetKey(), m, ctx.Sender())
	case *messages.Idle:
		if fromChild(ctx) {
			r.idle(ctx, ctx.Sender())
		}
	case *messages.Passivated:
		if fromChild(ctx) {
			r.passivated(ctx, ctx.Sender(), m.GetStopped())
		}
	case *actor.Terminated:
		r.terminated(ctx, m.GetWho())
	case *messages.Stop:
		r.stop(ctx, m)
	case *actor.Stopping:
		r.halt(ctx)
		r.answerStoppers(ctx)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		r.logger(ctx).Debug("drip: registry dropped an unknown message",
			slog.String("type", fmt.Sprintf("%T", m)), slog.Any("sender", ctx.Sender()))
	}
}

// route sends msg, from sender, to the bucket of key, spawning it if
// needed and if msg expects an answer; while the bucket is being
// passivated, msg is held back. A message that cannot be routed is
// rejected if it expects an answer, and dropped otherwise.
func (r *registry) route(ctx actor.Context, key string, msg any, sender *actor.PID) {
	answer := expectsAnswer(msg)
	switch {
	case key == "":
		r.reject(ctx, msg, sender, answer, messages.RejectReason_REJECT_REASON_INVALID_REQUEST,
			"the key is empty")
		return
	case r.stopping:
		r.reject(ctx, msg, sender, answer, messages.RejectReason_REJECT_REASON_STOPPED,
			"the registry stopped")
		return
	}
	if held, ok := r.closing[key]; ok {
		r.closing[key] = append(held, heldMessage{msg, sender})
		return
	}

	pid, ok := r.children[key]
	if !ok && answer {
		pid, ok = r.spawn(ctx, key, msg, sender)
	}
	if !ok {
		return // a Cancel or Release for a bucket that is gone: nothing to undo
	}

	ctx.RequestWithCustomSender(pid, msg, sender)
}

// spawn starts the bucket of key. If no rule matches key it rejects msg,
// from sender, and returns false.
func (r *registry) spawn(ctx actor.Context, key string, msg any,
	sender *actor.PID) (*actor.PID, bool) {
	l, ok := r.spec.Rules.Lookup(key)
	if !ok {
		r.reject(ctx, msg, sender, true, messages.RejectReason_REJECT_REASON_UNKNOWN_KEY,
			fmt.Sprintf("no rule matches key %q", key))
		return nil, false
	}

	_, full := r.full[key]
	if r.timer == nil {
		r.timer = Timer(ctx.ActorSystem())
	}
	props, err := BucketProps(BucketSpec{Limit: l, Key: key, MaxQueue: r.spec.MaxQueue,
		MaxQueuedAmount: r.spec.MaxQueuedAmount, Logger: r.spec.Logger,
		IdleAfter: r.spec.IdleAfter, StartFull: full, timer: r.timer})
	if err != nil { // RegistryProps and NewRules checked all of it
		r.reject(ctx, msg, sender, true, messages.RejectReason_REJECT_REASON_INVALID_LIMIT,
			fmt.Sprintf("key %q: %v", key, err))
		return nil, false
	}

	// Children get generated names: a key may hold any character, and a
	// new bucket may start before the one it replaces has gone. The PID
	// Spawn returns is the one in protoactor's child set, which must not
	// cache the process (see detachChildPID): send through a copy.
	spawned := ctx.Spawn(props)
	pid := actor.NewPID(spawned.GetAddress(), spawned.GetId())
	r.children[key] = pid
	r.keys[pid.GetId()] = key
	delete(r.full, key)
	r.peak = max(r.peak, len(r.children))
	r.count()

	return pid, true
}

// fromChild reports whether the current message comes from this actor
// system, as a bucket's Idle and Passivated do. One from another node,
// whatever PID it claims, is ignored: only children take part in
// passivation.
func fromChild(ctx actor.Context) bool {
	return ctx.Sender() != nil && ctx.Sender().GetAddress() == ctx.Self().GetAddress()
}

// idle starts passivating the bucket at pid, if it is a live one and not
// already being passivated.
func (r *registry) idle(ctx actor.Context, pid *actor.PID) {
	key, ok := r.keys[pid.GetId()]
	if !ok || r.stopping {
		return
	}
	if _, closing := r.closing[key]; closing {
		return
	}

	r.closing[key] = nil
	ctx.Request(pid, passivateMessage)
}

// passivated ends the passivation of the bucket at pid: if it stopped, it
// is forgotten, else it stays; either way, what was held back for its key
// goes on, to the same bucket or a new one.
func (r *registry) passivated(ctx actor.Context, pid *actor.PID, stopped bool) {
	key, ok := r.keys[pid.GetId()]
	if !ok {
		return
	}

	if stopped {
		r.forget(key, pid)
	}
	r.release(ctx, key)
	r.finishStop(ctx)
}

// terminated forgets a bucket that has stopped. Its Terminated, a system
// message, may overtake its Passivated: a bucket that stops while it is
// being passivated is taken as passivated. One that stops otherwise, not
// by Stop, was stopped from outside, maybe while busy.
func (r *registry) terminated(ctx actor.Context, pid *actor.PID) {
	key, ok := r.keys[pid.GetId()]
	if !ok {
		return // passivated, and forgotten already
	}

	if _, closing := r.closing[key]; !closing && !r.stopping {
		r.full[key] = struct{}{}
	}
	r.forget(key, pid)
	r.release(ctx, key)
	r.finishStop(ctx)
}

// forget drops the bucket at pid, which is key's.
func (r *registry) forget(key string, pid *actor.PID) {
	delete(r.children, key)
	delete(r.keys, pid.GetId())
	r.count()

	// A Go map never shrinks: once most buckets of a peak have been
	// passivated, copy the rest to maps of their size. Copying a quarter
	// of the peak at most once per three quarters removed is O(1) each.
	if r.peak >= minShrink && len(r.children) < r.peak/4 {
		r.children, r.keys = resized(r.children), resized(r.keys)
		r.peak = len(r.children)
	}
}

// resized returns a copy of m in a map made for its size (maps.Clone keeps
// the size of the original).
func resized[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	maps.Copy(c, m)

	return c
}

// minShrink is the peak below which the registry's maps are not worth
// shrinking.
const minShrink = 1024

// release ends key's passivation and routes what was held back for it, in
// the order it came.
func (r *registry) release(ctx actor.Context, key string) {
	held, ok := r.closing[key]
	if !ok {
		return
	}

	delete(r.closing, key)
	for _, h := range held {
		r.route(ctx, key, h.msg, h.sender)
	}
}

// stop handles the Stop message: every bucket gets Stop behind what was
// forwarded to it, answers its waiters and stops, and the last one to go
// lets the registry answer and stop. Meanwhile every new request is
// rejected.
func (r *registry) stop(ctx actor.Context, m *messages.Stop) {
	if ctx.Sender() != nil {
		r.stoppers = append(r.stoppers, stopper{ctx.Sender(), m.GetRequestId()})
	}
	if r.stopAsked {
		return // the first Stop is under way, and will answer this one too
	}

	r.stopAsked = true
	r.halt(ctx)
	for _, pid := range r.children {
		ctx.Send(pid, &messages.Stop{}) // no sender: the bucket's reply is not needed
	}
	r.finishStop(ctx)
}

// halt makes the registry refuse new requests and answers what it holds
// back: the buckets will be gone before it could be sent.
func (r *registry) halt(ctx actor.Context) {
	r.stopping = true

	for key, held := range r.closing {
		for _, h := range held {
			r.reject(ctx, h.msg, h.sender, expectsAnswer(h.msg),
				messages.RejectReason_REJECT_REASON_STOPPED, "the registry stopped")
		}
		r.closing[key] = nil
	}
}

// finishStop answers Stop and stops the registry once no bucket is left.
func (r *registry) finishStop(ctx actor.Context) {
	if !r.stopAsked || len(r.children) > 0 {
		return
	}

	r.stopAsked = false // once: Stopping comes next
	r.answerStoppers(ctx)
	ctx.Stop(ctx.Self())
}

func (r *registry) answerStoppers(ctx actor.Context) {
	for _, s := range r.stoppers {
		ctx.Send(s.sender, &messages.Status{RequestId: s.id})
	}
	r.stoppers = nil
}

// reject answers msg, from sender, with a rejection if it expects an
// answer and has somebody to answer to, and drops it otherwise.
func (r *registry) reject(ctx actor.Context, msg any, sender *actor.PID, answer bool,
	reason messages.RejectReason, detail string) {
	req, ok := msg.(requestMessage)
	if !answer || !ok || sender == nil {
		r.logger(ctx).Debug("drip: registry dropped a message",
			slog.String("type", fmt.Sprintf("%T", msg)), slog.String("reason", reason.String()),
			slog.String("detail", detail))
		return
	}

	ctx.Send(sender, &messages.Rejected{RequestId: req.GetRequestId(), Reason: reason,
		Detail: detail})
}

// count publishes the number of live buckets.
func (r *registry) count() {
	if r.spec.Buckets != nil {
		r.spec.Buckets.Store(int64(len(r.children)))
	}
}

func (r *registry) logger(ctx actor.Context) *slog.Logger {
	if r.spec.Logger != nil {
		return r.spec.Logger
	}

	return ctx.Logger()
}

// expectsAnswer reports whether msg is a request that gets a reply; Cancel
// and Release get none.
func expectsAnswer(msg any) bool {
	switch msg.(type) {
	case *messages.Cancel, *messages.Release, *messages.Commit:
		return false
	}

	return true
}
