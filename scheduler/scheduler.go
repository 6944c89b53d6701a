package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/messages"
)

// Scheduler starts work at no more than a Limit, in the order it was asked
// for. It is a handle on a bucket actor: New spawns one, Attach uses one
// that lives elsewhere, such as on a remote node.
//
// Acquire waits in FIFO order and is the method most callers want; Go queues
// a task without blocking; TryAcquire never waits. A Scheduler is safe for
// concurrent use. Its zero value is not usable.
type Scheduler struct {
	req   *actors.Requester
	owned bool   // New spawned the bucket, so Stop stops it
	key   string // the bucket's key when req talks to a registry

	metrics *bucketMetrics // nil without WithMeterProvider

	// capacity is the largest amount that can ever fit, when known (owned
	// buckets), so Go can refuse it at once; 0 when unknown.
	capacity atomic.Uint64 // math.Float64bits

	stopOnce sync.Once
}

// New spawns a bucket with limit l in sys and returns its Scheduler. The
// bucket starts empty: the whole burst is available at once.
func New(sys *actor.ActorSystem, l Limit, opts ...Option) (*Scheduler, error) {
	m, err := l.message()
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)

	props, err := actors.BucketProps(actors.BucketSpec{Limit: m, MaxQueue: o.maxQueue,
		MaxQueuedAmount: o.maxQueuedAmount, Logger: o.logger})
	if err != nil {
		return nil, fmt.Errorf("scheduler: %v", err)
	}

	pid, err := spawn(sys, props, o.name)
	if err != nil {
		return nil, err
	}

	s := &Scheduler{req: actors.NewRequester(sys, pid), owned: true}
	s.setCapacity(m)
	if err := s.instrument(o.meterProvider, ""); err != nil {
		s.Stop()
		return nil, err
	}

	return s, nil
}

// spawn starts the bucket, under name if it is not empty.
func spawn(sys *actor.ActorSystem, props *actor.Props, name string) (*actor.PID, error) {
	if name == "" {
		return sys.Root.Spawn(props), nil
	}

	pid, err := sys.Root.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("scheduler: bucket name %q: %w", name, err)
	}

	return pid, nil
}

// Attach returns a Scheduler for the bucket at pid, which may live in
// another actor system or on another node (over protoactor remote). Options
// that describe a bucket have no effect here; WithUnreachableAfter and
// WithMeterProvider do.
//
// If the bucket stops, calls fail with ErrStopped. If its node dies or goes
// silent, the calls waiting fail with ErrUnreachable within a bounded time,
// and later calls try again, so a node that comes back is used again. Stop
// on an attached Scheduler withdraws its own waiters (the bucket watches
// it) and leaves the bucket running. A nil pid gives a Scheduler whose
// every call returns ErrStopped.
func Attach(sys *actor.ActorSystem, pid *actor.PID, opts ...Option) *Scheduler {
	o := buildOptions(opts)

	s := &Scheduler{req: actors.NewRequester(sys, pid,
		actors.WithUnreachableAfter(o.unreachableAfter))}
	if pid != nil {
		// The SDK's only errors are for instruments it cannot make, and
		// then the Scheduler works without them.
		_ = s.instrument(o.meterProvider, pid.GetId())
	}

	return s
}

// Acquire waits until amount units are granted, in FIFO order: nobody who
// asked later is served first, whatever their amount.
//
// It fails at once with ErrDeadline if the queue ahead cannot drain before
// ctx's deadline, with ErrQueueFull if the queue is at its bound, and with
// ErrInvalidAmount or ErrTooLarge for an amount that can never be granted.
// If ctx ends first, it returns ctx.Err() unchanged and its place in the
// queue is freed for the waiter behind it.
func (s *Scheduler) Acquire(ctx context.Context, amount float64) (err error) {
	if s.metrics != nil {
		defer s.metrics.finish(ctx, amount, time.Now(), &err)
	}

	maxWait, err := s.checkAcquire(ctx, amount)
	if err != nil {
		return err
	}

	c := s.req.StartAcquire(amount, maxWait, s.key)
	if ctx.Done() == nil { // cannot be cancelled: a plain receive is cheaper
		reply := <-c.Reply()
		s.req.Recycle(c)
		return replyError(reply)
	}

	select {
	case reply := <-c.Reply():
		s.req.Recycle(c)
		return replyError(reply)
	case <-ctx.Done():
		if s.req.Abandon(c.ID(), true) {
			return ctx.Err()
		}
	}

	// The reply won the race with ctx: honour it.
	reply := <-c.Reply()
	s.req.Recycle(c)

	return replyError(reply)
}

