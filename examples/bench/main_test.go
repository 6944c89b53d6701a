package main

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gonum.org/v1/plot/plotutil"
)

func TestMain(m *testing.M) {
	serveRemoteIfChild() // the remote section runs this binary as its children
	goleak.VerifyTestMain(m)
}

// ms is shorthand for a number of milliseconds.
func ms(n float64) time.Duration {
	return time.Duration(n * float64(time.Millisecond))
}

func TestWindowStats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		grants     []grant
		limit      int
		most, over int
	}{
		{"none", nil, 1, 0, 0},
		{"windows are half-open", []grant{{0, 2}, {time.Second, 2}}, 2, 2, 0},
		{"one nanosecond inside", []grant{{0, 2}, {time.Second - 1, 2}}, 3, 4, 1},
		{"a batch is one window", []grant{{0, 1}, {0, 1}, {0, 1}}, 2, 3, 1},
		{"later windows count too", []grant{{0, 1}, {ms(500), 1}, {ms(1200), 5}}, 5, 6, 1},
	}
	for _, tt := range tests {
		most, over := windowStats(tt.grants, time.Second, tt.limit)
		if most != tt.most || over != tt.over {
			t.Errorf("%s: windowStats(%v, 1s, %d) = %d, %d; want %d, %d",
				tt.name, tt.grants, tt.limit, most, over, tt.most, tt.over)
		}
	}
}

func TestSteadyRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		grants []grant
		end    time.Duration
		want   float64
	}{
		{"no time after the first window", []grant{{0, 5}}, time.Second, 0},
		{"one instant has no slope", []grant{{0, 9}, {ms(1500), 1}, {ms(1500), 1}},
			2 * time.Second, 0},
		{"the first window is left out", []grant{{0, 100}, {time.Second, 1}, {ms(1500), 1},
			{2 * time.Second, 1}}, 3 * time.Second, 2},
		{"a weighted line", []grant{{time.Second, 1}, {ms(1100), 1}, {ms(1200), 1},
			{ms(1500), 3}}, 2 * time.Second, 10},
		{"a staircase of whole steps", []grant{{time.Second, 2}, {time.Second, 3},
			{2 * time.Second, 2}, {2 * time.Second, 3}}, 3 * time.Second, 5},
		{"the end is left out", []grant{{time.Second, 1}, {ms(1500), 1}, {2 * time.Second, 10}},
			2 * time.Second, 2},
	}
	for _, tt := range tests {
		if got := steadyRate(tt.grants, time.Second, tt.end); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: steadyRate(%v, 1s, %v) = %v, want %v",
				tt.name, tt.grants, tt.end, got, tt.want)
		}
	}
}

// TestGrantsTimedAtTheBucket runs the sliding window timed by the bucket's
// clock for less than a period: exactly the first window is granted, in
// order, and no window holds more than the rate.
func TestGrantsTimedAtTheBucket(t *testing.T) {
	sys := newSystem()
	defer stopTimer(sys)
	l := limiters[slices.IndexFunc(limiters, func(l limiter) bool {
		return l.name == limDripSlidingAt
	})]

	const r, d = 40, 300 * time.Millisecond // the mix's 20 units divide r
	run, err := runLimiter(sys, l, r, d)
	if err != nil {
		t.Fatal(err)
	}

	want := 0
	for _, at := range l.ideal(run.amounts, r) {
		if at < d {
			want++
		}
	}
	if run.granted != want || run.most != r || run.over != 0 || run.fifo != 0 {
		t.Errorf("granted %d (want %d), most %d in a window (want %d), %d windows over, "+
			"%d FIFO violations", run.granted, want, run.most, r, run.over, run.fifo)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{sorted, 0.5, 5},
		{sorted, 0.99, 10},
		{sorted, 1, 10},
		{sorted, 0.01, 1},
		{[]time.Duration{-3, 7}, 0.5, -3},
	}
	for _, tt := range tests {
		if got := percentile(tt.values, tt.q); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.values, tt.q, got, tt.want)
		}
	}
}

