package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/internal/dueheap"
	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// scaleResults holds what the scale section measured.
type scaleResults struct {
	waiters        int
	bytesPerWaiter float64
	drain          time.Duration // granting every waiter once the limit is raised

	keys           int
	bytesPerKey    float64
	goroutinesPerK float64

	timer []timerFigure

	idleBuckets int
	idleTime    time.Duration
	idleCPU     time.Duration // user + system CPU while idle
	baseCPU     time.Duration // the same, over as long, before the buckets were made
	idleRoutine float64       // goroutines per idle bucket
}

// timerFigure is the timer actor's cost per wake-up with n buckets due.
type timerFigure struct {
	buckets int
	perWake time.Duration // median over timerRepeats rounds
	heapOp  time.Duration // the heap's work alone per wake-up, the same way
}

// timerRepeats is how many rounds each timer figure takes the median of.
const timerRepeats = 3

// runScale runs the four scale measurements, one after the other.
func runScale(cfg config) (*scaleResults, error) {
	res := &scaleResults{waiters: cfg.waiters, keys: cfg.keys, idleBuckets: cfg.idleBuckets,
		idleTime: cfg.idleTime}

	var err error
	if res.bytesPerWaiter, res.drain, err = measureWaiters(cfg.waiters); err != nil {
		return nil, fmt.Errorf("waiters: %w", err)
	}
	if res.bytesPerKey, res.goroutinesPerK, err = measureKeyed(cfg.keys); err != nil {
		return nil, fmt.Errorf("keyed buckets: %w", err)
	}
	for _, n := range cfg.timerSizes {
		f, err := measureTimer(n)
		if err != nil {
			return nil, fmt.Errorf("timer with %d buckets: %w", n, err)
		}
		res.timer = append(res.timer, f)
	}
	if res.baseCPU, err = cpuOver(cfg.idleTime); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if res.idleCPU, res.idleRoutine, err = measureIdle(cfg.idleBuckets, cfg.idleTime); err != nil {
		return nil, fmt.Errorf("idle buckets: %w", err)
	}

	return res, nil
}

// counter is a process without a mailbox that counts the grants it
// receives and closes done when it has counted want of them.
type counter struct {
	pid      *actor.PID
	want     int64
	grants   atomic.Int64
	rejected atomic.Int64
	done     chan struct{}
}

// newCounter registers a counter in sys; remove it from
// sys.ProcessRegistry when done.
func newCounter(sys *actor.ActorSystem, want int) *counter {
	c := &counter{want: int64(want), done: make(chan struct{})}
	c.pid = spawnProcess(sys, "bench-counter", c.receive)

	return c
}

// receive counts msg.
func (c *counter) receive(msg any) {
	switch msg.(type) {
	case *messages.Granted:
		if c.grants.Add(1) == c.want {
			close(c.done)
		}
	case *messages.Rejected:
		c.rejected.Add(1)
	}
}

// measureWaiters queues n Acquires on one bucket of one unit per hour,
// whose first unit is already taken, and returns the heap each waiter
// holds; then it raises the limit out of reach and returns how long the
// bucket took to grant them all.
func measureWaiters(n int) (bytesPer float64, drain time.Duration, err error) {
	sys := newSystem()
	defer stopTimer(sys)
	ctx := context.Background()
	s, err := scheduler.New(sys, scheduler.Limit{Rate: 1, Per: time.Hour, Burst: 1})
	if err != nil {
		return 0, 0, err
	}
	defer s.Stop()
	if err := s.Acquire(ctx, 1); err != nil {
		return 0, 0, err
	}
	c := newCounter(sys, n)
	defer sys.ProcessRegistry.Remove(c.pid)

	// Queue them all, then a Status round trip behind them: the mailbox is
	// FIFO, so when it answers, every one has been queued.
	heap := heapInUse()
	for i := range n {
		m := &messages.Acquire{RequestId: uint64(i) + 1, Amount: 1}
		sys.Root.RequestWithCustomSender(s.PID(), m, c.pid)
	}
	st, err := s.Status(ctx)
	if err != nil {
		return 0, 0, err
	}
	bytesPer = float64(heapInUse()-heap) / float64(n)
	if st.Queued != n {
		return 0, 0, fmt.Errorf("%d waiting, want %d (%d rejected)", st.Queued, n,
			c.rejected.Load())
	}

	t0 := time.Now()
	if err := s.SetLimit(ctx, neverWaits); err != nil {
		return 0, 0, err
	}
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		return 0, 0, fmt.Errorf("%d of %d granted a minute after raising the limit",
			c.grants.Load(), n)
	}

	return bytesPer, time.Since(t0), nil
}