// TryAcquire grants amount units only if that can be done now without
// passing anyone: it fails whenever somebody waits. It never waits for
// capacity, though it does take one round trip to the bucket.
func (s *Scheduler) TryAcquire(amount float64) bool {
	var err error
	if s.metrics != nil {
		defer s.metrics.finish(context.Background(), amount, time.Now(), &err)
	}

	if err = s.checkAmount(amount); err != nil {
		return false
	}

	c := s.req.Start(&messages.TryAcquire{Amount: amount, Key: s.key}, nil)
	reply := <-c.Reply()
	s.req.Recycle(c)
	err = replyError(reply)

	return err == nil
}

// Go queues task behind amount units and returns at once: it never blocks
// its caller. Once granted, task runs in its own goroutine with ctx. If ctx
// ends first, task never runs.
//
// The error reports what is known at once: an invalid amount, an amount
// above the bucket's capacity (for a Scheduler made by New), or a stopped
// Scheduler. A request refused later by the bucket, such as for a full
// queue or an unmeetable deadline, leaves task unstarted.
func (s *Scheduler) Go(ctx context.Context, amount float64,
	task func(context.Context)) (err error) {
	g := &goCall{metrics: s.metrics.begin(ctx, amount)}
	defer g.metrics.refused(&err)

	m, err := s.acquireMessage(ctx, amount)
	if err != nil {
		return err
	}
	if c := math.Float64frombits(s.capacity.Load()); c > 0 && amount > c {
		return fmt.Errorf("%w: amount %v exceeds the bucket's capacity %v", ErrTooLarge, amount, c)
	}

	s.req.Start(m, func(reply proto.Message) { g.replied(ctx, reply, task) })
	g.watch(ctx, s.req, m.GetRequestId())

	return nil
}

// goCall ties a call made by Go to its context.
type goCall struct {
	mu   sync.Mutex
	done bool        // the reply came
	stop func() bool // stops the context watch

	metrics *goMetrics // records the outcome; nil without metrics
}

// watch withdraws the call when ctx ends, unless the reply came first.
func (g *goCall) watch(ctx context.Context, req *actors.Requester, id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()

	if !g.done {
		g.stop = context.AfterFunc(ctx, func() {
			if req.Abandon(id, true) {
				g.metrics.ended(ctx.Err())
			}
		})
	}
}

// replied starts task if reply is a grant, and stops watching ctx. It runs
// on the bucket's goroutine, so it only starts task, never runs it.
func (g *goCall) replied(ctx context.Context, reply proto.Message, task func(context.Context)) {
	g.mu.Lock()
	g.done = true
	stop := g.stop
	g.mu.Unlock()

	if stop != nil {
		stop()
	}
	g.metrics.replied(reply)
	if _, ok := reply.(*messages.Granted); ok {
		go task(ctx)
	}
}

// Status returns the bucket's state.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	reply, err := s.call(ctx, &messages.GetStatus{Key: s.key})
	if err != nil {
		return Status{}, err
	}

	return statusOf(reply)
}

// SetLimit changes the bucket's limit. What is in the bucket stays and
// drains at the new rate from now on; the waiting queue is re-timed at
// once. Changing the Mode is not supported. An invalid limit changes
// nothing and returns an error wrapping ErrInvalidLimit.
func (s *Scheduler) SetLimit(ctx context.Context, l Limit) error {
	m, err := l.message()
	if err != nil {
		return err
	}

	reply, err := s.call(ctx, &messages.SetLimit{Limit: m, Key: s.key})
	if err != nil {
		return err
	}
	if _, err := statusOf(reply); err != nil {
		return err
	}
	s.setCapacity(m)

	return nil
}

// Pause grants nothing until the moment until, whatever the level, as a
// server that answers 429 with Retry-After asks: the waiting queue is
// re-timed at once, and waiters whose context deadline falls before the
// end of the pause fail with ErrDeadline. The level keeps draining during
// the pause, so when it ends the bucket allows what the limit allows after
// that much idle time, and no more. A pause only ever lengthens: an until
// before the one in force changes nothing. The moment is wall-clock time,
// so it means the same on every node.
func (s *Scheduler) Pause(ctx context.Context, until time.Time) error {
	if until.IsZero() || until.UnixNano() <= 0 {
		return fmt.Errorf("scheduler: pause until %v is not a time", until)
	}

	reply, err := s.call(ctx, &messages.Pause{UntilUnixNanos: until.UnixNano(), Key: s.key})
	if err != nil {
		return err
	}
	_, err = statusOf(reply)

	return err
}

// PID returns the bucket's PID, for actors that talk to it with the
// messages directly or for Attach on another node.
func (s *Scheduler) PID() *actor.PID {
	return s.req.Bucket()
}

