package scheduler_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

// grants records when each named request was granted, relative to start.
type grants struct {
	mu    sync.Mutex
	start time.Time
	at    map[string]time.Duration
	order []string
	errs  map[string]error
}

func newGrants() *grants {
	return &grants{start: time.Now(), at: map[string]time.Duration{}, errs: map[string]error{}}
}

// acquire starts Acquire(ctx, amount) as request name in a goroutine and
// waits until it is queued or answered.
func (g *grants) acquire(ctx context.Context, s *scheduler.Scheduler, name string, amount float64) {
	go func() {
		err := s.Acquire(ctx, amount)

		g.mu.Lock()
		defer g.mu.Unlock()
		if err != nil {
			g.errs[name] = err
			return
		}
		g.at[name] = time.Since(g.start)
		g.order = append(g.order, name)
	}()
	synctest.Wait()
}

// check compares the grant times with want; a name missing from want must
// not have been granted.
func (g *grants) check(t *testing.T, want map[string]time.Duration) {
	t.Helper()
	synctest.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	for name, at := range g.at {
		if w, ok := want[name]; !ok || w != at {
			t.Errorf("%s granted at %v, want %v (in want: %v)", name, at, w, ok)
		}
	}
	for name, w := range want {
		if _, ok := g.at[name]; !ok {
			t.Errorf("%s not granted, want at %v (error %v)", name, w, g.errs[name])
		}
	}
}

// mustNew returns a scheduler for l, stopped when the test ends.
func mustNew(t *testing.T, l scheduler.Limit, opts ...scheduler.Option) *scheduler.Scheduler {
	t.Helper()

	s, err := scheduler.New(newSystem(), l, opts...)
	if err != nil {
		t.Fatalf("New(%+v): %v", l, err)
	}
	t.Cleanup(s.Stop)

	return s
}

func TestAcquireIsFIFOForWeightedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 10})
		g := newGrants()
		ctx := context.Background()

		g.acquire(ctx, s, "drain", 10)
		g.acquire(ctx, s, "large", 10)
		g.acquire(ctx, s, "small", 1) // would fit at 100 ms, but waits its turn
		time.Sleep(2 * time.Second)

		g.check(t, map[string]time.Duration{"drain": 0, "large": time.Second,
			"small": 1100 * time.Millisecond})
	})
}

func TestTryAcquireFailsWhileAnyoneWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 10})
		g := newGrants()

		g.acquire(context.Background(), s, "drain", 10)
		g.acquire(context.Background(), s, "waiter", 5)
		time.Sleep(200 * time.Millisecond)
		if s.TryAcquire(1) {
			t.Error("TryAcquire(1) passed a waiter")
		}

		time.Sleep(400 * time.Millisecond) // waiter granted at 500 ms, 1 fits at 600 ms
		if !s.TryAcquire(1) {
			t.Error("TryAcquire(1) failed with nobody waiting and room for 1")
		}
		if s.TryAcquire(1) {
			t.Error("TryAcquire(1) granted beyond the burst")
		}
		g.check(t, map[string]time.Duration{"drain": 0, "waiter": 500 * time.Millisecond})
	})
}

func TestCancelledWaiterLeavesAtOnce(t *testing.T) {
	// Rate 1/s, burst 1: after a first grant, waiters a, b, c are due at
	// 1 s, 2 s and 3 s. Cancelling one at 500 ms moves the others up.
	cases := []struct {
		cancel string
		want   map[string]time.Duration
	}{
		{"a", map[string]time.Duration{"b": time.Second, "c": 2 * time.Second}},
		{"b", map[string]time.Duration{"a": time.Second, "c": 2 * time.Second}},
		{"c", map[string]time.Duration{"a": time.Second, "b": 2 * time.Second}},
	}
	for _, tc := range cases {
		t.Run("cancel "+tc.cancel, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
				g := newGrants()
				bg := context.Background()
				ctx, cancel := context.WithCancel(bg)

				g.acquire(bg, s, "first", 1)
				for _, name := range []string{"a", "b", "c"} {
					if name == tc.cancel {
						g.acquire(ctx, s, name, 1)
					} else {
						g.acquire(bg, s, name, 1)
					}
				}
				time.Sleep(500 * time.Millisecond)
				cancel()
				synctest.Wait()

				st, err := s.Status(bg)
				if err != nil || st.Queued != 2 {
					t.Errorf("after cancel: %d queued (%v), want 2", st.Queued, err)
				}
				if err := g.errs[tc.cancel]; !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled Acquire returned %v, want context.Canceled", err)
				}
				time.Sleep(3 * time.Second)
				tc.want["first"] = 0
				g.check(t, tc.want)
			})
		})
	}
}

func TestCancelledHeadLetsNextGoInSameStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 2})
		g := newGrants()
		bg := context.Background()
		ctx, cancel := context.WithCancel(bg)

		g.acquire(bg, s, "first", 2)
		g.acquire(ctx, s, "head", 2) // due at 2 s
		g.acquire(bg, s, "next", 1)  // fits from 1 s, but waits behind head
		time.Sleep(1500 * time.Millisecond)
		cancel()

		g.check(t, map[string]time.Duration{"first": 0, "next": 1500 * time.Millisecond})
	})
}

