package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/dripsched/drip/internal/schedule"
	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// The weighted mix: every heavyEvery-th request (indexes 9, 19, ...) asks
// for heavyAmount units instead of 1. Ten requests make 20 units, which
// divides every rate the suite runs at, so a FIFO sliding window can fill
// each window exactly. With a mix that does not divide the rate, a sliding
// window has to leave room unused whenever its head does not fit, and its
// steady rate is below the limit by design, not by error.
const (
	heavyEvery  = 10
	heavyAmount = 11
)

// per is the period of every accuracy limit.
const per = time.Second

// startLag is how far apart, in real time, two grants may be measured in
// the wrong order and still count as in order: a drip task starts in its
// own goroutine a moment after its grant, and goroutines start in any
// order. examples/throttle allows the same.
const startLag = 5 * time.Millisecond

// oversubscribe is how much more than a run can grant is submitted, so
// that the queue never runs dry before the end.
const oversubscribe = 1.02

// Limiter names, as the tables and plots show them.
const (
	limDripSliding   = "drip sliding window"
	limDripLeaky     = "drip leaky bucket"
	limDripSlidingAt = "drip sliding, at the bucket"
	limDripLeakyAt   = "drip leaky, at the bucket"
	limXRate         = "x/time/rate WaitN"
	limUber          = "uber Take per unit"
)

// limiter is one way of granting the weighted mix at a rate.
type limiter struct {
	name string
	// ideal returns the exact schedule of amounts at r units per second.
	ideal func(amounts []int, r int) []time.Duration
	// bound is what the limiter's own contract allows in any window.
	bound func(r int) int
	// allowed returns when the limit allowed each request granted at got,
	// given the grants before it; nil where grants are not timed when they
	// are decided.
	allowed func(amounts []int, got []time.Duration, r int) []time.Duration
	// grant submits amounts in order at r per second, the first at start,
	// and records each grant's time with record; it returns once ctx has
	// ended and every goroutine it started has finished.
	grant grantFunc
}

// grantFunc is how a limiter grants amounts at r per second from start.
type grantFunc func(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
	start time.Time, record func(i int, at time.Time)) error

var limiters = []limiter{
	{name: limDripSliding, ideal: slidingIdeal, bound: slidingBound,
		grant: grantDrip(scheduler.SlidingWindow)},
	{name: limDripLeaky, ideal: leakyIdeal, bound: leakyBound,
		grant: grantDrip(scheduler.LeakyBucket)},
	{name: limDripSlidingAt, ideal: slidingIdeal, bound: slidingBound, allowed: slidingAllowed,
		grant: grantDripAtBucket(scheduler.SlidingWindow)},
	{name: limDripLeakyAt, ideal: leakyIdeal, bound: leakyBound, allowed: leakyAllowed,
		grant: grantDripAtBucket(scheduler.LeakyBucket)},
	{name: limXRate, ideal: leakyIdeal, bound: leakyBound, grant: grantXRate},
	{name: limUber, grant: grantUber, bound: func(r int) int { return r + 1 },
		ideal: func(a []int, r int) []time.Duration { return schedule.Leaky(a, r, 1, per) }},
}

// The exact schedules of a window of r per period and of a bucket of r
// per period with a burst of r, and what either allows in a window.
func slidingIdeal(a []int, r int) []time.Duration { return schedule.Sliding(a, r, per) }
func leakyIdeal(a []int, r int) []time.Duration   { return schedule.Leaky(a, r, r, per) }
func slidingBound(r int) int                      { return r }
func leakyBound(r int) int                        { return 2 * r }

func slidingAllowed(a []int, got []time.Duration, r int) []time.Duration {
	return schedule.SlidingAllowed(a, got, r, per)
}

func leakyAllowed(a []int, got []time.Duration, r int) []time.Duration {
	return schedule.LeakyAllowed(a, got, r, r, per)
}

