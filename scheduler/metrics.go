package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"
)

// The metrics a Scheduler records through WithMeterProvider. Every one
// carries the attribute drip.bucket: the key, for a Scheduler of a Keyed,
// else the bucket's PID id. Acquire, TryAcquire and Go record as they
// return, so a bucket used through its messages directly shows only in the
// gauges. Rejections and waits reach the MeterProvider at once; grants are
// counted in the Scheduler and added to it at each collection, which keeps
// the SDK's locks out of the hot path.
const (
	// MetricGrants counts granted requests, by Acquire, TryAcquire and Go.
	MetricGrants = "drip.grants"

	// MetricGrantedAmount sums the amounts granted.
	MetricGrantedAmount = "drip.granted.amount"

	// MetricRejections counts requests that were not granted, with the
	// attribute drip.reason saying why (see AttributeReason).
	MetricRejections = "drip.rejections"

	// MetricWait is a histogram of the time from a call to its grant, in
	// seconds.
	MetricWait = "drip.wait.duration"

	// MetricLevel is the bucket's level (see Status.Level).
	MetricLevel = "drip.level"

	// MetricQueueLength is the number of requests waiting.
	MetricQueueLength = "drip.queue.length"

	// MetricQueueAmount is the total amount waiting.
	MetricQueueAmount = "drip.queue.amount"
)

// AttributeBucket names the bucket a measurement belongs to, and
// AttributeReason why a request was rejected: invalid_amount, too_large,
// queue_full, deadline (ErrDeadline), canceled (the context ended, which
// includes its deadline passing while the request waited), stopped,
// unreachable, unknown_key, restarted, would_wait (TryAcquire, when the
// amount does not fit now or someone waits) or other.
const (
	AttributeBucket = "drip.bucket"
	AttributeReason = "drip.reason"
)

// meterName is the instrumentation scope of drip's instruments.
const meterName = "github.com/dripsched/drip/scheduler"

// statusTimeout bounds the Status calls made for the gauges at each
// collection. A bucket owns its state and is the only one to read it, so a
// gauge must ask it; a bucket that does not answer in time is left out of
// that collection rather than holding the reader up.
const statusTimeout = time.Second

// waitBuckets are the histogram boundaries of MetricWait, in seconds: from
// a grant that comes at once to one that waits a minute. A View can change
// them.
var waitBuckets = []float64{0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// reason is why a request was rejected, as an index into reasons.
type reason int

const (
	reasonInvalidAmount reason = iota
	reasonTooLarge
	reasonQueueFull
	reasonDeadline
	reasonCanceled
	reasonStopped
	reasonUnreachable
	reasonUnknownKey
	reasonRestarted
	reasonWouldWait
	reasonOther
	reasonCount
)

// reasons are the values of AttributeReason, by reason.
var reasons = [reasonCount]string{
	reasonInvalidAmount: "invalid_amount",
	reasonTooLarge:      "too_large",
	reasonQueueFull:     "queue_full",
	reasonDeadline:      "deadline",
	reasonCanceled:      "canceled",
	reasonStopped:       "stopped",
	reasonUnreachable:   "unreachable",
	reasonUnknownKey:    "unknown_key",
	reasonRestarted:     "restarted",
	reasonWouldWait:     "would_wait",
	reasonOther:         "other",
}

// reasonOf classifies the error of a call that was not granted.
func reasonOf(err error) reason {
	switch {
	case errors.Is(err, ErrInvalidAmount):
		return reasonInvalidAmount
	case errors.Is(err, ErrTooLarge):
		return reasonTooLarge
	case errors.Is(err, ErrQueueFull):
		return reasonQueueFull
	case errors.Is(err, ErrDeadline):
		return reasonDeadline
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return reasonCanceled
	case errors.Is(err, ErrStopped):
		return reasonStopped
	case errors.Is(err, ErrUnreachable):
		return reasonUnreachable
	case errors.Is(err, ErrUnknownKey):
		return reasonUnknownKey
	case errors.Is(err, ErrRestarted):
		return reasonRestarted
	case errors.Is(err, errWouldWait):
		return reasonWouldWait
	}

	return reasonOther
}

// instruments are drip's instruments from one MeterProvider.
type instruments struct {
	meter         metric.Meter
	grants        metric.Int64Counter
	grantedAmount metric.Float64Counter
	rejections    metric.Int64Counter
	wait          metric.Float64Histogram
	level         metric.Float64ObservableGauge
	queueLength   metric.Int64ObservableGauge
	queueAmount   metric.Float64ObservableGauge
}

// newInstruments makes the instruments from mp. The SDK hands out the same
// instrument again when asked twice, so every Scheduler may ask.
func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	m := mp.Meter(meterName)
	in := &instruments{meter: m}
	var errs [7]error

	in.grants, errs[0] = m.Int64Counter(MetricGrants, metric.WithUnit("{request}"),
		metric.WithDescription("Requests granted."))
	in.grantedAmount, errs[1] = m.Float64Counter(MetricGrantedAmount, metric.WithUnit("{unit}"),
		metric.WithDescription("Amount granted."))
	in.rejections, errs[2] = m.Int64Counter(MetricRejections, metric.WithUnit("{request}"),
		metric.WithDescription("Requests not granted, by reason."))
	in.wait, errs[3] = m.Float64Histogram(MetricWait, metric.WithUnit("s"),
		metric.WithDescription("Time from a call to its grant."),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	in.level, errs[4] = m.Float64ObservableGauge(MetricLevel, metric.WithUnit("{unit}"),
		metric.WithDescription("Amount in the bucket, or granted within the last period."))
	in.queueLength, errs[5] = m.Int64ObservableGauge(MetricQueueLength,
		metric.WithUnit("{request}"), metric.WithDescription("Requests waiting."))
	in.queueAmount, errs[6] = m.Float64ObservableGauge(MetricQueueAmount,
		metric.WithUnit("{unit}"), metric.WithDescription("Amount waiting."))

	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("scheduler: metrics: %w", err)
	}

	return in, nil
}

