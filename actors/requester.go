package actors

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/messages"
)

// Requester is the request actor: it carries plain goroutines' requests to
// one bucket and their replies back. It is a protoactor process with a PID
// of its own, so the bucket answers it like any actor, locally or over
// remote.
//
// It has no mailbox. A reply is handed to the waiting goroutine by the
// sender's goroutine as it arrives, which saves a mailbox hop and a context
// switch per request: half the cost of a round trip.
//
// Calls in flight sit in a table split into shards, each behind its own
// mutex; a caller picks a shard at random, so goroutines rarely contend. A
// request id names its shard, its slot and the slot's generation, so a
// reply finds its call without hashing, and a late reply to a call whose
// slot was reused finds nothing.
//
// It watches the bucket, so that calls fail at once when the bucket stops
// or its node's connection breaks, and it is watchable: when it closes, a
// bucket watching it (one on another node) drops its waiters. For a bucket
// on another node it also probes while calls wait (see liveness), so that
// a node that goes silent fails them within a bounded time.
//
// A Requester is safe for concurrent use.
type Requester struct {
	sys     *actor.ActorSystem
	target  atomic.Pointer[actor.PID] // the bucket; nil until resolved
	resolve func() *actor.PID         // nil for a fixed bucket
	forget  func(*actor.PID)
	self    *actor.PID
	closed  atomic.Bool // no new calls: Close ran or the bucket stopped
	removed atomic.Bool // unregistered from the process registry
	shards  [shardCount]callShard

	live *liveness // nil for a bucket in this actor system

	watchMu  sync.Mutex
	watchers map[string]*actor.PID // by PID string: who watches the requester
	watched  *actor.PID            // the bucket a Watch is in force on, if any
}

// RequesterOption configures a Requester.
type RequesterOption func(*requesterConfig)

type requesterConfig struct {
	unreachableAfter time.Duration
	resolve          func() *actor.PID
	forget           func(*actor.PID)
}

// WithResolver makes the requester find its bucket with resolve, before the
// first call and again after the bucket was lost, instead of using a fixed
// PID; forget is told of a PID that was lost. This is how a requester
// follows a cluster identity from one activation to the next. resolve may
// block (a cluster activation takes a round trip) and returns nil when no
// bucket can be found; the call then fails with REJECT_REASON_UNREACHABLE.
func WithResolver(resolve func() *actor.PID, forget func(*actor.PID)) RequesterOption {
	return func(c *requesterConfig) { c.resolve, c.forget = resolve, forget }
}

// DefaultUnreachableAfter is how long a remote bucket's node may stay
// silent while calls wait before they fail. With probes every fifth of it,
// a silent node fails its calls within 1.2 times this: 1.44 s.
const DefaultUnreachableAfter = 1200 * time.Millisecond

// WithUnreachableAfter sets how long a bucket on another node may stay
// silent while calls wait before they fail with REJECT_REASON_UNREACHABLE.
// Zero or less turns the probe off: then only a broken connection, as
// protoactor's remote reports it, fails them.
func WithUnreachableAfter(d time.Duration) RequesterOption {
	return func(c *requesterConfig) { c.unreachableAfter = d }
}

// Request ids: the low shardBits name the shard, the next slotBits the slot,
// and the rest count how often the slot has been used.
const (
	shardBits  = 4
	shardCount = 1 << shardBits
	slotBits   = 28
	slotMask   = 1<<slotBits - 1
)

// callShard holds calls in slots; a slot keeps its Call between uses, so a
// call's channel is made once per slot.
type callShard struct {
	mu    sync.Mutex
	slots []*Call
	free  []uint32 // slots not in use
	_     [8]byte  // keep neighbouring shards' mutexes apart
}

// Call is one request in flight. Its reply arrives on Reply, or goes to the
// callback given to Start.
type Call struct {
	id  uint64
	key string // the key of the request, for routing its Cancel

	// acquire and env are the Acquire message and its envelope that the
	// slot keeps between calls, so that StartAcquire allocates neither.
	// They are reused only after the bucket's own reply: a call abandoned
	// or answered here may leave them on their way, so it drops them.
	acquire *messages.Acquire
	env     *actor.MessageEnvelope

	waiting bool // registered and not yet answered or abandoned
	reply   chan proto.Message
	onReply func(proto.Message)
}

