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
type Limit struct {
	Rate  float64       // units per Per; required, > 0
	Per   time.Duration // default time.Second
	Burst float64       // bucket capacity in LeakyBucket mode; default Rate
	Mode  Mode          // LeakyBucket (default) or SlidingWindow
}

// Validate reports whether l is a valid limit. The error wraps
// ErrInvalidLimit and names the offending field and value.
func (l Limit) Validate() error {
	_, err := l.message()
	return err
}

// message returns l with its defaults filled in, as a message.
func (l Limit) message() (*messages.Limit, error) {
	m := &messages.Limit{Rate: l.Rate, PerNanos: int64(l.Per), Burst: l.Burst}
	if l.Per == 0 {
		m.PerNanos = int64(time.Second)
	}
	if l.Burst == 0 {
		m.Burst = l.Rate
	}

	switch l.Mode {
	case LeakyBucket:
		m.Mode = messages.Mode_MODE_LEAKY_BUCKET
	case SlidingWindow:
		m.Mode = messages.Mode_MODE_SLIDING_WINDOW
	default:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidLimit, int(l.Mode))
	}

	if err := actors.CheckLimit(m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidLimit, err)
	}

	return m, nil
}

// limitOf converts a limit message back.
func limitOf(m *messages.Limit) Limit {
	l := Limit{Rate: m.GetRate(), Per: time.Duration(m.GetPerNanos()), Burst: m.GetBurst()}
	if m.GetMode() == messages.Mode_MODE_SLIDING_WINDOW {
		l.Mode = SlidingWindow
	}

	return l
}