// register calls observe at each collection, until the returned
// registration is unregistered.
func (in *instruments) register(observe func(context.Context, metric.Observer)) (
	metric.Registration, error) {
	callback := func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		observe(ctx, o)
		return nil
	}

	reg, err := in.meter.RegisterCallback(callback, in.level, in.queueLength, in.queueAmount)
	if err != nil {
		return nil, fmt.Errorf("scheduler: metrics: %w", err)
	}

	return reg, nil
}

// observe reports st as bucket's gauges.
func (in *instruments) observe(o metric.Observer, bucket *bucketMetrics, st Status) {
	o.ObserveFloat64(in.level, st.Level, bucket.observe...)
	o.ObserveInt64(in.queueLength, int64(st.Queued), bucket.observe...)
	o.ObserveFloat64(in.queueAmount, st.QueuedAmount, bucket.observe...)
}

// bucketMetrics records one bucket's calls. What a grant records is kept
// off the SDK's locks: its count and amount go to atomics here, which
// flush adds to the SDK's counters at each collection, and only its wait
// goes to the SDK at once (a histogram cannot be summed up ahead). The
// option slices are built once, so that recording allocates nothing.
type bucketMetrics struct {
	in      *instruments
	name    attribute.KeyValue
	add     []metric.AddOption
	record  []metric.RecordOption
	observe []metric.ObserveOption
	reasons [reasonCount]atomic.Pointer[[]metric.AddOption] // built on first use

	grants  atomic.Uint64 // grants since the last flush
	granted atomic.Uint64 // math.Float64bits of their amount

	reg metric.Registration // the gauges' callback, for a Scheduler made by New

	// For a Scheduler of a Keyed: whether the key was used since the last
	// collection, and whether its bucket had not drained at it.
	keyed   bool
	used    atomic.Bool
	pending atomic.Bool
}

// newBucketMetrics returns the recorder for the bucket named bucket.
func newBucketMetrics(in *instruments, bucket string) *bucketMetrics {
	name := attribute.String(AttributeBucket, bucket)
	set := metric.WithAttributeSet(attribute.NewSet(name))

	return &bucketMetrics{in: in, name: name, add: []metric.AddOption{set},
		record: []metric.RecordOption{set}, observe: []metric.ObserveOption{set}}
}

// instrument makes s record its calls and report its bucket's gauges
// through mp; a nil mp records nothing. The bucket is named name, or by its
// PID id if name is empty.
func (s *Scheduler) instrument(mp metric.MeterProvider, name string) error {
	if mp == nil {
		return nil
	}
	in, err := newInstruments(mp)
	if err != nil {
		return err
	}

	if name == "" {
		name = s.req.Bucket().GetId()
	}
	b := newBucketMetrics(in, name)
	b.reg, err = in.register(func(ctx context.Context, o metric.Observer) {
		b.flush()
		if st, err := s.Status(ctx); err == nil { // a stopped bucket has no gauges
			in.observe(o, b, st)
		}
	})
	if err != nil {
		return err
	}
	s.metrics = b

	return nil
}

// finish records the end of a call for amount that began at start, with
// the error *err: a deferred call, so that it sees the result.
func (b *bucketMetrics) finish(ctx context.Context, amount float64, start time.Time, err *error) {
	b.ended(ctx, amount, start, *err)
}

// ended records the end of a call for amount that began at start: a grant
// and its wait if err is nil, else a rejection for err's reason.
func (b *bucketMetrics) ended(ctx context.Context, amount float64, start time.Time, err error) {
	if b.keyed && !b.used.Load() { // a plain load first: the flag is hot
		b.used.Store(true)
	}

	// The SDK drops what is recorded with an ended context, and a call
	// that ended with its context must still count.
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}

	if err != nil {
		b.in.rejections.Add(ctx, 1, b.reason(reasonOf(err))...)
		return
	}
	b.in.wait.Record(ctx, time.Since(start).Seconds(), b.record...)
	b.grants.Add(1)
	for {
		old := b.granted.Load()
		if b.granted.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+amount)) {
			break
		}
	}
}

