package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

func TestAcquireAllWaitsForEveryPart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		requests := mustNew(t, scheduler.Limit{Rate: 10, Burst: 10})
		tokens := mustNew(t, scheduler.Limit{Rate: 100, Burst: 1000})
		ctx := context.Background()
		if err := tokens.Acquire(ctx, 1000); err != nil {
			t.Fatal(err)
		}
		start := time.Now()

		// The tokens take 5 s to come back; the request unit is there now.
		if err := scheduler.AcquireAll(ctx, scheduler.Part{Scheduler: requests, Amount: 1},
			scheduler.Part{Scheduler: tokens, Amount: 500}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("AcquireAll took %v, want 5s", took)
		}
		for name, s := range map[string]*scheduler.Scheduler{"requests": requests, "tokens": tokens} {
			st, err := s.Status(ctx)
			if err != nil || st.Granted != map[string]uint64{"requests": 1, "tokens": 2}[name] ||
				st.Queued != 0 {
				t.Errorf("%s: %+v, %v", name, st, err)
			}
		}
	})
}

func TestAcquireAllConsumesNothingWhenAPartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := mustNew(t, scheduler.Limit{Rate: 10, Burst: 10})
		b := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		ctx := context.Background()
		if err := b.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		before, _ := a.Status(ctx)

		// b cannot grant within the deadline: whatever a held goes back.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		err := scheduler.AcquireAll(short, scheduler.Part{Scheduler: a, Amount: 4},
			scheduler.Part{Scheduler: b, Amount: 1})
		if !errors.Is(err, scheduler.ErrDeadline) {
			t.Fatalf("AcquireAll = %v, want ErrDeadline", err)
		}
		after, _ := a.Status(ctx)
		if after.Level != before.Level || after.Granted != before.Granted {
			t.Errorf("a part of a failed request was kept: before %+v, after %+v", before, after)
		}

		// Too large for one part: refused before anything is asked.
		err = scheduler.AcquireAll(ctx, scheduler.Part{Scheduler: a, Amount: 1},
			scheduler.Part{Scheduler: b, Amount: 2})
		if !errors.Is(err, scheduler.ErrTooLarge) || !strings.Contains(err.Error(), "part") {
			t.Errorf("AcquireAll with a part too large = %v, want ErrTooLarge naming the part", err)
		}
	})
}

func TestAcquireAllCancelFreesTheHeldParts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := mustNew(t, scheduler.Limit{Rate: 10, Burst: 10})
		b := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		ctx := context.Background()
		if err := b.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}

		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- scheduler.AcquireAll(cctx, scheduler.Part{Scheduler: a, Amount: 5},
				scheduler.Part{Scheduler: b, Amount: 1})
		}()
		time.Sleep(100 * time.Millisecond) // a is held, b waits

		// While a is held, a's own callers wait; once the request is
		// cancelled they go at once, with a's level as if it never was.
		start := time.Now()
		waiter := make(chan error, 1)
		go func() { waiter <- a.Acquire(ctx, 10) }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled AcquireAll = %v, want context.Canceled", err)
		}
		if err := <-waiter; err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Errorf("a's waiter was granted %v after it asked, want 50ms (at the cancel)", waited)
		}
	})
}

func TestAcquireAllNeverDeadlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := mustNew(t, scheduler.Limit{Rate: 5, Burst: 1})
		b := mustNew(t, scheduler.Limit{Rate: 5, Burst: 1})
		ctx := context.Background()

		// Many requests naming the two buckets in opposite orders: every
		// one completes, and the buckets keep their limits.
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			parts := []scheduler.Part{{Scheduler: a, Amount: 1}, {Scheduler: b, Amount: 1}}
			if i%2 == 1 {
				parts[0], parts[1] = parts[1], parts[0]
			}
			wg.Go(func() { errs <- scheduler.AcquireAll(ctx, parts...) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}

		// 20 units at 5 per second, burst 1: the last no sooner than 3.8 s.
		if took := time.Since(start); took < 3800*time.Millisecond {
			t.Errorf("20 requests done in %v, faster than the limits allow", took)
		}
		st, _ := a.Status(ctx)
		if st.Granted != 20 {
			t.Errorf("a granted %d, want 20", st.Granted)
		}
	})
}

func TestAcquireAllRefusesBadParts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := mustNew(t, scheduler.Limit{Rate: 1})
		ctx := context.Background()
		for _, parts := range [][]scheduler.Part{nil, {{Scheduler: nil, Amount: 1}},
			{{Scheduler: a, Amount: -1}}} {
			if err := scheduler.AcquireAll(ctx, parts...); err == nil {
				t.Errorf("AcquireAll(%v) = nil, want an error", parts)
			}
		}
		if st, _ := a.Status(ctx); st.Granted != 0 {
			t.Errorf("bad parts granted %d", st.Granted)
		}
	})
}