// ID returns the call's request id.
func (c *Call) ID() uint64 {
	return c.id
}

// Reply returns the channel that receives the call's only reply.
func (c *Call) Reply() <-chan proto.Message {
	return c.reply
}

var _ actor.Process = (*Requester)(nil)

// NewRequester registers a request actor for bucket in sys and watches the
// bucket. A nil bucket, without WithResolver, gives a requester that
// answers every call with REJECT_REASON_STOPPED.
func NewRequester(sys *actor.ActorSystem, bucket *actor.PID, opts ...RequesterOption) *Requester {
	cfg := requesterConfig{unreachableAfter: DefaultUnreachableAfter}
	for _, opt := range opts {
		opt(&cfg)
	}

	r := &Requester{sys: sys, resolve: cfg.resolve, forget: cfg.forget}
	r.target.Store(bucket)
	r.self, _ = sys.ProcessRegistry.Add(r, "drip-requester-"+sys.ProcessRegistry.NextId())
	if bucket == nil && r.resolve == nil {
		r.closed.Store(true)
		return r
	}

	// A resolved bucket may live on any member, this one included.
	if (r.resolve != nil || r.isRemote(bucket)) && cfg.unreachableAfter > 0 {
		r.live = newLiveness(r, cfg.unreachableAfter)
	}
	if bucket != nil {
		r.watchBucket(bucket)
	}

	return r
}

// isRemote reports whether pid lives in another actor system. "nonhost"
// is the address protoactor gives local PIDs when no remote runs.
func (r *Requester) isRemote(pid *actor.PID) bool {
	a := pid.GetAddress()
	return a != r.sys.Address() && a != "nonhost"
}

// current returns the bucket, resolving it if it is not known; nil if it
// cannot be found.
func (r *Requester) current() *actor.PID {
	if pid := r.target.Load(); pid != nil || r.resolve == nil {
		return pid
	}

	pid := r.resolve()
	if pid == nil || !r.target.CompareAndSwap(nil, pid) {
		return r.target.Load() // another call resolved it first
	}

	return pid
}

// watchBucket asks to be told when pid stops or its node's connection
// breaks, unless a watch on it is already in force.
func (r *Requester) watchBucket(pid *actor.PID) {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()

	if samePID(r.watched, pid) {
		return
	}
	r.watched = pid
	ref, _ := r.sys.ProcessRegistry.Get(pid)
	ref.SendSystemMessage(pid, &actor.Watch{Watcher: r.self})
}

// PID returns the request actor's PID.
func (r *Requester) PID() *actor.PID {
	return r.self
}

// System returns the actor system the requester lives in.
func (r *Requester) System() *actor.ActorSystem {
	return r.sys
}

// Bucket returns the PID of the bucket the requester talks to, resolving
// it if need be; nil if it cannot be found.
func (r *Requester) Bucket() *actor.PID {
	return r.current()
}

// Start sends m, one of Acquire, TryAcquire, GetStatus, SetLimit, Pause or Stop,
// to the bucket with a fresh request id. The reply goes to onReply if it is
// not nil, and then the returned Call belongs to the requester and must not
// be touched; else the reply goes to the call's Reply channel, and once it
// is received the caller hands the call back with Recycle. After Close, the call is
// answered at once with a Rejected (REJECT_REASON_STOPPED).
func (r *Requester) Start(m proto.Message, onReply func(proto.Message)) *Call {
	c := r.register(onReply)
	c.key = setRequestID(m, c.id)

	return r.send(c, m)
}

// StartAcquire is Start for an Acquire of amount under key, waiting at most
// maxWait (0 for no limit), whose reply goes to the call's Reply channel.
// It is the Go API's hot path: the message and its envelope are the
// slot's, reused from call to call.
func (r *Requester) StartAcquire(amount float64, maxWait int64, key string) *Call {
	c := r.register(nil)
	if c.acquire == nil {
		c.acquire = &messages.Acquire{}
		c.env = &actor.MessageEnvelope{Message: c.acquire, Sender: r.self}
	}
	a := c.acquire
	a.RequestId, a.Amount, a.MaxWaitNanos, a.Key, a.Hold = c.id, amount, maxWait, key, false
	c.key = key

	return r.send(c, c.env)
}

