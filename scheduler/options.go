package scheduler

import (
	"log/slog"
	"time"

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
