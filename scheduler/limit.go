package scheduler

import (
	"fmt"
	"time"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/messages"
)

// Mode selects how a bucket counts what it has granted.
type Mode int

const (
	// LeakyBucket holds a level between 0 and Burst that drains at Rate per
	// Per. A request fits when level+amount <= Burst. It is the default.
	LeakyBucket Mode = iota

	// SlidingWindow grants at most Rate units in any window [t, t+Per).
	// Burst plays no part.
	SlidingWindow
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case LeakyBucket:
		return "leaky-bucket"
	case SlidingWindow:
		return "sliding-window"
	}

	return fmt.Sprintf("Mode(%d)", int(m))
}

// Limit is a bucket's rule: at most Rate units per Per.
//
// In LeakyBucket mode the amount granted in any interval of length t is at
// most Burst + Rate*t/Per; in SlidingWindow mode it is at most Rate in any
// window of length Per. Amounts, rates and bursts are resolved to one
// millionth of a unit.
//
// Bands adds more rules that hold at the same time, as real APIs have them:
// 100 per second and 5,000 per hour, say. A request is granted only when
// every band allows it, and is charged to all of them at once; the FIFO
// order is the bucket's, across all bands.
type Limit struct {
	Rate  float64       // units per Per; required, > 0
	Per   time.Duration // default time.Second
	Burst float64       // bucket capacity in LeakyBucket mode; default Rate
	Mode  Mode          // LeakyBucket (default) or SlidingWindow
	Bands []Band        // more rules that must all allow a grant; at most 15
}

// Band is one more rule of a Limit. Its fields mean what Limit's do, with
// the same defaults.
type Band struct {
	Rate  float64
	Per   time.Duration
	Burst float64
	Mode  Mode
}

// Validate reports whether l is a valid limit. The error wraps
// ErrInvalidLimit and names the offending field and value.
func (l Limit) Validate() error {
	_, err := l.message()
	return err
}

// message returns l with its defaults filled in, as a message.
func (l Limit) message() (*messages.Limit, error) {
	first, err := Band{Rate: l.Rate, Per: l.Per, Burst: l.Burst, Mode: l.Mode}.message()
	if err != nil {
		return nil, err
	}

	m := &messages.Limit{Rate: first.GetRate(), PerNanos: first.GetPerNanos(),
		Burst: first.GetBurst(), Mode: first.GetMode()}
	for i, b := range l.Bands {
		band, err := b.message()
		if err != nil {
			return nil, fmt.Errorf("%w (band %d)", err, i+1)
		}
		m.Bands = append(m.Bands, band)
	}

	if err := actors.CheckLimit(m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidLimit, err)
	}

	return m, nil
}

// message returns b with its defaults filled in, as a message; its mode is
// checked here, the rest by actors.CheckLimit.
func (b Band) message() (*messages.Band, error) {
	m := &messages.Band{Rate: b.Rate, PerNanos: int64(b.Per), Burst: b.Burst}
	if b.Per == 0 {
		m.PerNanos = int64(time.Second)
	}
	if b.Burst == 0 {
		m.Burst = b.Rate
	}

	switch b.Mode {
	case LeakyBucket:
		m.Mode = messages.Mode_MODE_LEAKY_BUCKET
	case SlidingWindow:
		m.Mode = messages.Mode_MODE_SLIDING_WINDOW
	default:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidLimit, int(b.Mode))
	}

	return m, nil
}

// limitOf converts a limit message back.
func limitOf(m *messages.Limit) Limit {
	l := Limit{Rate: m.GetRate(), Per: time.Duration(m.GetPerNanos()), Burst: m.GetBurst(),
		Mode: modeOf(m.GetMode())}
	for _, b := range m.GetBands() {
		l.Bands = append(l.Bands, Band{Rate: b.GetRate(), Per: time.Duration(b.GetPerNanos()),
			Burst: b.GetBurst(), Mode: modeOf(b.GetMode())})
	}

	return l
}

// modeOf converts a mode message back.
func modeOf(m messages.Mode) Mode {
	if m == messages.Mode_MODE_SLIDING_WINDOW {
		return SlidingWindow
	}

	return LeakyBucket
}
