package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

func TestPauseStopsGrantsUntilItEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 2})
		g := newGrants()
		ctx := context.Background()

		g.acquire(ctx, s, "first", 1)
		time.Sleep(time.Millisecond)
		if err := s.Pause(ctx, time.Now().Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		st, err := s.Status(ctx)
		if err != nil || st.PausedFor != 2*time.Second {
			t.Fatalf("Status = %+v, %v; want 2s of pause left", st, err)
		}

		// The level drains during the pause: at its end the burst of 2 is
		// back, and no more.
		g.acquire(ctx, s, "a", 1)
		g.acquire(ctx, s, "b", 1)
		g.acquire(ctx, s, "c", 1)
		time.Sleep(3 * time.Second)

		// The pause was asked for at 1 ms.
		g.check(t, map[string]time.Duration{"first": 0, "a": 2001 * time.Millisecond,
			"b": 2001 * time.Millisecond, "c": 2101 * time.Millisecond})
	})
}

func TestPauseFailsWaitersItMakesLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1, Burst: 1})
		ctx := context.Background()
		if err := s.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}

		late, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Acquire(late, 1) }()
		time.Sleep(100 * time.Millisecond)

		if err := s.Pause(ctx, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := <-done; !errors.Is(err, scheduler.ErrDeadline) {
			t.Errorf("a waiter the pause makes late got %v, want ErrDeadline", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the waiter failed %v after the pause, want at once", waited)
		}
	})
}

func TestPauseRefusesNoTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 1})
		for _, until := range []time.Time{{}, time.Unix(0, 0), time.Unix(-5, 0)} {
			err := s.Pause(context.Background(), until)
			if err == nil || !strings.Contains(err.Error(), "not a time") {
				t.Errorf("Pause(%v) = %v, want an error naming it", until, err)
			}
		}
		if st, err := s.Status(context.Background()); err != nil || st.PausedFor != 0 {
			t.Errorf("after bad pauses Status = %+v, %v; want no pause", st, err)
		}
	})
}

func TestKeyedPauseHoldsOneKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := scheduler.NewKeyed(newSystem(), scheduler.Rules{
			Default: &scheduler.Limit{Rate: 10, Burst: 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Stop()
		ctx := context.Background()

		if err := k.For("a").Pause(ctx, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := k.Acquire(ctx, "b", 1); err != nil || time.Since(start) != 0 {
			t.Errorf("another key waited %v (%v), want no wait", time.Since(start), err)
		}
		if err := k.Acquire(ctx, "a", 1); err != nil || time.Since(start) != time.Second {
			t.Errorf("the paused key granted after %v (%v), want 1s", time.Since(start), err)
		}
	})
}