// accuracyRun is one limiter at one rate.
type accuracyRun struct {
	limiter   string
	rate      int
	requests  int // submitted
	granted   int // granted within the period
	steady    float64
	ideal     float64 // steadyRate of the ideal schedule over the same period
	most      int     // most units in any window [t, t+per)
	over      int     // windows [t, t+per) over the rate
	overLag   int     // windows [t, t+per-startLag) over the rate
	bound     int
	p50, p99  time.Duration
	timerP99  time.Duration // p99 of grant time minus when the limit allowed it
	timerP50  time.Duration
	timerMax  time.Duration
	timed     bool // timerP99 and timerMax were measured
	maxLate   time.Duration
	early     int
	fifo      int
	at        []time.Duration // grant times by submission, notGranted if none
	amounts   []int
	lateSorts []time.Duration
}

// rateError returns the steady rate's relative error against the
// configured rate.
func (r accuracyRun) rateError() float64 {
	return r.steady/float64(r.rate) - 1
}

// accuracyResults holds every accuracy run, rate by rate.
type accuracyResults struct {
	duration time.Duration
	rates    []int
	runs     [][]accuracyRun // [rate][limiter]
}

// runAccuracy runs every limiter at every rate for cfg.accuracyTime each,
// one after the other so that they do not compete for the CPU.
func runAccuracy(cfg config, w io.Writer) (*accuracyResults, error) {
	res := &accuracyResults{duration: cfg.accuracyTime, rates: cfg.rates}
	sys := newSystem()
	defer stopTimer(sys)

	for _, r := range cfg.rates {
		var row []accuracyRun
		for _, l := range limiters {
			run, err := runLimiter(sys, l, r, cfg.accuracyTime)
			if err != nil {
				return nil, fmt.Errorf("%s at %d/s: %w", l.name, r, err)
			}
			fmt.Fprintf(w, "  %-28s %6d/s: steady %.2f/s, p99 late %v, FIFO violations %d\n",
				l.name, r, run.steady, run.p99, run.fifo)
			row = append(row, run)
		}
		res.runs = append(res.runs, row)
	}

	return res, nil
}

// weightedMix returns the amounts of n requests in submission order.
func weightedMix(n int) []int {
	a := make([]int, n)
	for i := range a {
		a[i] = 1
		if i%heavyEvery == heavyEvery-1 {
			a[i] = heavyAmount
		}
	}

	return a
}

// mixFor returns enough of the weighted mix to keep a limiter at r per
// second busy for d, after a window's allowance, and a little more.
func mixFor(r int, d time.Duration) []int {
	units := oversubscribe * float64(r) * (1 + d.Seconds()/per.Seconds())
	perRequest := float64(heavyEvery-1+heavyAmount) / heavyEvery

	return weightedMix(int(units/perRequest) + 1)
}

// runLimiter runs l at r per second for d in real time and measures it.
func runLimiter(sys *actor.ActorSystem, l limiter, r int, d time.Duration) (accuracyRun, error) {
	amounts := mixFor(r, d)
	stamps := make([]atomic.Int64, len(amounts)) // grant time since start, or noStamp
	for i := range stamps {
		stamps[i].Store(noStamp)
	}

	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now().Add(leadFor(len(amounts)))
	timer := time.AfterFunc(time.Until(start)+d, cancel)
	defer timer.Stop()
	record := func(i int, at time.Time) { stamps[i].Store(int64(at.Sub(start))) }
	if err := l.grant(ctx, sys, r, amounts, start, record); err != nil {
		cancel()
		return accuracyRun{}, err
	}
	cancel()

	at := make([]time.Duration, len(amounts))
	for i := range stamps {
		at[i] = notGranted
		if s := stamps[i].Load(); s != noStamp && time.Duration(s) < d {
			at[i] = time.Duration(s)
		}
	}

	return measureRun(l, r, d, amounts, at), nil
}

// noStamp marks a request with no grant recorded.
const noStamp = math.MinInt64

