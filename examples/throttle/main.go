// Command throttle runs the problem that started drip: requests to an API
// that allows 100 per second, where what counts is when each request
// starts, not how long it takes.
//
// For each mode it submits the requests in order from one goroutine with
// Scheduler.Go, which never blocks, and each task records when it started.
// It then checks the start times against the contract: the most units
// started in any rolling window, strict FIFO, and how late each start was
// against the exact ideal schedule. It exits with status 1 if the limit was
// exceeded, a request started early, or a request was overtaken.
//
// Start times are real and a task starts a moment after its grant, so the
// checks allow startLag for that; main_test.go runs the same scenario on a
// fake clock, where starts are exact, with no allowance at all.
//
// Usage:
//
//	go run ./examples/throttle [-n 500] [-rate 100] [-mode all] [-weighted=true]
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/schedule"
	"github.com/dripsched/drip/scheduler"
)

// heavyEvery and heavyAmount make the weighted mix: every heavyEvery-th
// request (indexes 9, 19, ...) asks for heavyAmount units instead of 1.
const (
	heavyEvery  = 10
	heavyAmount = 10
)

// per is the limit's period, and the length of the rolling window checked.
const per = time.Second

// startLag is how long, in real time, a task may take to start after its
// grant: the bucket starts it in a new goroutine, which the Go scheduler
// runs a little later, some tasks later than others.
const startLag = 5 * time.Millisecond

// config is what the flags select.
type config struct {
	n        int
	rate     int      // units per second
	modes    []string // names of the scenarios to run, in order
	weighted bool

	// slack is the start lag the checks allow for: starts closer than it
	// count as one moment, and a window over the limit only within slack
	// of its end is forgiven. Zero on a fake clock, where starts are exact.
	slack time.Duration
}

// scenario is one way of limiting the requests.
type scenario struct {
	name  string
	mode  scheduler.Mode
	rate  int // units per period
	burst int // leaky bucket only
}

// request is one request: its place in the submission order and its weight.
type request struct {
	index  int
	amount int
}

// start is what a task reports: which request it is and when it started,
// measured from the first submission.
type start struct {
	index int
	at    time.Duration
}

// result is what one scenario measured.
type result struct {
	scenario
	requests  int
	units     int
	submit    time.Duration // time the submitting goroutine spent in Go
	elapsed   time.Duration // start of the last request
	ideal     time.Duration // the same under the ideal schedule
	rate      float64       // units per second beyond the allowance
	maxWindow int           // most units started in any window [t, t+per)
	maxSlack  int           // the same in windows [t, t+per-slack)
	bound     int           // what the contract allows in such a window
	lateP50   time.Duration
	lateP99   time.Duration
	early     int // requests that started before the ideal schedule allows
	overtaken int // requests that a later-submitted one started before
}

// report is the outcome of a run.
type report struct {
	cfg     config
	results []result
}