func TestLateness(t *testing.T) {
	t.Parallel()
	at := []time.Duration{ms(5), notGranted, ms(1), ms(30)}
	ideal := []time.Duration{ms(2), ms(3), ms(4), ms(10)}
	want := []time.Duration{ms(-3), ms(3), ms(20)}
	if got := lateness(at, ideal); !slices.Equal(got, want) {
		t.Errorf("lateness(%v, %v) = %v, want %v", at, ideal, got, want)
	}
}

func TestFIFOViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		at        []time.Duration
		tolerance time.Duration
		want      int
	}{
		{"in order", []time.Duration{0, ms(1), ms(1), ms(2)}, 0, 0},
		{"one overtakes", []time.Duration{ms(10), ms(5), ms(20)}, 0, 1},
		{"every later one counts", []time.Duration{ms(10), ms(1), ms(2), ms(3)}, 0, 3},
		{"within tolerance", []time.Duration{ms(10), ms(8)}, ms(5), 0},
		{"beyond tolerance", []time.Duration{ms(10), ms(4)}, ms(5), 1},
		{"granted before one never granted", []time.Duration{notGranted, ms(1)}, ms(5), 1},
		{"not granted is no violation", []time.Duration{ms(1), notGranted}, 0, 0},
	}
	for _, tt := range tests {
		if got := fifoViolations(tt.at, tt.tolerance); got != tt.want {
			t.Errorf("%s: fifoViolations(%v, %v) = %d, want %d",
				tt.name, tt.at, tt.tolerance, got, tt.want)
		}
	}
}

func TestParseFlagsQuick(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{"-quick", "-accuracy-time", "3s", "-rates", "5,7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.accuracyTime != 3*time.Second || cfg.idleTime != 2*time.Second ||
		!slices.Equal(cfg.rates, []int{5, 7}) {
		t.Errorf("parseFlags: accuracy %v, idle %v, rates %v; want 3s, 2s, [5 7]",
			cfg.accuracyTime, cfg.idleTime, cfg.rates)
	}
	if _, err := parseFlags([]string{"-sections", "speed"}); err == nil ||
		!strings.Contains(err.Error(), `"speed"`) {
		t.Errorf("parseFlags(-sections speed) = %v, want an error naming it", err)
	}
}

// TestSmallestRunWritesReport runs every section at its smallest and
// checks that the report and plots exist and name every peer.
func TestSmallestRunWritesReport(t *testing.T) {
	dir := t.TempDir()
	cfg := config{out: dir, command: "go run ./examples/bench (test)", sections: allSections,
		benchTime: 20 * time.Millisecond, goroutines: []int{1, 4},
		accuracyTime: 600 * time.Millisecond, rates: []int{50},
		waiters: 1000, keys: 100, timerSizes: []int{10}, idleBuckets: 10,
		idleTime: 50 * time.Millisecond}
	if err := run(cfg, io.Discard); err != nil {
		t.Fatal(err)
	}

	report := readFile(t, filepath.Join(dir, "BENCHMARKS.md"))
	for _, want := range []string{peerDrip, peerXRate, peerUber, peerFuture, peerRaw, actorDrip,
		actorRaw, limDripSliding, limDripLeaky, limDripSlidingAt, limDripLeakyAt, limXRate,
		limUber, cfg.command,
		plotGrants, plotLateness, plotThroughput, "## Targets", "## Remote", "## Scale"} {
		if !strings.Contains(report, want) {
			t.Errorf("BENCHMARKS.md does not mention %q", want)
		}
	}

	// Each curve has a colour of its own: find every one in its picture.
	plots := map[string]int{
		plotThroughput: len(goroutinePeers) + 2, // and the two actor-to-actor lines
		plotGrants:     len(limiters),
		plotLateness:   len(limiters),
	}
	for name, curves := range plots {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for j := range curves {
			if c := plotutil.Color(j); !hasColour(img, c) {
				t.Errorf("%s has no pixel of curve %d's colour %v", name, j, c)
			}
		}
	}
}

// hasColour reports whether some pixel of img is exactly c.
func hasColour(img image.Image, c color.Color) bool {
	r0, g0, b0, _ := c.RGBA()
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r == r0 && g == g0 && b == b0 {
				return true
			}
		}
	}

	return false
}

// readFile returns the contents of path, failing t if it cannot be read.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	return string(b)
}
