package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// neverWaits is a limit nobody reaches: a billion per second, with a
// burst as large, so that throughput measures the cost of asking.
var neverWaits = scheduler.Limit{Rate: 1e9, Burst: 1e9}

// inFlight is how many requests the actor-to-actor figures keep
// outstanding.
const inFlight = 1000

// Peer names, as the tables and plots show them.
const (
	peerDrip   = "drip Acquire"
	peerXRate  = "x/time/rate WaitN"
	peerUber   = "uber Take"
	peerFuture = "protoactor RequestFuture"
	peerRaw    = "protoactor raw"
	actorDrip  = "drip bucket"
	actorRaw   = "protoactor raw actor"
)

// goroutinePeer is a limiter asked for one unit at a time by goroutines.
// setup returns a maker of per-goroutine calls, each safe to use from its
// own goroutine, and what to do afterwards.
type goroutinePeer struct {
	name  string
	setup func(sys *actor.ActorSystem) (newOp func() func() error, done func(), err error)
}

var goroutinePeers = []goroutinePeer{
	{peerDrip, setupDrip},
	{peerXRate, setupXRate},
	{peerUber, setupUber},
	{peerFuture, setupFuture},
	{peerRaw, setupRaw},
}

// figure is one throughput measurement.
type figure struct {
	ops     int64
	elapsed time.Duration
	allocs  float64 // heap allocations per op
}

// nsPerOp returns the wall time per operation.
func (f figure) nsPerOp() float64 {
	if f.ops == 0 {
		return 0
	}

	return float64(f.elapsed.Nanoseconds()) / float64(f.ops)
}

// perSecond returns operations per second.
func (f figure) perSecond() float64 {
	if f.elapsed <= 0 {
		return 0
	}

	return float64(f.ops) / f.elapsed.Seconds()
}

// throughputResults holds every throughput figure.
type throughputResults struct {
	goroutines []int
	byPeer     map[string][]figure // indexed like goroutines
	actors     map[string]figure   // actor-to-actor, inFlight outstanding
}

// runThroughput measures every goroutine peer at every goroutine count,
// then the two actor-to-actor targets, one figure after the other.
func runThroughput(cfg config) (*throughputResults, error) {
	res := &throughputResults{goroutines: cfg.goroutines, byPeer: map[string][]figure{},
		actors: map[string]figure{}}
	sys := newSystem()
	defer stopTimer(sys)

	for _, g := range cfg.goroutines {
		for _, p := range goroutinePeers {
			f, err := measurePeer(sys, p, g, cfg.benchTime)
			if err != nil {
				return nil, fmt.Errorf("%s, %d goroutines: %w", p.name, g, err)
			}
			res.byPeer[p.name] = append(res.byPeer[p.name], f)
		}
	}

	targets := []struct {
		name  string
		spawn func() (*actor.PID, func(), error)
	}{
		{actorDrip, func() (*actor.PID, func(), error) {
			s, err := scheduler.New(sys, neverWaits)
			if err != nil {
				return nil, nil, err
			}
			return s.PID(), s.Stop, nil
		}},
		{actorRaw, func() (*actor.PID, func(), error) {
			pid := sys.Root.Spawn(actor.PropsFromFunc(grantAll))
			return pid, func() { stopActor(sys, pid) }, nil
		}},
	}
	for _, tg := range targets {
		pid, stop, err := tg.spawn()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		f, err := measureActor(sys, pid, cfg.benchTime)
		stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		res.actors[tg.name] = f
	}

	return res, nil
}

// measurePeer sets p up and measures it from g goroutines for d, after a
// short warm-up.
func measurePeer(sys *actor.ActorSystem, p goroutinePeer, g int, d time.Duration) (figure, error) {
	newOp, done, err := p.setup(sys)
	if err != nil {
		return figure{}, err
	}
	defer done()

	if _, err := timedLoop(newOp, g, d/5); err != nil {
		return figure{}, err
	}

	return timedLoop(newOp, g, d)
}

