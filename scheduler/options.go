package scheduler

import "log/slog"

// Option configures a Scheduler made by New.
type Option func(*options)

type options struct {
	maxQueue        int
	maxQueuedAmount float64
	logger          *slog.Logger
}

// buildOptions applies opts, in order, to the defaults: an unbounded queue
// and the actor system's logger.
func buildOptions(opts []Option) options {
	var o options
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
