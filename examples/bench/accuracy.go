package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/dripsched/drip/internal/schedule"
	"github.com/dripsched/drip/scheduler"
)

// The weighted mix: every heavyEvery-th request (indexes 9, 19, ...) asks
// for heavyAmount units instead of 1.
const (
	heavyEvery  = 10
	heavyAmount = 10
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
	limDripSliding = "drip sliding window"
	limDripLeaky   = "drip leaky bucket"
	limDripInTurn  = "drip leaky, Acquire in turn"
	limXRate       = "x/time/rate WaitN"
	limUber        = "uber Take per unit"
)

// limiter is one way of granting the weighted mix at a rate.
type limiter struct {
	name string
	// ideal returns the exact schedule of amounts at r units per second.
	ideal func(amounts []int, r int) []time.Duration
	// bound is what the limiter's own contract allows in any window.
	bound func(r int) int
	// grant submits amounts in order at r per second and records each
	// grant's time since t0 with record; it returns once ctx has ended and
	// every goroutine it started has finished.
	grant func(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
		record func(i int)) error
}

var limiters = []limiter{
	{limDripSliding, func(a []int, r int) []time.Duration { return schedule.Sliding(a, r, per) },
		func(r int) int { return r }, grantDrip(scheduler.SlidingWindow)},
	{limDripLeaky, func(a []int, r int) []time.Duration { return schedule.Leaky(a, r, r, per) },
		func(r int) int { return 2 * r }, grantDrip(scheduler.LeakyBucket)},
	{limDripInTurn, func(a []int, r int) []time.Duration { return schedule.Leaky(a, r, r, per) },
		func(r int) int { return 2 * r }, grantDripInTurn},
	{limXRate, func(a []int, r int) []time.Duration { return schedule.Leaky(a, r, r, per) },
		func(r int) int { return 2 * r }, grantXRate},
	{limUber, func(a []int, r int) []time.Duration { return schedule.Leaky(a, r, 1, per) },
		func(r int) int { return r + 1 }, grantUber},
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
	timerP99  time.Duration // p99 of the grants after the first window
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
			fmt.Fprintf(w, "  %-22s %6d/s: steady %.2f/s, p99 late %v, FIFO violations %d\n",
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
	stamps := make([]atomic.Int64, len(amounts)) // grant time + 1; 0 for none

	ctx, cancel := context.WithCancel(context.Background())
	t0 := time.Now()
	timer := time.AfterFunc(d, cancel)
	defer timer.Stop()
	record := func(i int) { stamps[i].Store(int64(time.Since(t0)) + 1) }
	if err := l.grant(ctx, sys, r, amounts, record); err != nil {
		cancel()
		return accuracyRun{}, err
	}
	cancel()

	at := make([]time.Duration, len(amounts))
	for i := range stamps {
		at[i] = notGranted
		if s := time.Duration(stamps[i].Load()); s > 0 && s-1 < d {
			at[i] = s - 1
		}
	}

	return measureRun(l, r, d, amounts, at), nil
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
	run.timerP99 = percentile(timerLateness(at, ideal, per), 0.99)
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
func grantDrip(mode scheduler.Mode) func(context.Context, *actor.ActorSystem, int, []int,
	func(int)) error {
	return func(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
		record func(int)) error {
		s, err := scheduler.New(sys, scheduler.Limit{Rate: float64(r), Per: per, Mode: mode})
		if err != nil {
			return err
		}

		var started atomic.Int64
		for i, a := range amounts {
			task := func(context.Context) {
				record(i)
				started.Add(1)
			}
			if err := s.Go(ctx, float64(a), task); err != nil {
				s.Stop()
				return fmt.Errorf("request %d of %d: %w", i, a, err)
			}
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

// grantDripInTurn asks a leaky bucket for one request after another with
// Acquire from one goroutine, and records each grant as Acquire returns:
// no task start, so what is late is the timer's doing.
func grantDripInTurn(ctx context.Context, sys *actor.ActorSystem, r int, amounts []int,
	record func(int)) error {
	s, err := scheduler.New(sys, scheduler.Limit{Rate: float64(r), Per: per})
	if err != nil {
		return err
	}
	defer s.Stop()

	for i, a := range amounts {
		if err := s.Acquire(ctx, float64(a)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("request %d of %d: %w", i, a, err)
		}
		record(i)
	}

	return nil
}

// grantXRate submits each request from its own goroutine, started in
// submission order, with WaitN on a limiter with burst r.
func grantXRate(ctx context.Context, _ *actor.ActorSystem, r int, amounts []int,
	record func(int)) error {
	lim := rate.NewLimiter(rate.Limit(r), r)

	var wg sync.WaitGroup
	for i, a := range amounts {
		wg.Go(func() {
			if lim.WaitN(ctx, a) == nil {
				record(i)
			}
		})
	}
	wg.Wait()

	return nil
}

// grantUber submits each request from its own goroutine, started in
// submission order, taking its units one Take at a time: uber's limiter
// has no weights. Take cannot be cancelled, so a goroutine stops taking
// once ctx has ended, after the Take it is in.
func grantUber(ctx context.Context, _ *actor.ActorSystem, r int, amounts []int,
	record func(int)) error {
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
			record(i)
		})
	}
	wg.Wait()

	return nil
}
