package scheduler_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

func TestBandsAllMustAllow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 10 per second, and at most 15 in any 10 s.
		l := scheduler.Limit{Rate: 10, Bands: []scheduler.Band{
			{Rate: 15, Per: 10 * time.Second, Mode: scheduler.SlidingWindow}}}
		s := mustNew(t, l)
		ctx := context.Background()
		start := time.Now()

		var at []time.Duration
		for range 20 {
			if err := s.Acquire(ctx, 1); err != nil {
				t.Fatal(err)
			}
			at = append(at, time.Since(start))
		}

		// The first 10 go at once (burst 10), the next 5 at the first band's
		// rate, then the second band holds the rest until the window moves.
		want := []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
			400 * time.Millisecond, 500 * time.Millisecond,
			10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second,
			10 * time.Second}
		if !reflect.DeepEqual(at, want) {
			t.Errorf("grants at %v, want %v", at, want)
		}

		st, err := s.Status(ctx)
		if err != nil || len(st.Levels) != 2 || st.Levels[1] != 10 ||
			!reflect.DeepEqual(st.Limit.Bands, []scheduler.Band{
				{Rate: 15, Per: 10 * time.Second, Burst: 15, Mode: scheduler.SlidingWindow}}) {
			t.Errorf("Status = %+v, %v; want both bands and their levels", st, err)
		}
	})
}

func TestBandsRefuseWhatOneCannotHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 100, Bands: []scheduler.Band{{Rate: 5}}})
		err := s.Acquire(context.Background(), 6)
		if !errors.Is(err, scheduler.ErrTooLarge) || !strings.Contains(err.Error(), "band 1") {
			t.Errorf("Acquire(6) with a band of burst 5 = %v, want ErrTooLarge naming band 1", err)
		}
		if err := s.Go(context.Background(), 6, func(context.Context) {}); !errors.Is(err,
			scheduler.ErrTooLarge) {
			t.Errorf("Go(6) = %v, want ErrTooLarge at once", err)
		}
	})

	_, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 1,
		Bands: []scheduler.Band{{Rate: 1, Mode: scheduler.Mode(9)}}})
	if !errors.Is(err, scheduler.ErrInvalidLimit) || !strings.Contains(err.Error(), "band 1") {
		t.Errorf("New with a band of unknown mode = %v, want ErrInvalidLimit naming band 1", err)
	}
}

// TestSetLimitBoundHoldsAcrossTheChange keeps a queue waiting while the
// limit changes, and checks every interval of the grant history: what was
// granted in it is at most what the old limit, or the new, allows in an
// interval that long (burst + rate·length).
func TestSetLimitBoundHoldsAcrossTheChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		oldLimit := scheduler.Limit{Rate: 10, Burst: 5}
		newLimit := scheduler.Limit{Rate: 40, Burst: 2}
		s := mustNew(t, oldLimit)
		ctx := context.Background()
		start := time.Now()

		grants := make(chan time.Duration, 200)
		for range 150 {
			if err := s.Go(ctx, 1, func(context.Context) { grants <- time.Since(start) }); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if err := s.SetLimit(ctx, newLimit); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		close(grants)

		var at []time.Duration
		for g := range grants {
			at = append(at, g)
		}
		if len(at) != 150 {
			t.Fatalf("%d of 150 granted", len(at))
		}
		slices.Sort(at)
		for i := range at {
			for j := i; j < len(at); j++ {
				n, span := float64(j-i+1), (at[j] - at[i]).Seconds()
				allowed := max(oldLimit.Burst+oldLimit.Rate*span, newLimit.Burst+newLimit.Rate*span)
				if n > allowed+1e-9 {
					t.Fatalf("%v grants in [%v, %v], more than either limit allows (%v)",
						n, at[i], at[j], allowed)
				}
			}
		}

		// Raising the rate let the waiters go sooner: 150 at 10/s would
		// take 14.5 s; at 40/s after 1.5 s they are done by 5 s.
		if last := at[len(at)-1]; last > 5*time.Second {
			t.Errorf("the last grant at %v, want by 5s after the rate rose", last)
		}
	})
}