func TestAcquireFailsAtOnceWhenDeadlineCannotBeMet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		if err := s.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		err := s.Acquire(ctx, 1)
		if !errors.Is(err, scheduler.ErrDeadline) || time.Since(start) != 0 {
			t.Errorf("Acquire = %v after %v, want ErrDeadline at once", err, time.Since(start))
		}

		ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel2()
		if err := s.Acquire(ctx2, 1); err != nil || time.Since(start) != time.Second {
			t.Errorf("Acquire = %v after %v, want a grant at 1s", err, time.Since(start))
		}
	})
}

func TestAcquireReturnsContextErrorUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1, Mode: scheduler.SlidingWindow})
		if err := s.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}

		// The sliding window's deadline check is a lower bound, so the
		// request waits and the context's own error comes back.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done := make(chan error)
		go func() { done <- s.Acquire(ctx, 1) }()
		go func() { time.Sleep(500 * time.Millisecond); cancel() }()
		if err := <-done; err != context.Canceled {
			t.Errorf("Acquire = %v, want context.Canceled itself", err)
		}
	})
}

func TestQueueBounds(t *testing.T) {
	cases := []struct {
		name string
		opt  scheduler.Option
	}{
		{"count", scheduler.WithMaxQueue(1)},
		{"amount", scheduler.WithMaxQueuedAmount(1.5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1}, tc.opt)
				g := newGrants()
				bg := context.Background()

				g.acquire(bg, s, "first", 1)
				g.acquire(bg, s, "waiter", 1)
				if err := s.Acquire(bg, 1); !errors.Is(err, scheduler.ErrQueueFull) {
					t.Errorf("Acquire beyond the bound = %v, want ErrQueueFull", err)
				}
				time.Sleep(time.Second)
				g.check(t, map[string]time.Duration{"first": 0, "waiter": time.Second})
			})
		})
	}
}

func TestStopAnswersEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		g := newGrants()
		bg := context.Background()

		g.acquire(bg, s, "first", 1)
		for _, name := range []string{"a", "b", "c"} {
			g.acquire(bg, s, name, 1)
		}
		s.Stop()
		s.Stop() // idempotent
		synctest.Wait()

		for _, name := range []string{"a", "b", "c"} {
			if err := g.errs[name]; !errors.Is(err, scheduler.ErrStopped) {
				t.Errorf("%s: %v, want ErrStopped", name, err)
			}
		}
		if err := s.Acquire(bg, 1); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Acquire after Stop = %v, want ErrStopped", err)
		}
		if s.TryAcquire(1) {
			t.Error("TryAcquire after Stop succeeded")
		}
		if _, err := s.Status(bg); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Status after Stop = %v, want ErrStopped", err)
		}
		if err := s.Go(bg, 1, func(context.Context) {}); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Go after Stop = %v, want ErrStopped", err)
		}
		g.check(t, map[string]time.Duration{"first": 0})
	})
}

func TestSetLimitRetimesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// DESIGN.md's example: rate 1/s, burst 1, granted at 0; at 200 ms the
		// rate becomes 10/s; the 0.8 left drains in 80 ms.
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		g := newGrants()
		bg := context.Background()

		g.acquire(bg, s, "first", 1)
		g.acquire(bg, s, "waiter", 1)
		time.Sleep(200 * time.Millisecond)
		if err := s.SetLimit(bg, scheduler.Limit{Rate: 10, Burst: 1}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)

		g.check(t, map[string]time.Duration{"first": 0, "waiter": 280 * time.Millisecond})
		st, err := s.Status(bg)
		want := scheduler.Limit{Rate: 10, Per: time.Second, Burst: 1}
		if err != nil || !reflect.DeepEqual(st.Limit, want) {
			t.Errorf("Status().Limit = %+v (%v), want the new limit", st.Limit, err)
		}
	})
}

func TestSlowerLimitKeepsTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Rate 10/s, burst 5; after 5 at once, lower the rate to 1/s: the
		// level (5 at 0, 4 at 100 ms) drains at 1/s from then on.
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 5})
		g := newGrants()
		bg := context.Background()

		g.acquire(bg, s, "burst", 5)
		g.acquire(bg, s, "waiter", 2)
		time.Sleep(100 * time.Millisecond)
		if err := s.SetLimit(bg, scheduler.Limit{Rate: 1, Burst: 5}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)

		// Level 4 at 100 ms; 2 fits at level 3, one second later.
		g.check(t, map[string]time.Duration{"burst": 0, "waiter": 1100 * time.Millisecond})
	})
}