// send sends msg, c's request or its envelope, to the bucket, or answers c
// at once if there is no bucket to send it to.
func (r *Requester) send(c *Call, msg any) *Call {
	// Close may have run between the check a caller made and register: it
	// would have missed this call, so answer it here.
	if r.closed.Load() {
		r.fail(c.id, "the scheduler stopped")
		return c
	}
	pid := r.current()
	if pid == nil {
		r.reject(c.id, messages.RejectReason_REJECT_REASON_UNREACHABLE,
			"no member hosts the bucket")
		return c
	}
	if r.live != nil {
		// A watch lost with a broken connection is renewed with the next
		// call, so that a node that comes back is watched again.
		r.watchBucket(pid)
		r.live.callStarted()
	}
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		r.sys.Root.Send(pid, env) // an envelope goes as it is, sender and all
		return c
	}
	r.sys.Root.RequestWithCustomSender(pid, msg, r.self)

	return c
}

// register puts a waiting call in a random shard.
func (r *Requester) register(onReply func(proto.Message)) *Call {
	shard := rand.Uint32() % shardCount
	s := &r.shards[shard]

	s.mu.Lock()
	defer s.mu.Unlock()

	var slot uint32
	if n := len(s.free); n > 0 {
		slot, s.free = s.free[n-1], s.free[:n-1]
	} else {
		slot = uint32(len(s.slots))
		s.slots = append(s.slots, &Call{reply: make(chan proto.Message, 1)})
	}

	c := s.slots[slot]
	generation := c.id>>(shardBits+slotBits) + 1
	c.id = generation<<(shardBits+slotBits) | uint64(slot)<<shardBits | uint64(shard)
	c.waiting, c.onReply = true, onReply
	if r.live != nil {
		r.live.callRegistered()
	}

	return c
}

// Abandon withdraws the call with request id. It returns true if the call
// had no reply yet: the bucket is told to drop the request (if cancel is
// set), and the call is recycled. It returns false if the reply has been
// or is being delivered. Abandon takes an id rather than the Call because a
// call is reused once recycled.
func (r *Requester) Abandon(id uint64, cancel bool) bool {
	c := r.take(id)
	if c == nil {
		return false
	}

	if pid := r.target.Load(); cancel && pid != nil && !r.closed.Load() {
		r.sys.Root.RequestWithCustomSender(pid,
			&messages.Cancel{RequestId: id, Key: c.key}, r.self)
	}
	c.acquire, c.env = nil, nil // the Acquire may still be on its way
	r.Recycle(c)

	return true
}

// Tell sends m, a Cancel, Release or Commit that needs no answer, to the
// bucket as the requester, so that the bucket matches it with the
// requester's earlier call.
func (r *Requester) Tell(m proto.Message) {
	if pid := r.target.Load(); pid != nil && !r.closed.Load() {
		r.sys.Root.RequestWithCustomSender(pid, m, r.self)
	}
}

// Recycle hands back a call whose reply has been received.
func (r *Requester) Recycle(c *Call) {
	s := &r.shards[c.id%shardCount]

	s.mu.Lock()
	c.onReply = nil
	s.free = append(s.free, uint32(c.id>>shardBits&slotMask))
	s.mu.Unlock()
}

// Close answers every call in flight with a Rejected
// (REJECT_REASON_STOPPED) and unregisters the request actor. Later calls
// are answered the same way at once. Close is idempotent.
func (r *Requester) Close(detail string) {
	r.closed.Store(true)
	if r.removed.Swap(true) {
		return
	}

	r.failAll(messages.RejectReason_REJECT_REASON_STOPPED, detail)
	r.sys.ProcessRegistry.Remove(r.self)
	r.unwatchBucket()
	r.notifyWatchers()
	if r.live != nil {
		r.live.stop()
	}
}

