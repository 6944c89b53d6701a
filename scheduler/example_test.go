package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dripsched/drip/scheduler"
)

func ExampleScheduler_Acquire() {
	s, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 100, Burst: 10})
	if err != nil {
		panic(err)
	}
	defer s.Stop()

	// The first ten fit in the burst; the rest follow at 100 per second.
	for range 12 {
		if err := s.Acquire(context.Background(), 1); err != nil {
			panic(err)
		}
	}
	st, _ := s.Status(context.Background())
	fmt.Println("granted:", st.Granted)
	// Output: granted: 12
}

func ExampleScheduler_Go() {
	s, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 100})
	if err != nil {
		panic(err)
	}
	defer s.Stop()

	// Go returns at once; each task starts in its own goroutine when its
	// turn comes.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		err := s.Go(context.Background(), 1, func(context.Context) {
			defer wg.Done()
			_ = i // call the API here
		})
		if err != nil {
			panic(err)
		}
	}
	wg.Wait()
	fmt.Println("all started")
	// Output: all started
}

func ExampleScheduler_TryAcquire() {
	s, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 1, Burst: 2})
	if err != nil {
		panic(err)
	}
	defer s.Stop()

	fmt.Println(s.TryAcquire(2), s.TryAcquire(1))
	// Output: true false
}

func ExampleNew_invalidLimit() {
	_, err := scheduler.New(newSystem(), scheduler.Limit{Rate: -5})
	fmt.Println(errors.Is(err, scheduler.ErrInvalidLimit))
	fmt.Println(err)
	// Output:
	// true
	// scheduler: invalid limit: rate -5 is not a positive number
}