func TestGoStartsTaskWhenGrantedAndNeverAfterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		start := time.Now()
		started := make(chan time.Duration, 3)
		task := func(context.Context) { started <- time.Since(start) }
		bg := context.Background()
		ctx, cancel := context.WithCancel(bg)

		for _, c := range []context.Context{bg, ctx, bg} {
			if err := s.Go(c, 1, task); err != nil {
				t.Fatal(err)
			}
		}
		if time.Since(start) != 0 {
			t.Errorf("Go blocked for %v", time.Since(start))
		}
		time.Sleep(500 * time.Millisecond)
		cancel()
		time.Sleep(5 * time.Second)

		synctest.Wait()
		var got []time.Duration
		for len(started) > 0 {
			got = append(got, <-started)
		}
		if len(got) != 2 || got[0] != 0 || got[1] != time.Second {
			t.Errorf("tasks started at %v, want [0s 1s]", got)
		}
	})
}

func TestGoReportsWhatIsKnownAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 5})
		task := func(context.Context) { t.Error("task ran") }

		if err := s.Go(context.Background(), 6, task); !errors.Is(err, scheduler.ErrTooLarge) {
			t.Errorf("Go(6) with burst 5 = %v, want ErrTooLarge", err)
		}
		if err := s.Go(context.Background(), -1, task); !errors.Is(err, scheduler.ErrInvalidAmount) {
			t.Errorf("Go(-1) = %v, want ErrInvalidAmount", err)
		}
		synctest.Wait()
	})
}

func TestBadAmountGetsErrorNamingItAndChangesNothing(t *testing.T) {
	cases := []struct {
		amount float64
		want   error
		names  string
	}{
		{math.NaN(), scheduler.ErrInvalidAmount, "NaN"},
		{math.Inf(1), scheduler.ErrInvalidAmount, "+Inf"},
		{math.Inf(-1), scheduler.ErrInvalidAmount, "-Inf"},
		{-1, scheduler.ErrInvalidAmount, "-1"},
		{0, scheduler.ErrInvalidAmount, "0"},
		{1e-9, scheduler.ErrInvalidAmount, "1e-09"},
		{5.5, scheduler.ErrTooLarge, "5.5"},
	}
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 5})
		bg := context.Background()
		before, err := s.Status(bg)
		if err != nil {
			t.Fatal(err)
		}

		for _, tc := range cases {
			err := s.Acquire(bg, tc.amount)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("Acquire(%v) = %v, want %v naming %s", tc.amount, err, tc.want, tc.names)
			}
			if s.TryAcquire(tc.amount) {
				t.Errorf("TryAcquire(%v) succeeded", tc.amount)
			}
		}

		after, err := s.Status(bg)
		if err != nil || after.Level != before.Level || after.Granted != 0 || after.Queued != 0 {
			t.Errorf("status changed: before %+v, after %+v (%v)", before, after, err)
		}
	})
}

func TestBadLimitGetsErrorNamingItAndChangesNothing(t *testing.T) {
	cases := []struct {
		limit scheduler.Limit
		names string
	}{
		{scheduler.Limit{}, "rate 0"},
		{scheduler.Limit{Rate: -1}, "rate -1"},
		{scheduler.Limit{Rate: math.NaN()}, "rate NaN"},
		{scheduler.Limit{Rate: math.Inf(1)}, "rate +Inf"},
		{scheduler.Limit{Rate: 1, Burst: -2}, "burst -2"},
		{scheduler.Limit{Rate: 1, Burst: math.NaN()}, "burst NaN"},
		{scheduler.Limit{Rate: 1, Per: -time.Second}, "period -1s"},
		{scheduler.Limit{Rate: 1, Mode: 7}, "mode 7"},
		{scheduler.Limit{Rate: 1e-6, Per: 2e6 * time.Hour}, "too long"},
	}
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 5})
		bg := context.Background()
		before, _ := s.Status(bg)

		for _, tc := range cases {
			if _, err := scheduler.New(newSystem(), tc.limit); !errors.Is(err, scheduler.ErrInvalidLimit) ||
				!strings.Contains(err.Error(), tc.names) {
				t.Errorf("New(%+v) = %v, want ErrInvalidLimit naming %q", tc.limit, err, tc.names)
			}
			err := s.SetLimit(bg, tc.limit)
			if !errors.Is(err, scheduler.ErrInvalidLimit) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("SetLimit(%+v) = %v, want ErrInvalidLimit naming %q", tc.limit, err, tc.names)
			}
		}
		if err := s.SetLimit(bg, scheduler.Limit{Rate: 10, Mode: scheduler.SlidingWindow}); !errors.Is(
			err, scheduler.ErrInvalidLimit) {
			t.Errorf("SetLimit changing the mode = %v, want ErrInvalidLimit", err)
		}

		after, err := s.Status(bg)
		if err != nil || !reflect.DeepEqual(after, before) {
			t.Errorf("status changed: before %+v, after %+v (%v)", before, after, err)
		}
	})
}

func TestBadOptionsGetErrorNamingThem(t *testing.T) {
	cases := []struct {
		opt   scheduler.Option
		names string
	}{
		{scheduler.WithMaxQueue(-3), "-3"},
		{scheduler.WithMaxQueuedAmount(math.NaN()), "NaN"},
		{scheduler.WithMaxQueuedAmount(-1), "-1"},
	}
	for _, tc := range cases {
		_, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 1}, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("New with a bad option = %v, want an error naming %s", err, tc.names)
		}
	}
}