// leadFor is how long before a run starts its n requests are submitted: a
// drip bucket is paused until the start, so that every request is queued
// when it begins, as the exact schedule has them, however long submitting
// them takes. A drip run fails if submitting takes longer.
func leadFor(n int) time.Duration {
	return 100*time.Millisecond + time.Duration(n)*10*time.Microsecond
}

// pauseUntil makes a drip bucket in mode at r per second that grants
// nothing before start.
func pauseUntil(ctx context.Context, sys *actor.ActorSystem, mode scheduler.Mode, r int,
	start time.Time) (*scheduler.Scheduler, error) {
	s, err := scheduler.New(sys, scheduler.Limit{Rate: float64(r), Per: per, Mode: mode})
	if err != nil {
		return nil, err
	}
	if err := s.Pause(ctx, start); err != nil {
		s.Stop()
		return nil, err
	}

	return s, nil
}

// allQueued checks that s has n waiters before start.
func allQueued(ctx context.Context, s *scheduler.Scheduler, n int, start time.Time) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if late := time.Since(start); late >= 0 {
		return fmt.Errorf("submitting %d requests ended %v after the start: lengthen leadFor",
			n, late)
	}
	if st.Queued != n {
		return fmt.Errorf("%d of %d requests queued before the start", st.Queued, n)
	}

	return nil
}

// measureRun compares the grant times at with l's ideal schedule and the
// rate r over a run of length d.
func measureRun(l limiter, r int, d time.Duration, amounts []int,
	at []time.Duration) accuracyRun {
	ideal := l.ideal(amounts, r)
	gs := granted(at, amounts)
	run := accuracyRun{limiter: l.name, rate: r, requests: len(amounts), granted: len(gs),
		bound: l.bound(r), at: at, amounts: amounts}

	// The ideal schedule, cut at the same length as the run.
	idealAt := make([]time.Duration, len(ideal))
	for i, t := range ideal {
		idealAt[i] = notGranted
		if t < d {
			idealAt[i] = t
		}
	}
	run.steady = steadyRate(gs, per, d)
	run.ideal = steadyRate(granted(idealAt, amounts), per, d)

	run.most, run.over = windowStats(gs, per, r)
	_, run.overLag = windowStats(gs, per-startLag, r)

	late := lateness(at, ideal)
	run.lateSorts = late
	run.p50, run.p99 = percentile(late, 0.50), percentile(late, 0.99)
	if l.allowed != nil {
		got := grantedPrefix(at)
		held := heldLateness(got, l.allowed(amounts, got, r))
		run.timed, run.timerP99 = true, percentile(held, 0.99)
		run.timerP50 = percentile(held, 0.50)
		if len(held) > 0 {
			run.timerMax = held[len(held)-1]
		}
	}
	if len(late) > 0 {
		run.maxLate = late[len(late)-1]
	}
	for _, x := range late {
		if x < 0 {
			run.early++
		}
	}
	run.fifo = fifoViolations(at, startLag)

	return run
}

// grantDrip returns the grant function of a drip bucket in mode: every
// request is submitted in order from one goroutine with Scheduler.Go, and
// its task records the grant.
func grantDrip(mode scheduler.Mode) grantFunc {
	return func(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
		start time.Time, record func(int, time.Time)) error {
		s, err := pauseUntil(ctx, sys, mode, r, start)
		if err != nil {
			return err
		}

		var started atomic.Int64
		for i, a := range amounts {
			task := func(context.Context) {
				record(i, time.Now())
				started.Add(1)
			}
			if err := s.Go(ctx, float64(a), task); err != nil {
				s.Stop()
				return fmt.Errorf("request %d of %d: %w", i, a, err)
			}
		}
		if err := allQueued(ctx, s, len(amounts), start); err != nil {
			s.Stop()
			return err
		}
		<-ctx.Done()
		s.Stop()

		// Stop returns once every waiter has its answer, so every task that
		// will run has been started; wait until they have all recorded.
		for last := int64(-1); last != started.Load(); {
			last = started.Load()
			time.Sleep(20 * time.Millisecond)
		}

		return nil
	}
}

