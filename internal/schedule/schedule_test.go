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
