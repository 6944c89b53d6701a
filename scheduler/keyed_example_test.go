package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dripsched/drip/scheduler"
)

func ExampleNewKeyed() {
	k, err := scheduler.NewKeyed(newSystem(), scheduler.Rules{
		Exact: map[string]scheduler.Limit{"api.github.com": {Rate: 10}},
		Patterns: []scheduler.Pattern{
			{Match: "*.example.com", Limit: scheduler.Limit{Rate: 2}},
		},
	}, scheduler.WithIdleTimeout(time.Minute))
	if err != nil {
		panic(err)
	}
	defer k.Stop()

	// Each host gets a bucket of its own on first use.
	ctx := context.Background()
	for _, host := range []string{"api.github.com", "a.example.com", "b.example.com"} {
		if err := k.Acquire(ctx, host, 1); err != nil {
			panic(err)
		}
	}
	fmt.Println("buckets:", k.Buckets())

	// a.example.com has 1 of its burst of 2 left, whatever the others do.
	a := k.For("a.example.com")
	fmt.Println(a.TryAcquire(1), a.TryAcquire(1))

	err = k.Acquire(ctx, "example.org", 1)
	fmt.Println(errors.Is(err, scheduler.ErrUnknownKey))
	// Output:
	// buckets: 3
	// true false
	// true
}
