package scheduler_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

func ExampleAcquireAll() {
	sys := newSystem()
	requests, err := scheduler.New(sys, scheduler.Limit{Rate: 60, Per: time.Minute})
	if err != nil {
		panic(err)
	}
	defer requests.Stop()
	tokens, err := scheduler.New(sys, scheduler.Limit{Rate: 10_000, Per: time.Minute})
	if err != nil {
		panic(err)
	}
	defer tokens.Stop()

	// One call to a language model: a request and its tokens, or neither.
	err = scheduler.AcquireAll(context.Background(),
		scheduler.Part{Scheduler: requests, Amount: 1},
		scheduler.Part{Scheduler: tokens, Amount: 1800})
	fmt.Println("granted:", err == nil)

	// More tokens than the bucket can ever hold: refused, and the request
	// unit is not spent either.
	err = scheduler.AcquireAll(context.Background(),
		scheduler.Part{Scheduler: requests, Amount: 1},
		scheduler.Part{Scheduler: tokens, Amount: 20_000})
	st, _ := requests.Status(context.Background())
	fmt.Println("refused:", err != nil, "requests granted:", st.Granted)
	// Output:
	// granted: true
	// refused: true requests granted: 1
}

func ExampleLimit_bands() {
	// 100 per second, and no more than 5,000 in any hour.
	l := scheduler.Limit{Rate: 100, Bands: []scheduler.Band{
		{Rate: 5000, Per: time.Hour, Mode: scheduler.SlidingWindow}}}
	s, err := scheduler.New(newSystem(), l)
	if err != nil {
		panic(err)
	}
	defer s.Stop()

	if err := s.Acquire(context.Background(), 10); err != nil {
		panic(err)
	}
	st, _ := s.Status(context.Background())
	fmt.Printf("levels: %.0f %.0f\n", st.Levels[0], st.Levels[1])
	// Output: levels: 10 10
}

func ExampleTransport() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer server.Close()

	keyed, err := scheduler.NewKeyed(newSystem(), scheduler.Rules{
		Default: &scheduler.Limit{Rate: 10, Mode: scheduler.SlidingWindow}})
	if err != nil {
		panic(err)
	}
	defer keyed.Stop()

	// Each host gets a bucket of its own, made on first use.
	transport := &scheduler.Transport{Keyed: keyed}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	resp, err := client.Get(server.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
