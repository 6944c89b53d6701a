package schedule

import (
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ms is shorthand for a number of milliseconds.
func ms(n float64) time.Duration {
	return time.Duration(n * float64(time.Millisecond))
}

func TestLeaky(t *testing.T) {
	tests := []struct {
		name        string
		amounts     []int
		rate, burst int
		want        []time.Duration
	}{
		{"burst goes at once", []int{1, 1, 1}, 10, 3, []time.Duration{0, 0, 0}},
		{"then one per 1/rate", []int{1, 1, 1, 1}, 10, 2, []time.Duration{0, 0, ms(100), ms(200)}},
		{"weights count in full", []int{1, 10, 1}, 10, 10, []time.Duration{0, ms(100), ms(200)}},
		{"rounded up to the nanosecond", []int{1, 1}, 3, 1, []time.Duration{0, 333333334}},
		{"burst one, per unit", []int{1, 1, 10}, 100, 1, []time.Duration{0, ms(10), ms(110)}},
		// 9 ones fit in a burst of 10; the 10 waits until the bucket is
		// empty (90 ms), then each unit takes 10 ms.
		{"a heavy one after a burst", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 10, 1, 1}, 100, 10,
			[]time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, ms(90), ms(100), ms(110)}},
	}
	for _, tt := range tests {
		if got := Leaky(tt.amounts, tt.rate, tt.burst, time.Second); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Leaky(%v, rate %d, burst %d) = %v, want %v",
				tt.name, tt.amounts, tt.rate, tt.burst, got, tt.want)
		}
	}
}

func TestSliding(t *testing.T) {
	tests := []struct {
		name    string
		amounts []int
		rate    int
		want    []time.Duration
	}{
		{"a window at once", []int{1, 1, 1}, 3, []time.Duration{0, 0, 0}},
		{"the next when the first leaves", []int{1, 1, 1, 1}, 3,
			[]time.Duration{0, 0, 0, time.Second}},
		{"a heavy one waits for room, FIFO", []int{2, 1, 2, 1}, 3,
			[]time.Duration{0, 0, time.Second, time.Second}},
		{"room frees unit by unit", []int{3, 3}, 3, []time.Duration{0, time.Second}},
		// 1+1+5 fit; the next 5 waits until they leave at 1 s, and the 1
		// joins it.
		{"a later window", []int{1, 1, 5, 5, 1}, 10,
			[]time.Duration{0, 0, 0, time.Second, time.Second}},
		// One that does not fit holds back the ones behind it, even those
		// that would fit.
		{"staggered", []int{2, 2, 2, 3, 1}, 4,
			[]time.Duration{0, 0, time.Second, 2 * time.Second, 2 * time.Second}},
	}
	for _, tt := range tests {
		if got := Sliding(tt.amounts, tt.rate, time.Second); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Sliding(%v, rate %d) = %v, want %v",
				tt.name, tt.amounts, tt.rate, got, tt.want)
		}
	}
}

func TestSlidingNeverGrantsMoreThanAWindow(t *testing.T) {
	got := Sliding([]int{1, 4, 1}, 3, time.Second)
	if want := []time.Duration{0, never, never}; !slices.Equal(got, want) {
		t.Errorf("Sliding([1 4 1], rate 3) = %v, want %v", got, want)
	}
}

// TestAllowedOnTheExactSchedule checks that on its own exact schedule
// every request was allowed exactly when it was granted.
func TestAllowedOnTheExactSchedule(t *testing.T) {
	amounts := []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 10, 1, 3, 1, 1, 7, 1, 1}
	for _, rate := range []int{3, 10, 100, 1000} {
		if exact := Leaky(amounts, rate, 10, time.Second); !slices.Equal(
			LeakyAllowed(amounts, exact, rate, 10, time.Second), exact) {
			t.Errorf("LeakyAllowed at rate %d = %v on its own schedule %v", rate,
				LeakyAllowed(amounts, exact, rate, 10, time.Second), exact)
		}
		if rate < 10 {
			continue
		}
		if exact := Sliding(amounts, rate, time.Second); !slices.Equal(
			SlidingAllowed(amounts, exact, rate, time.Second), exact) {
			t.Errorf("SlidingAllowed at rate %d = %v on its own schedule %v", rate,
				SlidingAllowed(amounts, exact, rate, time.Second), exact)
		}
	}
}

func TestAllowedAfterALateGrant(t *testing.T) {
	tests := []struct {
		name    string
		allowed func(amounts []int, got []time.Duration) []time.Duration
		got     []time.Duration
		want    []time.Duration
	}{
		// While a leaky bucket does not run empty, it drains whenever the
		// grants came: the fourth is still allowed at 200 ms, though the
		// third went 50 ms late.
		{"leaky: lateness is not passed on",
			func(a []int, g []time.Duration) []time.Duration {
				return LeakyAllowed(a, g, 10, 2, time.Second)
			},
			[]time.Duration{0, 0, ms(150), ms(200)}, []time.Duration{0, 0, ms(100), ms(200)}},
		// The one ahead counts from when it went: here the bucket ran empty
		// before it, and the fourth fits at once.
		{"leaky: the one ahead counts from when it went",
			func(a []int, g []time.Duration) []time.Duration {
				return LeakyAllowed(a, g, 10, 2, time.Second)
			},
			[]time.Duration{0, 0, ms(350), ms(360)}, []time.Duration{0, 0, ms(100), ms(350)}},
		// A window holds a grant for a period from when it really went.
		{"sliding: the window moves with the grants",
			func(a []int, g []time.Duration) []time.Duration {
				return SlidingAllowed(a, g, 1, time.Second)
			},
			[]time.Duration{ms(2), ms(1005), ms(2005)},
			[]time.Duration{0, ms(1002), ms(2005)}},
		// Only the granted ones: the rest of amounts is left out.
		{"a prefix", func(a []int, g []time.Duration) []time.Duration {
			return SlidingAllowed(a, g, 1, time.Second)
		}, []time.Duration{ms(1)}, []time.Duration{0}},
	}
	for _, tt := range tests {
		if got := tt.allowed([]int{1, 1, 1, 1}, tt.got); !slices.Equal(got, tt.want) {
			t.Errorf("%s: allowed for grants at %v = %v, want %v", tt.name, tt.got, got, tt.want)
		}
	}
}