// measureKeyed makes n keyed buckets live, one per key, and returns the
// heap and goroutines each idle one holds.
func measureKeyed(n int) (bytesPer, goroutinesPer float64, err error) {
	sys := newSystem()
	defer stopTimer(sys)
	k, err := scheduler.NewKeyed(sys, scheduler.Rules{Default: &neverWaits},
		scheduler.WithIdleTimeout(time.Hour))
	if err != nil {
		return 0, 0, err
	}
	defer k.Stop()
	keys := make([]string, n) // made before measuring
	for i := range keys {
		keys[i] = "api-" + strconv.Itoa(i)
	}

	ctx := context.Background()
	heap, routines := heapInUse(), runtime.NumGoroutine()
	for _, key := range keys {
		if _, err := k.For(key).Status(ctx); err != nil {
			return 0, 0, fmt.Errorf("key %s: %w", key, err)
		}
	}
	bytesPer = float64(heapInUse()-heap) / float64(n)
	goroutinesPer = float64(runtime.NumGoroutine()-routines) / float64(n)
	if live := k.Buckets(); live != n {
		return 0, 0, fmt.Errorf("%d live buckets, want %d", live, n)
	}
	runtime.KeepAlive(keys)

	return bytesPer, goroutinesPer, nil
}

// fakeBucket stands in for a bucket at the timer actor: a process without
// a mailbox that notes when its Leak came and counts it in *left.
type fakeBucket struct {
	pid  *actor.PID
	at   atomic.Int64 // when the Leak came, since the epoch
	t0   time.Time
	left *atomic.Int64
	done chan struct{}
}

// receive notes msg if it is a Leak.
func (f *fakeBucket) receive(msg any) {
	if !isLeak(msg) {
		return
	}
	f.at.Store(int64(time.Since(f.t0)))
	if f.left.Add(-1) == 0 {
		close(f.done)
	}
}

// isLeak reports whether msg is a Leak.
func isLeak(msg any) bool {
	_, ok := msg.(*messages.Leak)
	return ok
}

// measureTimer returns the timer actor's cost per wake-up with n buckets
// due at the same moment: the median over timerRepeats rounds.
func measureTimer(n int) (timerFigure, error) {
	var per []time.Duration
	for range timerRepeats {
		d, err := timerRound(n)
		if err != nil {
			return timerFigure{}, err
		}
		per = append(per, d)
	}
	slices.Sort(per)

	return timerFigure{buckets: n, perWake: per[len(per)/2], heapOp: measureHeap(n)}, nil
}

// heapRound is how many wake-ups a round of measureHeap times.
const heapRound = 200_000

// measureHeap returns the timer's heap work per wake-up with n buckets
// waiting, without the actor around it, as the timer does it in a steady
// state: a bucket asks again (its due time moves), and the earliest is
// taken off and asks again. The median over timerRepeats rounds.
func measureHeap(n int) time.Duration {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	spread := int64(n) * 1000
	h := dueheap.New[string, int]()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "bucket-" + strconv.Itoa(i)
		h.Set(keys[i], i, rng.Int64N(spread))
	}

	var per []time.Duration
	for range timerRepeats {
		t0 := time.Now()
		for range heapRound {
			due, _ := h.Next()
			k := rng.IntN(n)
			h.Set(keys[k], k, due+rng.Int64N(spread))

			due, _ = h.Next()
			k, _ = h.PopDue(due)
			h.Set(keys[k], k, due+rng.Int64N(spread))
		}
		per = append(per, time.Since(t0)/heapRound)
	}
	slices.Sort(per)

	return per[len(per)/2]
}