// grantDripAtBucket returns the grant function of a drip bucket in mode
// that times each grant by the bucket's own clock, as Granted carries it:
// every request is sent at once to Scheduler.PID from a mailbox-less
// process, which records the grants it is sent. No goroutine starts and no
// reply is queued between the decision and its time, so what is late is
// the timer's doing.
func grantDripAtBucket(mode scheduler.Mode) grantFunc {
	return func(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
		start time.Time, record func(int, time.Time)) error {
		s, err := pauseUntil(ctx, sys, mode, r, start)
		if err != nil {
			return err
		}
		st := newStamper(sys, record)
		defer sys.ProcessRegistry.Remove(st.pid)

		for i, a := range amounts {
			m := &messages.Acquire{RequestId: uint64(i) + 1, Amount: float64(a)}
			sys.Root.RequestWithCustomSender(s.PID(), m, st.pid)
		}
		if err := allQueued(ctx, s, len(amounts), start); err != nil {
			s.Stop()
			return err
		}
		<-ctx.Done()

		// Stop answers every waiter before it returns, and the answers are
		// calls into the stamper, so nothing arrives after it.
		st.stopping.Store(true)
		s.Stop()
		if err := st.err.Load(); err != nil {
			return *err
		}

		return nil
	}
}

// stamper is a process without a mailbox that records the bucket's time of
// each grant it is sent, by request id (one more than the request's index).
type stamper struct {
	pid      *actor.PID
	record   func(i int, at time.Time)
	stopping atomic.Bool
	err      atomic.Pointer[error] // the first rejection before stopping
}

// newStamper registers a stamper in sys; remove it from sys.ProcessRegistry
// when done.
func newStamper(sys *actor.ActorSystem, record func(int, time.Time)) *stamper {
	st := &stamper{record: record}
	st.pid = spawnProcess(sys, "bench-stamper", st.receive)

	return st
}

// receive records msg if it is a grant.
func (st *stamper) receive(msg any) {
	switch m := msg.(type) {
	case *messages.Granted:
		st.record(int(m.GetRequestId())-1, time.Unix(0, m.GetGrantedAtUnixNanos()))
	case *messages.Rejected:
		if !st.stopping.Load() {
			err := fmt.Errorf("request %d: %v %s", m.GetRequestId(), m.GetReason(), m.GetDetail())
			st.err.CompareAndSwap(nil, &err)
		}
	}
}

// grantXRate submits, at start, each request from its own goroutine, started in
// submission order, with WaitN on a limiter with burst r.
func grantXRate(ctx context.Context, _ *actor.ActorSystem, r int, amounts []int,
	start time.Time, record func(int, time.Time)) error {
	time.Sleep(time.Until(start))
	lim := rate.NewLimiter(rate.Limit(r), r)

	var wg sync.WaitGroup
	for i, a := range amounts {
		wg.Go(func() {
			if lim.WaitN(ctx, a) == nil {
				record(i, time.Now())
			}
		})
	}
	wg.Wait()

	return nil
}

// grantUber submits, at start, each request from its own goroutine, started in
// submission order, taking its units one Take at a time: uber's limiter
// has no weights. Take cannot be cancelled, so a goroutine stops taking
// once ctx has ended, after the Take it is in.
func grantUber(ctx context.Context, _ *actor.ActorSystem, r int, amounts []int,
	start time.Time, record func(int, time.Time)) error {
	time.Sleep(time.Until(start))
	lim := ratelimit.New(r)

	var wg sync.WaitGroup
	for i, a := range amounts {
		wg.Go(func() {
			for range a {
				if ctx.Err() != nil {
					return
				}
				lim.Take()
			}
			record(i, time.Now())
		})
	}
	wg.Wait()

	return nil
}
