package actors

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/dripsched/drip/messages"
)

// unitScale is how many internal units make one unit of amount. Amounts,
// rates and bursts are held as integers of 1/unitScale, so the arithmetic is
// exact and rounding never accumulates across grants.
const unitScale = 1_000_000

// maxUnits bounds every amount, rate and burst in internal units (about 9e9
// units of amount), so that any sum of a few of them fits in 63 bits.
const maxUnits = 1 << 53

// forever is a virtual duration no schedule reaches; costs that would be
// longer saturate to it.
const forever = int64(1) << 62

// rule is a validated limit in internal units.
type rule struct {
	mode  messages.Mode
	rate  uint64 // internal units per period
	per   uint64 // nanoseconds
	burst uint64 // capacity in leaky-bucket mode; equal to rate in sliding-window mode

	// burstCost is cost(burst), which every decision needs: kept, it saves
	// a 128-bit division per request.
	burstCost vtime
}

// CheckLimit reports whether l is a valid limit for a bucket. The error
// names the offending field and value.
func CheckLimit(l *messages.Limit) error {
	_, err := newRules(l)
	return err
}

// newRule validates l. The error names the offending field and value.
func newRule(l *messages.Limit) (rule, error) {
	if l == nil {
		return rule{}, fmt.Errorf("the limit is missing")
	}

	r := rule{mode: l.GetMode(), per: uint64(l.GetPerNanos())}
	if r.mode == messages.Mode_MODE_UNSPECIFIED {
		r.mode = messages.Mode_MODE_LEAKY_BUCKET
	}
	if _, ok := messages.Mode_name[int32(r.mode)]; !ok {
		return rule{}, fmt.Errorf("unknown mode %d", r.mode)
	}
	if l.GetPerNanos() <= 0 {
		return rule{}, fmt.Errorf("period %v is not positive",
			time.Duration(l.GetPerNanos()))
	}

	var err error
	if r.rate, err = limitUnits("rate", l.GetRate()); err != nil {
		return rule{}, err
	}
	r.burst = r.rate
	if r.mode == messages.Mode_MODE_LEAKY_BUCKET {
		if r.burst, err = limitUnits("burst", l.GetBurst()); err != nil {
			return rule{}, err
		}
	}

	r.burstCost = r.cost(r.burst)
	if r.burstCost.ns >= forever {
		return rule{}, fmt.Errorf("period %v is too long for rate %v",
			time.Duration(r.per), l.GetRate())
	}

	return r, nil
}

// limitUnits converts a rate or burst to internal units.
func limitUnits(field string, v float64) (uint64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0, fmt.Errorf("%s %v is not a positive number", field, v)
	}

	u := math.Round(v * unitScale)
	if u < 1 || u > maxUnits {
		return 0, fmt.Errorf("%s %v is outside [%v, %v]",
			field, v, 1.0/unitScale, float64(maxUnits)/unitScale)
	}

	return uint64(u), nil
}

// amountUnits converts a requested amount to internal units, or says why it
// cannot be granted by this rule.
func (r rule) amountUnits(amount float64) (uint64, messages.RejectReason, string) {
	if math.IsNaN(amount) || math.IsInf(amount, 0) || amount <= 0 {
		return 0, messages.RejectReason_REJECT_REASON_INVALID_AMOUNT,
			fmt.Sprintf("amount %v is not a positive number", amount)
	}

	u := math.Round(amount * unitScale)
	if u < 1 {
		return 0, messages.RejectReason_REJECT_REASON_INVALID_AMOUNT,
			fmt.Sprintf("amount %v is below the resolution %v", amount, 1.0/unitScale)
	}
	if u > float64(r.burst) {
		return 0, messages.RejectReason_REJECT_REASON_TOO_LARGE,
			fmt.Sprintf("amount %v exceeds the bucket's capacity %v", amount, toAmount(r.burst))
	}

	return uint64(u), messages.RejectReason_REJECT_REASON_UNSPECIFIED, ""
}

// limit returns r as a message.
func (r rule) limit() *messages.Limit {
	return &messages.Limit{
		Rate:     toAmount(r.rate),
		PerNanos: int64(r.per),
		Burst:    toAmount(r.burst),
		Mode:     r.mode,
	}
}

// toAmount converts internal units back to an amount.
func toAmount(u uint64) float64 {
	return float64(u) / unitScale
}

// vtime is an exact point or span of virtual time: ns + frac/rate
// nanoseconds, with 0 <= frac < rate of the rule it was made with.
type vtime struct {
	ns   int64
	frac uint64
}

// cost returns how long u internal units take to drain, saturating at
// forever.
func (r rule) cost(u uint64) vtime {
	hi, lo := bits.Mul64(u, r.per)
	if hi >= r.rate {
		return vtime{ns: forever}
	}

	q, rem := bits.Div64(hi, lo, r.rate)
	if q >= uint64(forever) {
		return vtime{ns: forever}
	}

	return vtime{ns: int64(q), frac: rem}
}

// add returns a+b under rule r.
func (r rule) add(a, b vtime) vtime {
	s := vtime{ns: a.ns + b.ns, frac: a.frac + b.frac}
	if s.frac >= r.rate {
		s.frac -= r.rate
		s.ns++
	}

	return s
}

// sub returns a-b under rule r.
func (r rule) sub(a, b vtime) vtime {
	d := vtime{ns: a.ns - b.ns, frac: a.frac}
	if d.frac < b.frac {
		d.frac += r.rate
		d.ns--
	}
	d.frac -= b.frac

	return d
}

// ceil returns the first whole nanosecond at or after v: wake-ups round up,
// so a grant is never early.
func (v vtime) ceil() int64 {
	if v.frac > 0 {
		return v.ns + 1
	}

	return v.ns
}

// after reports whether v is later than the whole nanosecond t.
func (v vtime) after(t int64) bool {
	return v.ns > t || (v.ns == t && v.frac > 0)
}

// units returns how many internal units drain in span d, rounded up, so
// a level derived from it is never lower than the exact one.
func (r rule) units(d vtime) uint64 {
	if d.ns < 0 {
		return 0
	}

	hi, lo := bits.Mul64(uint64(d.ns), r.rate)
	lo, carry := bits.Add64(lo, d.frac, 0)
	hi += carry
	if hi >= r.per {
		return maxUnits
	}

	q, rem := bits.Div64(hi, lo, r.per)
	if rem > 0 {
		q++
	}

	return q
}
