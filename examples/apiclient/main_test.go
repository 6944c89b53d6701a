package main

import (
	"net/http"
	"sync"
	"testing"
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
	want := config{n: 1000, rate: 100, workers: 200, margin: defaultMargin, warm: true}
	if err != nil || cfg != want {
		t.Errorf("parseFlags(nil) = %+v, %v; want %+v", cfg, err, want)
	}
	if cfg, err := parseFlags([]string{"-margin", "0", "-warm=false"}); err != nil ||
		cfg.margin != 0 || cfg.warm {
		t.Errorf("parseFlags(-margin 0 -warm=false) = %+v, %v; want no margin, no warm-up",
			cfg, err)
	}

	for _, args := range [][]string{{"-n", "0"}, {"-rate", "-1"}, {"-c", "0"},
		{"-margin", "-1ms"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestIdealElapsed(t *testing.T) {
	tests := []struct {
		n, rate int
		want    time.Duration
	}{
		{1, 100, 0},
		{100, 100, 0}, // the first window goes at once
		{101, 100, time.Second},
		{300, 100, 2 * time.Second},
		{1000, 100, 9 * time.Second},
		{1001, 100, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := idealElapsed(tt.n, tt.rate, time.Second); got != tt.want {
			t.Errorf("idealElapsed(%d, %d) = %v, want %v", tt.n, tt.rate, got, tt.want)
		}
	}
}

func TestWindowAdmit(t *testing.T) {
	w := &window{limit: 2, per: time.Second}
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0},
		{ms(100), true, 0},
		{ms(400), false, ms(600)}, // the one at 0 leaves at 1s
		{ms(999), false, ms(1)},
		{ms(1000), true, 0}, // windows are half-open: 0 and 1s share none
		{ms(1050), false, ms(50)},
		{ms(1100), true, 0},
		{ms(5000), true, 0},
	}
	for i, s := range steps {
		wait, ok := w.admit(s.at)
		if ok != s.ok || wait != s.wait {
			t.Errorf("step %d: admit(%v) = %v, %v; want %v, %v", i, s.at, wait, ok, s.wait, s.ok)
		}
	}
}

func TestWindowCounts(t *testing.T) {
	tests := []struct {
		name     string
		at       []time.Duration // sorted
		busiest  int
		headroom time.Duration
		ok       bool
	}{
		{"empty", nil, 0, 0, false},
		{"too few", []time.Duration{0, ms(10)}, 2, 0, false},
		{"spaced", []time.Duration{0, ms(10), ms(1005), ms(1030)}, 2, ms(5), true},
		{"one too many", []time.Duration{0, ms(10), ms(990), ms(2000)}, 3, ms(-10), true},
		{"edge", []time.Duration{0, 0, ms(1000)}, 2, 0, true},
	}
	for _, tt := range tests {
		if got := busiestWindow(tt.at, time.Second); got != tt.busiest {
			t.Errorf("%s: busiestWindow = %d, want %d", tt.name, got, tt.busiest)
		}
		headroom, ok := closestWindow(tt.at, 2, time.Second)
		if headroom != tt.headroom || ok != tt.ok {
			t.Errorf("%s: closestWindow = %v, %v; want %v, %v",
				tt.name, headroom, ok, tt.headroom, tt.ok)
		}
	}
}

// TestServerRefusesOneTooMany checks that the server is a real limit: with
// no scheduler, the request beyond the limit is refused, with a
// Retry-After. It assumes the requests arrive within one second.
func TestServerRefusesOneTooMany(t *testing.T) {
	const limit = 20
	srv, err := startServer(limit, per)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	c := &http.Client{Transport: base}

	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := ""
	var wg sync.WaitGroup
	for range limit + 1 {
		wg.Go(func() {
			resp, err := c.Get("http://" + srv.host + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()

			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				retryAfter = resp.Header.Get("Retry-After")
			}
		})
	}
	wg.Wait()

	if statuses[http.StatusOK] != limit || statuses[http.StatusTooManyRequests] != 1 ||
		retryAfter != "1" {
		t.Errorf("statuses %v, Retry-After %q; want %d 200s and one 429 with Retry-After 1",
			statuses, retryAfter, limit)
	}
	if refused, busiest, _, _ := srv.stats(limit); refused != 1 || busiest != limit+1 {
		t.Errorf("server counted %d refused, %d in one window; want 1, %d",
			refused, busiest, limit+1)
	}
}

// TestRunStaysUnderTheServerLimit runs the example in real time: with the
// default margin the server refuses nothing, and the run is within 2% of
// the ideal schedule. The bounds are one-sided: the scheduler never grants
// early, and late only by the margin and the time a request takes to start.
//
// The rate is 10, not 100: the spread of delivery delays grows with the
// number of requests a window releases at once, and under -race a window
// of 100 needed a margin of up to 45 ms, and one of 30 up to 20 ms while
// other tests ran; a window of 10 needs a few.
func TestRunStaysUnderTheServerLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s of real time")
	}
	cfg := config{n: 30, rate: 10, workers: 20, margin: defaultMargin, warm: true}

	sum, err := run(cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.sent != cfg.n || sum.ok != cfg.n || sum.tooMany != 0 || sum.refused != 0 {
		t.Errorf("%d sent, %d answered 200, %d 429 (server: %d refused); want %d, all 200",
			sum.sent, sum.ok, sum.tooMany, sum.refused, cfg.n)
	}
	if sum.busiest > cfg.rate {
		t.Errorf("%d requests arrived in one window, the limit is %d", sum.busiest, cfg.rate)
	}

	ideal := 2 * time.Second
	if sum.ideal != ideal {
		t.Errorf("ideal %v, want %v", sum.ideal, ideal)
	}
	if early := ideal + 2*cfg.margin; sum.elapsed < early {
		t.Errorf("elapsed %v, before the limit allows, %v", sum.elapsed, early)
	}
	if late := ideal + ideal/50 + 50*time.Millisecond; sum.elapsed > late {
		t.Errorf("elapsed %v, more than 2%% + 50ms over the ideal %v", sum.elapsed, ideal)
	}
}