// Stop answers every waiter with ErrStopped; afterwards every call returns
// ErrStopped. For a Scheduler made by New it stops the bucket; an attached
// Scheduler withdraws its own waiters only. Stop is idempotent and returns
// once every waiter has been answered.
func (s *Scheduler) Stop() {
	s.stopOnce.Do(func() {
		if s.owned {
			// The bucket answers its waiters before it answers Stop.
			c := s.req.Start(&messages.Stop{}, nil)
			<-c.Reply()
			s.req.Recycle(c)
		}
		s.req.Close("the scheduler stopped")
		s.metrics.stop()
	})
}

// call sends m and waits for its reply or for ctx.
func (s *Scheduler) call(ctx context.Context, m proto.Message) (proto.Message, error) {
	if s.req.Closed() {
		return nil, s.stoppedError()
	}

	c := s.req.Start(m, nil)
	select {
	case reply := <-c.Reply():
		s.req.Recycle(c)
		return reply, nil
	case <-ctx.Done():
		if s.req.Abandon(c.ID(), false) {
			return nil, ctx.Err()
		}
	}

	reply := <-c.Reply()
	s.req.Recycle(c)

	return reply, nil
}

// acquireMessage checks what can be checked here and builds the Acquire.
func (s *Scheduler) acquireMessage(ctx context.Context, amount float64) (*messages.Acquire, error) {
	maxWait, err := s.checkAcquire(ctx, amount)
	if err != nil {
		return nil, err
	}

	return &messages.Acquire{Amount: amount, Key: s.key, MaxWaitNanos: maxWait}, nil
}

// checkAcquire checks what can be checked here and returns how long the
// request may wait: until ctx's deadline, or 0 for no limit.
func (s *Scheduler) checkAcquire(ctx context.Context, amount float64) (int64, error) {
	if err := s.checkAmount(amount); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	if deadline, ok := ctx.Deadline(); ok {
		return max(int64(time.Until(deadline)), 1), nil
	}

	return 0, nil
}

// checkAmount refuses, without a round trip, what no bucket can grant.
func (s *Scheduler) checkAmount(amount float64) error {
	if s.req.Closed() {
		return s.stoppedError()
	}
	if math.IsNaN(amount) || math.IsInf(amount, 0) || amount <= 0 {
		return fmt.Errorf("%w: amount %v is not a positive number", ErrInvalidAmount, amount)
	}

	return nil
}

func (s *Scheduler) stoppedError() error {
	pid := s.req.Bucket()

	return fmt.Errorf("%w: bucket %s/%s", ErrStopped, pid.GetAddress(), pid.GetId())
}

// setCapacity records the largest amount every band of m can hold.
func (s *Scheduler) setCapacity(m *messages.Limit) {
	c := bandCapacity(m.GetMode(), m.GetRate(), m.GetBurst())
	for _, b := range m.GetBands() {
		c = min(c, bandCapacity(b.GetMode(), b.GetRate(), b.GetBurst()))
	}
	s.capacity.Store(math.Float64bits(c))
}

// bandCapacity returns the largest amount one band can hold.
func bandCapacity(mode messages.Mode, rate, burst float64) float64 {
	if mode == messages.Mode_MODE_SLIDING_WINDOW {
		return rate
	}

	return burst
}

// Status is a bucket's state at one moment.
type Status struct {
	Limit Limit

	// Level is the amount in the bucket (LeakyBucket) or granted within the
	// last period (SlidingWindow), for the limit's own band.
	Level float64

	// Levels holds the level of every band, the limit's own first.
	Levels []float64

	Queued       int     // requests waiting
	QueuedAmount float64 // their total amount

	Granted       uint64  // requests granted since the bucket started
	GrantedAmount float64 // their total amount
	Rejected      uint64  // requests rejected, cancelled ones included

	PausedFor time.Duration // what is left of a Pause; 0 when not paused
}

// statusOf converts a reply to GetStatus or SetLimit.
func statusOf(reply proto.Message) (Status, error) {
	switch m := reply.(type) {
	case *messages.Status:
		return Status{
			Limit:         limitOf(m.GetLimit()),
			Level:         m.GetLevel(),
			Levels:        m.GetLevels(),
			Queued:        int(m.GetQueued()),
			QueuedAmount:  m.GetQueuedAmount(),
			Granted:       m.GetGrantedTotal(),
			GrantedAmount: m.GetGrantedAmountTotal(),
			Rejected:      m.GetRejectedTotal(),
			PausedFor:     time.Duration(m.GetPausedForNanos()),
		}, nil
	case *messages.Rejected:
		return Status{}, rejectedError(m)
	}

	return Status{}, errors.New("scheduler: unexpected reply")
}
