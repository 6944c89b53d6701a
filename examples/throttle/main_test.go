package main

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ms is shorthand for a number of milliseconds.
func ms(n int) time.Duration {
	return time.Duration(n) * time.Millisecond
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("parseFlags(nil): %v", err)
	}
	want := []string{"leaky", "leaky1", "sliding"}
	if cfg.n != 500 || cfg.rate != 100 || !cfg.weighted || !slices.Equal(cfg.modes, want) {
		t.Errorf("parseFlags(nil) = %+v, want 500 weighted requests at 100/s in %v", cfg, want)
	}

	for _, args := range [][]string{{"-mode", "fast"}, {"-n", "0"}, {"-rate", "5"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestScenarioBounds(t *testing.T) {
	tests := []struct {
		name     string
		weighted bool
		burst    int
		bound    int
	}{
		{"leaky", true, 100, 200},
		{"leaky1", false, 1, 101},
		// No bucket grants more than its burst, so it fits the largest request.
		{"leaky1", true, 10, 110},
		{"sliding", true, 0, 100},
	}
	for _, tt := range tests {
		sc, ok := newScenario(tt.name, config{rate: 100, weighted: tt.weighted})
		if !ok || sc.burst != tt.burst || sc.bound() != tt.bound {
			t.Errorf("newScenario(%q, weighted %v) = %+v (bound %d), want burst %d, bound %d",
				tt.name, tt.weighted, sc, sc.bound(), tt.burst, tt.bound)
		}
	}
}

func TestMaxInWindow(t *testing.T) {
	tests := []struct {
		name    string
		at      []time.Duration
		amounts []int
		want    int
	}{
		{"empty", nil, nil, 0},
		{"one", []time.Duration{ms(5)}, []int{3}, 3},
		// A start exactly one window later is outside: windows are half-open.
		{"edge", []time.Duration{0, ms(1000)}, []int{1, 1}, 1},
		{"just inside", []time.Duration{0, ms(999)}, []int{1, 1}, 2},
		// Start order need not be time order; simultaneous starts all count.
		{"unordered", []time.Duration{ms(1500), ms(200), ms(1100), ms(200)},
			[]int{1, 10, 2, 1}, 13},
		{"best window late", []time.Duration{0, ms(600), ms(1200), ms(1300)},
			[]int{5, 1, 1, 10}, 12},
	}
	for _, tt := range tests {
		if got := maxInWindow(tt.at, tt.amounts, time.Second); got != tt.want {
			t.Errorf("%s: maxInWindow(%v, %v) = %d, want %d",
				tt.name, tt.at, tt.amounts, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}

	tests := []struct {
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{[]time.Duration{ms(7)}, 0.99, ms(7)},
		{[]time.Duration{ms(1), ms(2), ms(3), ms(4)}, 0.50, ms(2)},
		{[]time.Duration{ms(1), ms(2), ms(3), ms(4)}, 0.99, ms(4)},
		{hundred, 0.50, ms(50)},
		{hundred, 0.99, ms(99)},
		{hundred, 1, ms(100)},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.q); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.q, got, tt.want)
		}
	}
}

func TestLateness(t *testing.T) {
	at := []time.Duration{ms(3), ms(10), ms(19)}
	ideal := []time.Duration{0, ms(12), ms(10)}

	late := lateness(at, ideal)
	if want := []time.Duration{ms(-2), ms(3), ms(9)}; !slices.Equal(late, want) {
		t.Errorf("lateness(%v, %v) = %v, want %v", at, ideal, late, want)
	}
	if got := countBelow(late, 0); got != 1 {
		t.Errorf("countBelow(%v, 0) = %d, want 1", late, got)
	}
}

func TestOvertaken(t *testing.T) {
	tests := []struct {
		name      string
		at        []time.Duration // in submission order
		tolerance time.Duration
		want      int
	}{
		{"in order", []time.Duration{0, 0, ms(10), ms(20)}, 0, 0},
		{"one swap", []time.Duration{0, ms(20), ms(10)}, 0, 1},
		// The seed's complaint: a large request waits while small ones pass.
		{"large one starved", []time.Duration{ms(90), ms(10), ms(20), ms(30)}, 0, 1},
		{"two passed by one", []time.Duration{ms(50), ms(60), ms(10)}, 0, 2},
		{"within tolerance", []time.Duration{ms(12), ms(10), ms(20)}, ms(5), 0},
		{"beyond tolerance", []time.Duration{ms(16), ms(10), ms(20)}, ms(5), 1},
	}
	for _, tt := range tests {
		if got := overtaken(tt.at, tt.tolerance); got != tt.want {
			t.Errorf("%s: overtaken(%v, %v) = %d, want %d",
				tt.name, tt.at, tt.tolerance, got, tt.want)
		}
	}
}

// TestScenarioOnFakeClock runs every mode on synctest's fake clock, where a
// start is exactly its grant, so the contract can be checked with no slack.
func TestScenarioOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config{n: 250, rate: 100, modes: []string{"leaky", "leaky1", "sliding"},
			weighted: true}

		rep, err := run(cfg)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if err := rep.check(); err != nil {
			t.Errorf("check: %v", err)
		}

		for _, r := range rep.results {
			if r.requests != cfg.n || r.units != 475 {
				t.Errorf("%s: %d requests of %d units, want %d of 475",
					r.name, r.requests, r.units, cfg.n)
			}
			if r.maxWindow > r.bound {
				t.Errorf("%s: %d units in one window, bound %d", r.name, r.maxWindow, r.bound)
			}
			if r.overtaken != 0 {
				t.Errorf("%s: %d requests overtaken", r.name, r.overtaken)
			}

			// On a fake clock the schedule is exact: never early, never late.
			if r.early != 0 || r.lateP99 != 0 || r.elapsed != r.ideal {
				t.Errorf("%s: %d early, late p99 %v, elapsed %v, ideal %v",
					r.name, r.early, r.lateP99, r.elapsed, r.ideal)
			}
		}
	})
}
