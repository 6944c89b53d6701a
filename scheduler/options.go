package scheduler

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/dripsched/drip/actors"
)

// Option configures a Scheduler made by New.
type Option func(*options)

type options struct {
	maxQueue        int
	maxQueuedAmount float64
	logger          *slog.Logger

	unreachableAfter time.Duration // for Attach; see WithUnreachableAfter
	name             string        // the bucket's actor name; "" for a generated one

	idleTimeout time.Duration // for NewKeyed; see WithIdleTimeout

	meterProvider metric.MeterProvider // nil for no metrics; see WithMeterProvider
}

// defaultIdleTimeout is how long a Keyed's bucket stays idle before it is
// passivated, unless WithIdleTimeout says otherwise.
const defaultIdleTimeout = time.Minute

// buildOptions applies opts, in order, to the defaults: an unbounded queue
// and the actor system's logger.
func buildOptions(opts []Option) options {
	o := options{unreachableAfter: actors.DefaultUnreachableAfter,
		idleTimeout: defaultIdleTimeout}
	for _, opt := range opts {
		opt(&o)
	}

	return o
}

// WithMaxQueue bounds the number of waiting requests; an Acquire beyond it
// fails at once with ErrQueueFull. Zero means no bound.
func WithMaxQueue(n int) Option {
	return func(o *options) { o.maxQueue = n }
}

// WithMaxQueuedAmount bounds the total amount waiting; an Acquire beyond it
// fails at once with ErrQueueFull. Zero means no bound.
func WithMaxQueuedAmount(amount float64) Option {
	return func(o *options) { o.maxQueuedAmount = amount }
}

// WithLogger sets the logger for the bucket's debug lines; by default they
// go to the actor system's logger. drip logs nothing above debug level.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithUnreachableAfter sets how long the node of an attached bucket may
// stay silent while calls wait before they fail with ErrUnreachable; the
// default, 1.5 s, fails them within 2 s. A connection that breaks, as when
// the node's process dies, fails them at once. Zero or less turns the
// silence check off. It applies to Attach only: a bucket in the same actor
// system cannot go silent.
func WithUnreachableAfter(d time.Duration) Option {
	return func(o *options) { o.unreachableAfter = d }
}

// WithName gives the bucket made by New a fixed actor name, so that other
// nodes can reach it as actor.NewPID(address, name) and Attach to it. New
// fails if the name is taken. By default the name is generated.
func WithName(name string) Option {
	return func(o *options) { o.name = name }
}

// WithIdleTimeout sets how long a bucket of a Keyed stays idle (nobody waits
// and the level is zero) before it is passivated, which frees its memory;
// the next request for its key gets a new bucket, which starts empty, as
// the old one was. Zero means never; a negative value makes NewKeyed fail.
// The default is one minute. It applies to NewKeyed only.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) { o.idleTimeout = d }
}

// WithMeterProvider records metrics through mp, an OpenTelemetry
// MeterProvider: counts of grants and of rejections by reason, the amount
// granted, a histogram of waits, and gauges of the level and the queue
// (see MetricGrants and the names after it). Acquire, TryAcquire and Go
// record as they return; the gauges ask the bucket for its Status at each
// collection. It applies to New and NewKeyed, where every key is a bucket
// of its own. Without it, or with a nil mp, nothing is recorded and calls
// cost nothing more.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}