// timedLoop runs g goroutines, each calling its own op from newOp until d
// has passed, and counts the calls. The figure's time runs until the last
// call in progress at the deadline has returned.
func timedLoop(newOp func() func() error, g int, d time.Duration) (figure, error) {
	var stop atomic.Bool
	var ops atomic.Int64
	start := make(chan struct{})
	errs := make(chan error, g) // each goroutine sends at most one

	var wg sync.WaitGroup
	for range g {
		op := newOp()
		wg.Go(func() {
			<-start
			n := int64(0)
			defer func() { ops.Add(n) }()
			for !stop.Load() {
				if err := op(); err != nil {
					errs <- err
					return
				}
				n++
			}
		})
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	close(start)
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(t0)
	runtime.ReadMemStats(&after)

	close(errs)
	if err := <-errs; err != nil {
		return figure{}, err
	}
	f := figure{ops: ops.Load(), elapsed: elapsed}
	if f.ops > 0 {
		f.allocs = float64(after.Mallocs-before.Mallocs) / float64(f.ops)
	}

	return f, nil
}

// setupDrip returns a Scheduler's Acquire.
func setupDrip(sys *actor.ActorSystem) (func() func() error, func(), error) {
	s, err := scheduler.New(sys, neverWaits)
	if err != nil {
		return nil, nil, err
	}
	ctx := context.Background()

	return func() func() error {
		return func() error { return s.Acquire(ctx, 1) }
	}, s.Stop, nil
}

// setupXRate returns x/time/rate's WaitN on a limiter with the same limit.
func setupXRate(*actor.ActorSystem) (func() func() error, func(), error) {
	lim := rate.NewLimiter(rate.Limit(neverWaits.Rate), int(neverWaits.Burst))
	ctx := context.Background()

	return func() func() error {
		return func() error { return lim.WaitN(ctx, 1) }
	}, func() {}, nil
}

// setupUber returns uber's Take at a billion per second.
func setupUber(*actor.ActorSystem) (func() func() error, func(), error) {
	lim := ratelimit.New(int(neverWaits.Rate))

	return func() func() error {
		return func() error {
			lim.Take()
			return nil
		}
	}, func() {}, nil
}

// setupFuture returns protoactor's RequestFuture round trip to an actor
// that grants every Acquire at once.
func setupFuture(sys *actor.ActorSystem) (func() func() error, func(), error) {
	echo := sys.Root.Spawn(actor.PropsFromFunc(grantAll))

	return func() func() error {
		return func() error {
			reply, err := sys.Root.RequestFuture(echo, &messages.Acquire{Amount: 1},
				5*time.Second).Result()
			if _, ok := reply.(*messages.Granted); !ok && err == nil {
				err = fmt.Errorf("reply %T, want a Granted", reply)
			}
			return err
		}
	}, func() { stopActor(sys, echo) }, nil
}

// setupRaw returns protoactor's cheapest round trip from a goroutine: a
// request to an actor that grants at once, with the reply taken by a
// mailbox-less process of the goroutine's own that puts it on a channel.
// That is what drip's request actor does, so it is drip Acquire's ceiling.
func setupRaw(sys *actor.ActorSystem) (func() func() error, func(), error) {
	echo := sys.Root.Spawn(actor.PropsFromFunc(grantAll))
	var mu sync.Mutex
	var inboxes []*inbox

	newOp := func() func() error {
		in := newInbox(sys)
		mu.Lock()
		inboxes = append(inboxes, in)
		mu.Unlock()
		id := uint64(0)
		return func() error {
			id++
			sys.Root.RequestWithCustomSender(echo, &messages.Acquire{RequestId: id, Amount: 1},
				in.pid)
			if g, ok := (<-in.got).(*messages.Granted); !ok || g.GetRequestId() != id {
				return fmt.Errorf("reply to request %d is not its Granted", id)
			}
			return nil
		}
	}
	done := func() {
		for _, in := range inboxes {
			sys.ProcessRegistry.Remove(in.pid)
		}
		stopActor(sys, echo)
	}

	return newOp, done, nil
}

// grantAll is an actor that grants every Acquire at once.
func grantAll(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Acquire); ok {
		ctx.Respond(&messages.Granted{RequestId: m.GetRequestId()})
	}
}

// inbox is a process without a mailbox that puts every user message it
// receives on a channel.
type inbox struct {
	pid *actor.PID
	got chan any
}

// newInbox registers an inbox in sys; remove it from sys.ProcessRegistry
// when done.
func newInbox(sys *actor.ActorSystem) *inbox {
	in := &inbox{got: make(chan any, 1)}
	in.pid = spawnProcess(sys, "bench-inbox", func(msg any) { in.got <- msg })

	return in
}

// loadActor keeps inFlight Acquires outstanding at target, sending a new
// one for each Granted until stop is set; once every request sent has been
// answered it closes done. A Rejected is kept as the failure.
type loadActor struct {
	target   *actor.PID
	stop     atomic.Bool
	sent     int64
	answered int64
	failure  *messages.Rejected
	done     chan struct{}
}

// Receive is the actor's behaviour.
func (l *loadActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for range inFlight {
			l.send(ctx)
		}
		return
	case *messages.Granted:
	case *messages.Rejected:
		if l.failure == nil {
			l.failure = m
		}
		l.stop.Store(true)
	default:
		return
	}

	l.answered++
	if !l.stop.Load() {
		l.send(ctx)
	}
	if l.stop.Load() && l.answered == l.sent {
		close(l.done)
	}
}

// send sends the next Acquire, with the next request id.
func (l *loadActor) send(ctx actor.Context) {
	l.sent++
	ctx.Request(l.target, &messages.Acquire{RequestId: uint64(l.sent), Amount: 1})
}

// measureActor has a loadActor keep inFlight Acquires outstanding at
// target for d and returns the grants it got, after a short warm-up.
func measureActor(sys *actor.ActorSystem, target *actor.PID, d time.Duration) (figure, error) {
	if _, err := loadOnce(sys, target, d/5); err != nil {
		return figure{}, err
	}

	return loadOnce(sys, target, d)
}

// loadOnce runs one loadActor against target for d.
func loadOnce(sys *actor.ActorSystem, target *actor.PID, d time.Duration) (figure, error) {
	l := &loadActor{target: target, done: make(chan struct{})}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	pid := sys.Root.Spawn(actor.PropsFromFunc(l.Receive))
	time.Sleep(d)
	l.stop.Store(true)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		return figure{}, fmt.Errorf("%d of %d requests unanswered 10 s after the end",
			l.sent-l.answered, l.sent)
	}
	elapsed := time.Since(t0)
	runtime.ReadMemStats(&after)
	stopActor(sys, pid)

	if l.failure != nil {
		return figure{}, fmt.Errorf("request %d rejected: %s", l.failure.GetRequestId(),
			l.failure.GetDetail())
	}
	f := figure{ops: l.answered, elapsed: elapsed}
	f.allocs = float64(after.Mallocs-before.Mallocs) / float64(max(f.ops, 1))

	return f, nil
}

// stopActor stops pid and waits until it has stopped.
func stopActor(sys *actor.ActorSystem, pid *actor.PID) {
	_ = sys.Root.StopFuture(pid).Wait()
}

// stopTimer stops sys's timer actor, if a bucket started one.
func stopTimer(sys *actor.ActorSystem) {
	stopActor(sys, actors.Timer(sys))
}
