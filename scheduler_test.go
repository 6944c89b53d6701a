// Package drip_test holds drip's end-to-end acceptance tests: they use the
// public API only, as a user would, on the fake clock of testing/synctest.
package drip_test

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/dripsched/drip/scheduler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newSystem returns an actor system that logs nothing.
func newSystem() *actor.ActorSystem {
	quiet := func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	return actor.NewActorSystem(actor.WithLoggerFactory(quiet))
}

// start is one granted request: when it started, its amount, and the order
// in which it was submitted.
type start struct {
	at     time.Duration
	amount float64
	index  int
}

// journal records starts from many goroutines.
type journal struct {
	mu     sync.Mutex
	origin time.Time
	starts []start
}

func (j *journal) record(amount float64, index int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.starts = append(j.starts, start{at: time.Since(j.origin), amount: amount, index: index})
}

// maxInWindow returns the largest amount started in any window [t, t+w).
func maxInWindow(starts []start, w time.Duration) float64 {
	var most float64
	for i, s := range starts {
		var sum float64
		for _, later := range starts[i:] {
			if later.at-s.at >= w {
				break
			}
			sum += later.amount
		}
		most = max(most, sum)
	}

	return most
}

// TestSeedScenario runs the question that started the project: 500
// requests at 100 per second, every tenth weighing 10, started with Go so
// the caller never blocks. In every mode the rolling 1 s window stays
// within the contract and the weighted requests keep their order.
func TestSeedScenario(t *testing.T) {
	cases := []struct {
		name  string
		limit scheduler.Limit
		heavy float64 // the weight of every tenth request
		bound float64 // most units the contract allows in any 1 s window
	}{
		{"leaky burst 100", scheduler.Limit{Rate: 100, Burst: 100}, 10, 200},
		{"leaky burst 1", scheduler.Limit{Rate: 100, Burst: 1}, 1, 101},
		{"sliding window", scheduler.Limit{Rate: 100, Mode: scheduler.SlidingWindow}, 10, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				runSeedScenario(t, tc.limit, tc.heavy, tc.bound)
			})
		})
	}
}

func runSeedScenario(t *testing.T, l scheduler.Limit, heavy, bound float64) {
	s, err := scheduler.New(newSystem(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	j := &journal{origin: time.Now()}

	// Submit everything at once; Go must not block.
	var total float64
	for i := range 500 {
		amount := 1.0
		if i%10 == 9 {
			amount = heavy
		}
		total += amount
		if err := s.Go(context.Background(), amount, func(context.Context) { j.record(amount, i) }); err != nil {
			t.Fatalf("Go #%d: %v", i, err)
		}
	}
	if d := time.Since(j.origin); d != 0 {
		t.Fatalf("submitting blocked for %v", d)
	}

	time.Sleep(time.Minute)
	synctest.Wait()

	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.starts) != 500 {
		t.Fatalf("%d of 500 started", len(j.starts))
	}
	if most := maxInWindow(j.starts, time.Second); most > bound {
		t.Errorf("%v units started in one 1s window, the contract allows %v", most, bound)
	}
	// Tasks granted at one instant start in any order; across instants
	// the submission order must hold.
	slices.SortFunc(j.starts, func(a, b start) int { return cmp.Or(int(a.at-b.at), a.index-b.index) })
	if !slices.IsSortedFunc(j.starts, func(a, b start) int { return a.index - b.index }) {
		t.Error("a request started before one submitted earlier")
	}

	// In the leaky bucket the last request goes exactly when the arithmetic
	// allows: once total-burst units have drained.
	last := j.starts[len(j.starts)-1].at
	want := time.Duration((total - l.Burst) / l.Rate * float64(time.Second))
	if l.Mode == scheduler.LeakyBucket && last != want {
		t.Errorf("last start at %v, want %v", last, want)
	}
}

// TestRandomUseKeepsTheContract drives one bucket from many goroutines
// with a random mix of acquires, tries, cancellations, deadlines, limit
// changes and a final stop, and checks what the user can see: every call
// gets exactly one answer, grants are in arrival order, and no interval
// holds more than the contract allows under the strictest limit used.
func TestRandomUseKeepsTheContract(t *testing.T) {
	for _, mode := range []scheduler.Mode{scheduler.LeakyBucket, scheduler.SlidingWindow} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runRandomUse(t, mode, rand.New(rand.NewPCG(1, 2))) })
		})
	}
}

func runRandomUse(t *testing.T, mode scheduler.Mode, rng *rand.Rand) {
	// The limit alternates between these two; the bound uses the faster.
	limits := []scheduler.Limit{{Rate: 50, Burst: 20, Mode: mode}, {Rate: 20, Burst: 10, Mode: mode}}
	s, err := scheduler.New(newSystem(), limits[0])
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{origin: time.Now()}
	var wg sync.WaitGroup
	answers := make(chan error, 100_000)

	for op := range 3000 {
		amount := float64(1 + rng.IntN(10))
		switch r := rng.IntN(100); {
		case r < 60:
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Acquire(context.Background(), amount)
				if err == nil {
					j.record(amount, op)
				}
				answers <- err
			}()
		case r < 75:
			ctx, cancel := context.WithTimeout(context.Background(),
				time.Duration(rng.IntN(2000))*time.Millisecond)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				err := s.Acquire(ctx, amount)
				if err == nil {
					j.record(amount, op)
				}
				answers <- err
			}()
		case r < 85:
			if s.TryAcquire(amount) {
				j.record(amount, op)
			}
		case r < 87:
			if err := s.SetLimit(context.Background(), limits[rng.IntN(2)]); err != nil {
				t.Fatal(err)
			}
		default:
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		synctest.Wait() // each request reaches the bucket before the next
	}

	time.Sleep(10 * time.Second)
	s.Stop()
	wg.Wait()
	close(answers)
	checkRandomUse(t, j, answers, mode, limits[0])
}

func checkRandomUse(t *testing.T, j *journal, answers chan error, mode scheduler.Mode,
	fastest scheduler.Limit) {
	var granted, stopped int
	for err := range answers {
		switch {
		case err == nil:
			granted++
		case errors.Is(err, scheduler.ErrStopped):
			stopped++
		case errors.Is(err, scheduler.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
		default:
			t.Errorf("unexpected answer %v", err)
		}
	}
	if granted == 0 || stopped == 0 {
		t.Errorf("%d granted, %d stopped: the mix exercised too little", granted, stopped)
	}

	// Starts were recorded after Acquire returned, so order by time only.
	slices.SortStableFunc(j.starts, func(a, b start) int { return int(a.at - b.at) })
	for _, w := range []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second} {
		bound := fastest.Burst + fastest.Rate*w.Seconds()
		if mode == scheduler.SlidingWindow {
			bound = fastest.Rate * float64((w+time.Second-1)/time.Second)
		}
		if most := maxInWindow(j.starts, w); most > bound+1e-9 {
			t.Errorf("%v units granted within %v, the contract allows %v", most, w, bound)
		}
	}
}