// timerRound has n fake buckets ask the timer actor for a wake-up at one
// moment, then returns the time from the first Leak to the last divided by
// the n-1 wake-ups between them: the heap pop and the send per bucket. The
// actual Go timer's lateness falls before the first Leak and is not
// counted. The requests go in batches, each waited for, so that transit
// through the timer's mailbox does not spread the due times.
func timerRound(n int) (time.Duration, error) {
	sys := newSystem()
	timer := actors.Timer(sys)
	defer stopActor(sys, timer)

	t0 := time.Now()
	var left atomic.Int64
	left.Store(int64(n))
	done := make(chan struct{})
	fakes := make([]*fakeBucket, n)
	for i := range fakes {
		f := &fakeBucket{t0: t0, left: &left, done: done}
		f.pid = spawnProcess(sys, "bench-fake", f.receive)
		fakes[i] = f
	}
	defer func() {
		for _, f := range fakes {
			sys.ProcessRegistry.Remove(f.pid)
		}
	}()

	const batch = 1000
	lead := 100*time.Millisecond + time.Duration(n)*5*time.Microsecond
	due := time.Now().Add(lead)
	for i, f := range fakes {
		m := &messages.ScheduleLeak{DelayNanos: int64(time.Until(due))}
		sys.Root.RequestWithCustomSender(timer, m, f.pid)
		if i%batch == batch-1 {
			if err := timerSync(sys, timer); err != nil {
				return 0, err
			}
		}
	}
	if err := timerSync(sys, timer); err != nil {
		return 0, err
	}
	if late := time.Since(due); late > 0 {
		return 0, fmt.Errorf("scheduling %d wake-ups took %v longer than the %v lead",
			n, late, lead)
	}

	select {
	case <-done:
	case <-time.After(lead + 30*time.Second):
		return 0, fmt.Errorf("%d of %d wake-ups still due 30 s late", left.Load(), n)
	}
	first, last := int64(math.MaxInt64), int64(0)
	for _, f := range fakes {
		first, last = min(first, f.at.Load()), max(last, f.at.Load())
	}

	return time.Duration(last-first) / time.Duration(max(n-1, 1)), nil
}

// timerSync returns once the timer actor has handled everything sent to it
// so far: it asks for a wake-up now for one more fake bucket and waits for
// it.
func timerSync(sys *actor.ActorSystem, timer *actor.PID) error {
	var left atomic.Int64
	left.Store(1)
	f := &fakeBucket{t0: time.Now(), left: &left, done: make(chan struct{})}
	f.pid = spawnProcess(sys, "bench-sync", f.receive)
	defer sys.ProcessRegistry.Remove(f.pid)

	sys.Root.RequestWithCustomSender(timer, &messages.ScheduleLeak{}, f.pid)
	select {
	case <-f.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the timer actor sent no Leak within 10 s")
	}
}

// measureIdle makes n buckets through scheduler.New, has each grant one
// unit, lets them drain and returns the CPU the process used over d while
// they sat idle, and the goroutines each one holds.
func measureIdle(n int, d time.Duration) (cpu time.Duration, goroutinesPer float64, err error) {
	sys := newSystem()
	defer stopTimer(sys)
	ctx := context.Background()

	routines := runtime.NumGoroutine()
	buckets := make([]*scheduler.Scheduler, 0, n)
	defer func() {
		for _, s := range buckets {
			s.Stop()
		}
	}()
	for i := range n {
		s, err := scheduler.New(sys, scheduler.Limit{Rate: 100})
		if err != nil {
			return 0, 0, err
		}
		buckets = append(buckets, s)
		if err := s.Acquire(ctx, 1); err != nil {
			return 0, 0, fmt.Errorf("bucket %d: %w", i, err)
		}
	}
	goroutinesPer = float64(runtime.NumGoroutine()-routines) / float64(n)

	// One unit drains in 10 ms at 100 per second; then nobody waits.
	time.Sleep(100 * time.Millisecond)
	cpu, err = cpuOver(d)

	return cpu, goroutinesPer, err
}

// cpuOver returns the CPU the process uses over the next d, after a
// collection: what the runtime does on its own (the scavenger handing back
// the memory of earlier figures, say) is in it, so it is measured once
// without buckets too.
func cpuOver(d time.Duration) (time.Duration, error) {
	runtime.GC()
	before, err := cpuUsed()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	after, err := cpuUsed()
	if err != nil {
		return 0, err
	}

	return after - before, nil
}

// cpuUsed returns the user and system CPU time the process has used.
func cpuUsed() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}

	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// heapInUse returns the live heap. It collects twice: what sync.Pools hold
// survives one collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)

	return int64(m.HeapAlloc)
}