// reason returns the options that name b and r.
func (b *bucketMetrics) reason(r reason) []metric.AddOption {
	if opts := b.reasons[r].Load(); opts != nil {
		return *opts
	}

	set := attribute.NewSet(b.name, attribute.String(AttributeReason, reasons[r]))
	opts := []metric.AddOption{metric.WithAttributeSet(set)}
	b.reasons[r].CompareAndSwap(nil, &opts) // a racing call built the same

	return opts
}

// flush adds the grants counted since the last flush to the SDK's
// counters. It runs at each collection, before the SDK reads them.
func (b *bucketMetrics) flush() {
	ctx := context.Background()
	if n := b.grants.Swap(0); n > 0 {
		b.in.grants.Add(ctx, int64(n), b.add...)
	}
	if amount := math.Float64frombits(b.granted.Swap(0)); amount > 0 {
		b.in.grantedAmount.Add(ctx, amount, b.add...)
	}
}

// stop flushes the grants of a Scheduler made by New and unregisters its
// gauges; b may be nil. A call that ends later is not reported.
func (b *bucketMetrics) stop() {
	if b != nil && b.reg != nil {
		b.flush()
		_ = b.reg.Unregister() // the SDK's only error is for a foreign callback
	}
}

// goMetrics is one call made by Go, being recorded; nil when its Scheduler
// has no metrics, and then its methods do nothing.
type goMetrics struct {
	b      *bucketMetrics
	ctx    context.Context
	amount float64
	start  time.Time
}

// begin starts recording a call made by Go; nil if b is nil.
func (b *bucketMetrics) begin(ctx context.Context, amount float64) *goMetrics {
	if b == nil {
		return nil
	}

	return &goMetrics{b: b, ctx: ctx, amount: amount, start: time.Now()}
}

// ended records the call's end with err.
func (c *goMetrics) ended(err error) {
	if c != nil {
		c.b.ended(c.ctx, c.amount, c.start, err)
	}
}

// replied records the call's end with the bucket's reply.
func (c *goMetrics) replied(reply proto.Message) {
	if c != nil {
		c.ended(replyError(reply))
	}
}

// refused records the call's end if *err, Go's result, is an error known
// at once; a deferred call, so that it sees the result.
func (c *goMetrics) refused(err *error) {
	if c != nil && *err != nil {
		c.ended(*err)
	}
}

// keyedMetrics holds the recorders of a Keyed's keys: every key used since
// the metrics began keeps one, as the SDK keeps each attribute set it was
// given. Its gauges report the keys used since the last collection and
// those whose bucket had not drained at it, and leave out the others,
// because asking for their status would wake a passivated bucket. A key
// whose bucket was passivated between two collections still gets one
// Status, which starts a new, empty bucket that passivates as usual.
type keyedMetrics struct {
	in      *instruments
	reg     metric.Registration
	buckets sync.Map // key → *bucketMetrics
}

// newKeyedMetrics returns the metrics of k from mp; nil, and no error, for
// a nil mp.
func newKeyedMetrics(mp metric.MeterProvider, k *Keyed) (*keyedMetrics, error) {
	if mp == nil {
		return nil, nil
	}
	in, err := newInstruments(mp)
	if err != nil {
		return nil, err
	}

	km := &keyedMetrics{in: in}
	km.reg, err = in.register(func(ctx context.Context, o metric.Observer) { km.collect(ctx, k, o) })
	if err != nil {
		return nil, err
	}

	return km, nil
}

// bucket returns the recorder of key, marked as used; nil if km is nil.
func (km *keyedMetrics) bucket(key string) *bucketMetrics {
	if km == nil {
		return nil
	}

	held, ok := km.buckets.Load(key)
	if !ok {
		b := newBucketMetrics(km.in, key)
		b.keyed = true
		held, _ = km.buckets.LoadOrStore(key, b)
	}
	b := held.(*bucketMetrics)
	if !b.used.Load() {
		b.used.Store(true)
	}

	return b
}

// collect flushes the grants of every key and reports the gauges of the
// keys in use.
func (km *keyedMetrics) collect(ctx context.Context, k *Keyed, o metric.Observer) {
	for key, held := range km.buckets.Range {
		b := held.(*bucketMetrics)
		b.flush()
		if ctx.Err() != nil {
			continue // out of time: the keys left keep their marks for next time
		}
		if used := b.used.Swap(false); !used && !b.pending.Load() {
			continue
		}

		st, err := (&Scheduler{req: k.req, key: key.(string)}).Status(ctx)
		if err == nil {
			km.in.observe(o, b, st)
		}
		b.pending.Store(!drained(st, err))
	}
}

// drained reports whether a bucket whose Status returned st and err can be
// left out of the gauges until its key is used again: it has drained, or
// it is gone for good. One that did not answer in time is kept.
func drained(st Status, err error) bool {
	if err != nil {
		return errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrStopped)
	}

	return st.Queued == 0 && st.Level == 0
}

// stop flushes the grants of every key and unregisters the gauges; km may
// be nil.
func (km *keyedMetrics) stop() {
	if km == nil {
		return
	}
	for _, held := range km.buckets.Range {
		held.(*bucketMetrics).flush()
	}
	_ = km.reg.Unregister() // the SDK's only error is for a foreign callback
}
