package actors

import (
	"sync"
	"sync/atomic"

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
// switch per request: half the cost of a round trip. Calls in flight sit in
// a sharded table, so goroutines contend only when their ids share a shard.
//
// A Requester is safe for concurrent use.
type Requester struct {
	sys    *actor.ActorSystem
	bucket *actor.PID
	self   *actor.PID
	nextID atomic.Uint64
	closed atomic.Bool
	shards [requesterShards]callShard

	// calls recycles Calls. It belongs to the requester rather than the
	// package so that a call's channel is only ever used where the
	// requester is: testing/synctest forbids sharing channels across
	// bubbles.
	calls sync.Pool
}

const requesterShards = 64

type callShard struct {
	mu    sync.Mutex
	calls map[uint64]*Call
	_     [40]byte // keep neighbouring shards off one cache line
}

// Call is one request in flight. Its reply arrives on Reply, or goes to the
// callback given to Start.
type Call struct {
	id      uint64
	reply   chan proto.Message
	onReply func(proto.Message)
}

// Reply returns the channel that receives the call's only reply.
func (c *Call) Reply() <-chan proto.Message {
	return c.reply
}

var _ actor.Process = (*Requester)(nil)

// NewRequester registers a request actor for bucket in sys.
func NewRequester(sys *actor.ActorSystem, bucket *actor.PID) *Requester {
	r := &Requester{sys: sys, bucket: bucket}
	r.calls.New = func() any { return &Call{reply: make(chan proto.Message, 1)} }
	for i := range r.shards {
		r.shards[i].calls = make(map[uint64]*Call)
	}
	r.self, _ = sys.ProcessRegistry.Add(r, "drip-requester-"+sys.ProcessRegistry.NextId())

	return r
}

// PID returns the request actor's PID.
func (r *Requester) PID() *actor.PID {
	return r.self
}

// Bucket returns the PID of the bucket the requester talks to.
func (r *Requester) Bucket() *actor.PID {
	return r.bucket
}

// Start sends m, one of Acquire, TryAcquire, GetStatus, SetLimit or Stop,
// to the bucket with a fresh request id. The reply goes to onReply if it is
// not nil, else to the call's Reply channel. After Close, the call is
// answered at once with a Rejected (REJECT_REASON_STOPPED).
func (r *Requester) Start(m proto.Message, onReply func(proto.Message)) *Call {
	c := r.calls.Get().(*Call)
	c.id, c.onReply = r.nextID.Add(1), onReply
	setRequestID(m, c.id)

	s := r.shard(c.id)
	s.mu.Lock()
	s.calls[c.id] = c
	s.mu.Unlock()

	// Close may have run between the check a caller made and the insert:
	// it would have missed this call, so answer it here.
	if r.closed.Load() {
		r.fail(c.id, "the scheduler stopped")
		return c
	}
	r.sys.Root.RequestWithCustomSender(r.bucket, m, r.self)

	return c
}

// ID returns the call's request id.
func (c *Call) ID() uint64 {
	return c.id
}

// Abandon withdraws the call with request id. It returns true if the call
// had no reply yet: the bucket is told to drop the request (if cancel is
// set), and the call must not be used again. It returns false if the reply
// has been or is being delivered. Abandon takes an id rather than the Call
// because a call is reused once its reply is taken.
func (r *Requester) Abandon(id uint64, cancel bool) bool {
	c := r.take(id)
	if c == nil {
		return false
	}

	if cancel && !r.closed.Load() {
		r.sys.Root.RequestWithCustomSender(r.bucket, &messages.Cancel{RequestId: id}, r.self)
	}
	r.Recycle(c)

	return true
}

// Recycle returns a call whose reply has been received for reuse.
func (r *Requester) Recycle(c *Call) {
	c.onReply = nil
	r.calls.Put(c)
}

// Close answers every call in flight with a Rejected
// (REJECT_REASON_STOPPED) and unregisters the request actor. Later calls
// are answered the same way at once. Close is idempotent.
func (r *Requester) Close(detail string) {
	if r.closed.Swap(true) {
		return
	}

	r.failAll(detail)
	r.sys.ProcessRegistry.Remove(r.self)
}

// Closed reports whether Close has run or the bucket was found gone.
func (r *Requester) Closed() bool {
	return r.closed.Load()
}

// SendUserMessage implements actor.Process: it receives the bucket's
// replies.
func (r *Requester) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)

	switch m := msg.(type) {
	case *messages.Granted:
		if !r.deliver(m.GetRequestId(), m) {
			// The caller gave up while the grant was on its way: hand it back.
			r.sys.Root.RequestWithCustomSender(r.bucket,
				&messages.Release{RequestId: m.GetRequestId()}, r.self)
		}
	case *messages.Rejected:
		r.deliver(m.GetRequestId(), m)
	case *messages.Status:
		r.deliver(m.GetRequestId(), m)
	case *actor.DeadLetterResponse:
		// The bucket is gone: nobody will answer any call.
		r.closed.Store(true)
		r.failAll("the bucket is gone")
	}
}

// SendSystemMessage implements actor.Process; the requester watches
// nothing, so there is nothing to handle.
func (r *Requester) SendSystemMessage(*actor.PID, any) {}

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

	if c.onReply != nil {
		f := c.onReply
		r.Recycle(c)
		f(m)
		return true
	}
	c.reply <- m // never blocks: the channel has room for the only reply

	return true
}

// take removes and returns the call with id, or nil.
func (r *Requester) take(id uint64) *Call {
	s := r.shard(id)
	s.mu.Lock()
	c, ok := s.calls[id]
	if ok {
		delete(s.calls, id)
	}
	s.mu.Unlock()

	return c
}

func (r *Requester) fail(id uint64, detail string) {
	r.deliver(id, &messages.Rejected{RequestId: id,
		Reason: messages.RejectReason_REJECT_REASON_STOPPED, Detail: detail})
}

func (r *Requester) failAll(detail string) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		ids := make([]uint64, 0, len(s.calls))
		for id := range s.calls {
			ids = append(ids, id)
		}
		s.mu.Unlock()

		for _, id := range ids {
			r.fail(id, detail)
		}
	}
}

func (r *Requester) shard(id uint64) *callShard {
	return &r.shards[id%requesterShards]
}

// setRequestID stamps id on a request message.
func setRequestID(m proto.Message, id uint64) {
	switch m := m.(type) {
	case *messages.Acquire:
		m.RequestId = id
	case *messages.TryAcquire:
		m.RequestId = id
	case *messages.GetStatus:
		m.RequestId = id
	case *messages.SetLimit:
		m.RequestId = id
	case *messages.Stop:
		m.RequestId = id
	}
}