// unwatchBucket withdraws the watch on a remote bucket, so that it keeps
// no watcher for a requester that is gone (protoactor never drops a
// remote watcher itself). A local bucket is left alone: the Scheduler that
// owns it has stopped it already, and an Unwatch would be a dead letter.
func (r *Requester) unwatchBucket() {
	r.watchMu.Lock()
	pid := r.watched
	r.watched = nil
	r.watchMu.Unlock()

	if pid != nil && r.isRemote(pid) {
		ref, _ := r.sys.ProcessRegistry.Get(pid)
		ref.SendSystemMessage(pid, &actor.Unwatch{Watcher: r.self})
	}
}

// notifyWatchers tells every watcher, such as a bucket on another node,
// that the requester is gone, so it drops the requester's waiters.
func (r *Requester) notifyWatchers() {
	r.watchMu.Lock()
	watchers := r.watchers
	r.watchers = nil
	r.watchMu.Unlock()

	for _, w := range watchers {
		ref, _ := r.sys.ProcessRegistry.Get(w)
		ref.SendSystemMessage(w, &actor.Terminated{Who: r.self,
			Why: actor.TerminatedReason_Stopped})
	}
}

// Closed reports whether Close has run or the bucket was found gone.
func (r *Requester) Closed() bool {
	return r.closed.Load()
}

// SendUserMessage implements actor.Process: it receives the bucket's
// replies.
func (r *Requester) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if _, local := msg.(*actor.DeadLetterResponse); !local && r.live != nil {
		// A reply is a sign of life; a dead letter is made on this node.
		r.live.heard()
	}

	switch m := msg.(type) {
	case *messages.Granted:
		if pid := r.target.Load(); !r.deliver(m.GetRequestId(), m) && pid != nil {
			// The caller gave up while the grant was on its way: hand it back.
			r.sys.Root.RequestWithCustomSender(pid,
				&messages.Release{RequestId: m.GetRequestId(), Key: m.GetKey()}, r.self)
		}
	case *messages.Rejected:
		r.deliver(m.GetRequestId(), m)
	case *messages.Status:
		r.deliver(m.GetRequestId(), m)
	case *actor.DeadLetterResponse:
		r.bucketGone(m.GetTarget(), "the bucket is gone", false)
	}
}

// bucketGone fails every call in flight because pid, or the connection to
// its node, is lost; nil stands for whatever the bucket is now. News of a
// bucket the requester has already moved on from changes nothing.
//
// A fixed bucket in this actor system that stops is gone for good, so
// later calls fail at once. A remote one may be back once the connection
// is, and a resolved one may be activated elsewhere, so later calls try
// again; broken tells which: whether the node, rather than the bucket, was
// lost.
func (r *Requester) bucketGone(pid *actor.PID, detail string, broken bool) {
	current := r.target.Load()
	if pid != nil && current != nil && !samePID(pid, current) {
		return
	}

	if r.resolve == nil && !r.isRemote(current) {
		r.closed.Store(true)
		r.failAll(messages.RejectReason_REJECT_REASON_STOPPED, detail)
		return
	}

	r.watchMu.Lock()
	r.watched = nil
	r.watchMu.Unlock()
	if r.resolve != nil && current != nil && r.target.CompareAndSwap(current, nil) {
		r.forget(current)
	}

	reason := messages.RejectReason_REJECT_REASON_UNREACHABLE
	if !broken && r.resolve == nil {
		reason = messages.RejectReason_REJECT_REASON_STOPPED
	}
	if current != nil {
		detail += " (node " + current.GetAddress() + ")"
	}
	r.failAll(reason, detail)
}

// SendSystemMessage implements actor.Process: it keeps the requester's
// watchers, and learns from Terminated that the bucket it watches stopped
// or that the bucket's node was lost.
func (r *Requester) SendSystemMessage(_ *actor.PID, message any) {
	switch m := message.(type) {
	case *actor.Watch:
		r.addWatcher(m.GetWatcher())
	case *actor.Unwatch:
		r.watchMu.Lock()
		delete(r.watchers, m.GetWatcher().String())
		r.watchMu.Unlock()
	case *actor.Terminated:
		if m.GetWhy() == actor.TerminatedReason_AddressTerminated {
			r.bucketGone(m.GetWho(), "the connection to the bucket's node broke", true)
			return
		}
		r.bucketGone(m.GetWho(), "the bucket stopped", false)
	}
}