// main runs the scenario, prints the table, and exits with status 1 if the
// contract broke.
func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "throttle:", err)
		os.Exit(2)
	}

	printHeader(os.Stdout, cfg)
	rep, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "throttle:", err)
		os.Exit(1)
	}
	printReport(os.Stdout, rep)

	if err := rep.check(); err != nil {
		fmt.Fprintln(os.Stderr, "throttle: contract broken:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("throttle", flag.ContinueOnError)
	n := fs.Int("n", 500, "number of requests")
	rate := fs.Int("rate", 100, "units allowed per second")
	mode := fs.String("mode", "all", "all, leaky, leaky1 or sliding")
	weighted := fs.Bool("weighted", true,
		fmt.Sprintf("every %dth request weighs %d", heavyEvery, heavyAmount))
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := config{n: *n, rate: *rate, modes: []string{*mode}, weighted: *weighted,
		slack: startLag}
	if *mode == "all" {
		cfg.modes = []string{"leaky", "leaky1", "sliding"}
	}

	return cfg, cfg.validate()
}

// validate rejects settings the scenario cannot run with.
func (cfg config) validate() error {
	if cfg.n <= 0 {
		return fmt.Errorf("-n %d: need at least one request", cfg.n)
	}
	if cfg.rate < largest(cfg.weighted) {
		return fmt.Errorf("-rate %d: must be at least %d, the largest request",
			cfg.rate, largest(cfg.weighted))
	}
	for _, m := range cfg.modes {
		if _, ok := newScenario(m, cfg); !ok {
			return fmt.Errorf("-mode %q: want all, leaky, leaky1 or sliding", m)
		}
	}

	return nil
}

// largest returns the largest amount a request asks for.
func largest(weighted bool) int {
	if weighted {
		return heavyAmount
	}

	return 1
}

// newScenario returns the scenario called name. The "leaky1" bucket has
// burst 1 only without weights: a bucket never grants more than its burst,
// so with weights its burst is the largest request.
func newScenario(name string, cfg config) (scenario, bool) {
	switch name {
	case "leaky":
		return scenario{name: name, mode: scheduler.LeakyBucket, rate: cfg.rate,
			burst: cfg.rate}, true
	case "leaky1":
		return scenario{name: name, mode: scheduler.LeakyBucket, rate: cfg.rate,
			burst: largest(cfg.weighted)}, true
	case "sliding":
		return scenario{name: name, mode: scheduler.SlidingWindow, rate: cfg.rate}, true
	}

	return scenario{}, false
}

// limit returns the scheduler limit of sc.
func (sc scenario) limit() scheduler.Limit {
	return scheduler.Limit{Rate: float64(sc.rate), Per: per, Burst: float64(sc.burst),
		Mode: sc.mode}
}

// describe names sc's limit for the table.
func (sc scenario) describe() string {
	if sc.mode == scheduler.SlidingWindow {
		return fmt.Sprintf("window %d/%v", sc.rate, per)
	}

	return fmt.Sprintf("burst %d", sc.burst)
}

// allowance returns how many units sc may start at once: the burst of a
// leaky bucket, or a whole sliding window.
func (sc scenario) allowance() int {
	if sc.mode == scheduler.SlidingWindow {
		return sc.rate
	}

	return sc.burst
}

// bound returns the most units the contract lets sc start in any window of
// length per: Burst + Rate for a leaky bucket, Rate for a sliding window.
func (sc scenario) bound() int {
	if sc.mode == scheduler.SlidingWindow {
		return sc.rate
	}

	return sc.allowance() + sc.rate
}

// requests returns n requests in submission order; when weighted, every
// heavyEvery-th asks for heavyAmount units.
func requests(n int, weighted bool) []request {
	reqs := make([]request, n)
	for i := range reqs {
		reqs[i] = request{index: i, amount: 1}
		if weighted && i%heavyEvery == heavyEvery-1 {
			reqs[i].amount = heavyAmount
		}
	}

	return reqs
}

// amounts returns the amount of each request.
func amounts(reqs []request) []int {
	a := make([]int, len(reqs))
	for i, r := range reqs {
		a[i] = r.amount
	}

	return a
}

// run runs every scenario that cfg selects, side by side, each with its
// own scheduler in one quiet actor system.
func run(cfg config) (report, error) {
	sys := newSystem()
	defer sys.Shutdown()

	reqs := requests(cfg.n, cfg.weighted)
	rep := report{cfg: cfg, results: make([]result, len(cfg.modes))}
	errs := make([]error, len(cfg.modes))

	var wg sync.WaitGroup
	for i, name := range cfg.modes {
		sc, _ := newScenario(name, cfg)
		wg.Go(func() { rep.results[i], errs[i] = runScenario(sys, sc, reqs, cfg.slack) })
	}
	wg.Wait()

	return rep, errors.Join(errs...)
}

// newSystem returns an actor system that logs nothing.
func newSystem() *actor.ActorSystem {
	quiet := func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }

	return actor.NewActorSystem(actor.WithLoggerFactory(quiet))
}