// addWatcher records w, or tells it at once that the requester is gone.
func (r *Requester) addWatcher(w *actor.PID) {
	r.watchMu.Lock()
	if !r.removed.Load() {
		if r.watchers == nil {
			r.watchers = make(map[string]*actor.PID)
		}
		r.watchers[w.String()] = w
		r.watchMu.Unlock()
		return
	}
	r.watchMu.Unlock()

	ref, _ := r.sys.ProcessRegistry.Get(w)
	ref.SendSystemMessage(w, &actor.Terminated{Who: r.self, Why: actor.TerminatedReason_Stopped})
}

// Stop implements actor.Process.
func (r *Requester) Stop(*actor.PID) {
	r.Close("the request actor stopped")
}

// deliver hands m to the call with id, reporting whether it was waiting.
func (r *Requester) deliver(id uint64, m proto.Message) bool {
	c := r.take(id)
	if c == nil {
		return false
	}
	r.hand(c, m)

	return true
}

// hand gives m, the reply, to c, taken already.
func (r *Requester) hand(c *Call, m proto.Message) {
	if c.onReply != nil {
		f := c.onReply
		r.Recycle(c)
		f(m)
		return
	}
	c.reply <- m // never blocks: the channel has room for the only reply
}

// take returns the waiting call with id and marks it answered, or returns
// nil if no call with id waits.
func (r *Requester) take(id uint64) *Call {
	s := &r.shards[id%shardCount]
	slot := id >> shardBits & slotMask

	s.mu.Lock()
	defer s.mu.Unlock()

	if slot >= uint64(len(s.slots)) {
		return nil
	}
	c := s.slots[slot]
	if c.id != id || !c.waiting {
		return nil
	}
	c.waiting = false
	if r.live != nil {
		r.live.callEnded()
	}

	return c
}

func (r *Requester) fail(id uint64, detail string) {
	r.reject(id, messages.RejectReason_REJECT_REASON_STOPPED, detail)
}

// reject answers call id here, not from the bucket: its Acquire may still
// be on its way (to a node that went silent, say), so the slot gives it up.
func (r *Requester) reject(id uint64, reason messages.RejectReason, detail string) {
	c := r.take(id)
	if c == nil {
		return
	}
	c.acquire, c.env = nil, nil
	r.hand(c, &messages.Rejected{RequestId: id, Reason: reason, Detail: detail})
}

// failAll answers every waiting call with a rejection for reason.
func (r *Requester) failAll(reason messages.RejectReason, detail string) {
	for i := range r.shards {
		s := &r.shards[i]
		var ids []uint64
		s.mu.Lock()
		for _, c := range s.slots {
			if c.waiting {
				ids = append(ids, c.id)
			}
		}
		s.mu.Unlock()

		for _, id := range ids {
			r.reject(id, reason, detail)
		}
	}
}

// setRequestID stamps id on a request message and returns its key.
func setRequestID(m proto.Message, id uint64) string {
	switch m := m.(type) {
	case *messages.Acquire:
		m.RequestId = id
		return m.GetKey()
	case *messages.TryAcquire:
		m.RequestId = id
		return m.GetKey()
	case *messages.GetStatus:
		m.RequestId = id
		return m.GetKey()
	case *messages.SetLimit:
		m.RequestId = id
		return m.GetKey()
	case *messages.Pause:
		m.RequestId = id
		return m.GetKey()
	case *messages.Stop:
		m.RequestId = id
	}

	return ""
}

// samePID reports whether a and b name the same process; either may be
// nil. (actor.PID.Equal dereferences a nil receiver.)
func samePID(a, b *actor.PID) bool {
	if a == nil || b == nil {
		return a == b
	}

	return a.GetAddress() == b.GetAddress() && a.GetId() == b.GetId()
}