// runScenario submits reqs in order to a new scheduler for sc, waits until
// every task has started, and measures the start times.
func runScenario(sys *actor.ActorSystem, sc scenario, reqs []request,
	slack time.Duration) (result, error) {
	s, err := scheduler.New(sys, sc.limit())
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", sc.name, err)
	}
	defer s.Stop()

	// Submit everything from this goroutine; Go returns at once.
	starts := make(chan start, len(reqs))
	t0 := time.Now()
	for _, r := range reqs {
		task := func(context.Context) { starts <- start{r.index, time.Since(t0)} }
		if err := s.Go(context.Background(), float64(r.amount), task); err != nil {
			return result{}, fmt.Errorf("%s: request %d: %w", sc.name, r.index, err)
		}
	}
	submit := time.Since(t0)

	// Wait for the tasks, with room for a slow machine.
	ideal := idealSchedule(sc, amounts(reqs))
	at, err := collect(starts, len(reqs), 2*slices.Max(ideal)+5*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", sc.name, err)
	}

	res := measure(sc, reqs, at, ideal, slack)
	res.submit = submit

	return res, nil
}

// collect receives n starts and returns each request's start time, by
// index, or fails if they do not all come within timeout.
func collect(starts <-chan start, n int, timeout time.Duration) ([]time.Duration, error) {
	expire := time.NewTimer(timeout)
	defer expire.Stop()

	at := make([]time.Duration, n)
	for got := 0; got < n; got++ {
		select {
		case s := <-starts:
			at[s.index] = s.at
		case <-expire.C:
			return nil, fmt.Errorf("only %d of %d requests started within %v", got, n, timeout)
		}
	}

	return at, nil
}

// measure compares the start times at with the ideal schedule and the
// contract, allowing slack for tasks that start late (see config).
func measure(sc scenario, reqs []request, at, ideal []time.Duration,
	slack time.Duration) result {
	a := amounts(reqs)
	res := result{scenario: sc, requests: len(reqs), bound: sc.bound()}

	// Volume and rate: the units beyond what may start at once, per second
	// until the last start.
	for _, u := range a {
		res.units += u
	}
	res.elapsed, res.ideal = slices.Max(at), slices.Max(ideal)
	if beyond := res.units - sc.allowance(); beyond > 0 && res.elapsed > 0 {
		res.rate = float64(beyond) / res.elapsed.Seconds()
	}

	// The contract's checks.
	res.maxWindow = maxInWindow(at, a, per)
	res.maxSlack = maxInWindow(at, a, per-slack)
	late := lateness(at, ideal)
	res.early = countBelow(late, 0)
	res.lateP50, res.lateP99 = percentile(late, 0.50), percentile(late, 0.99)
	res.overtaken = overtaken(at, slack)

	return res
}

// idealSchedule returns when each request of the given amounts would start
// under sc with exact arithmetic, all submitted at time 0 in order.
func idealSchedule(sc scenario, amounts []int) []time.Duration {
	if sc.mode == scheduler.SlidingWindow {
		return schedule.Sliding(amounts, sc.rate, per)
	}

	return schedule.Leaky(amounts, sc.rate, sc.burst, per)
}

// maxInWindow returns the most units started in any window [t, t+width)
// where t is a start time: the windows that can hold the most start at a
// start.
func maxInWindow(at []time.Duration, amounts []int, width time.Duration) int {
	order := make([]int, len(at))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(at[i], at[j]) })

	best, sum, end := 0, 0, 0
	for _, first := range order {
		for ; end < len(order) && at[order[end]] < at[first]+width; end++ {
			sum += amounts[order[end]]
		}
		best = max(best, sum)
		sum -= amounts[first]
	}

	return best
}

// lateness returns each start's delay past its ideal time, sorted.
func lateness(at, ideal []time.Duration) []time.Duration {
	late := make([]time.Duration, len(at))
	for i := range at {
		late[i] = at[i] - ideal[i]
	}
	slices.Sort(late)

	return late
}

// countBelow returns how many of the sorted values are below x.
func countBelow(sorted []time.Duration, x time.Duration) int {
	n, _ := slices.BinarySearch(sorted, x)
	return n
}

// percentile returns the nearest-rank q-th percentile (0 < q <= 1) of the
// sorted values: the smallest value with at least q of them at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))

	return sorted[max(rank, 1)-1]
}

// overtaken returns how many requests were overtaken: some request
// submitted after them started more than tolerance before them. The start
// times at are in submission order.
func overtaken(at []time.Duration, tolerance time.Duration) int {
	n := 0
	earliestLater := time.Duration(math.MaxInt64)
	for i := len(at) - 1; i >= 0; i-- {
		if earliestLater < at[i]-tolerance {
			n++
		}
		earliestLater = min(earliestLater, at[i])
	}

	return n
}

// check returns an error naming every broken promise in rep, or nil.
func (rep report) check() error {
	var errs []error
	for _, r := range rep.results {
		if r.maxSlack > r.bound {
			errs = append(errs, fmt.Errorf("%s: %d units started within %v, the limit is %d",
				r.name, r.maxSlack, per-rep.cfg.slack, r.bound))
		}
		if r.early > 0 {
			errs = append(errs, fmt.Errorf("%s: %d requests started before the ideal schedule",
				r.name, r.early))
		}
		if r.overtaken > 0 {
			errs = append(errs, fmt.Errorf("%s: %d requests overtaken by later ones (FIFO broke)",
				r.name, r.overtaken))
		}
	}

	return errors.Join(errs...)
}

// printHeader describes the scenario before it runs.
func printHeader(w io.Writer, cfg config) {
	units := 0
	for _, r := range requests(cfg.n, cfg.weighted) {
		units += r.amount
	}

	weights := "each weighs 1"
	if cfg.weighted {
		weights = fmt.Sprintf("every %dth weighs %d", heavyEvery, heavyAmount)
	}
	fmt.Fprintf(w, "%d requests, %s: %d units at %d per %v; modes run side by side.\n",
		cfg.n, weights, units, cfg.rate, per)
	fmt.Fprintf(w, "Each is submitted in order with Scheduler.Go; its task records its start.\n")
	if cfg.weighted && slices.Contains(cfg.modes, "leaky1") {
		fmt.Fprintf(w, "leaky1 has burst %d, not 1: no bucket grants more than its burst.\n",
			largest(true))
	}
	fmt.Fprintln(w)
}

// printReport prints one row per scenario and what the columns mean.
func printReport(w io.Writer, rep report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tlimit\tsubmit\telapsed\tideal\tunits/s\tmax/1s\tbound\t"+
		"late p50\tp99\tFIFO")
	for _, r := range rep.results {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%v\t%.1f\t%s\t%d\t%v\t%v\t%s\n",
			r.name, r.describe(), round(r.submit), round(r.elapsed), round(r.ideal), r.rate,
			r.window(), r.bound, round(r.lateP50), round(r.lateP99), fifo(r.overtaken))
	}
	tw.Flush()

	s := rep.cfg.slack
	fmt.Fprintf(w, `
submit: time spent in Go submitting all requests. ideal: the last start under the
contract's exact arithmetic; late: each start minus its ideal time. units/s: units
beyond the burst (or first window), per second until the last start. max/1s: most
units started in any [t, t+1s); bound: the contract's limit (burst+rate, or window).
A task starts a moment after its grant, so starts within %v count as one moment,
and * marks a count over the bound only within %v of a window's end: a sliding
window grants new units the instant old ones leave it, so start lag shows there.
`, s, s)
}

// window renders the most units started in one window, marked * if it is
// over the bound only because of start lag.
func (r result) window() string {
	if r.maxWindow > r.bound && r.maxSlack <= r.bound {
		return fmt.Sprintf("%d*", r.maxWindow)
	}

	return fmt.Sprint(r.maxWindow)
}

// round shortens d for the table.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}

	return d.Round(time.Microsecond)
}

// fifo renders the FIFO verdict.
func fifo(overtaken int) string {
	if overtaken == 0 {
		return "yes"
	}

	return fmt.Sprintf("no (%d overtaken)", overtaken)
}
