package scheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/messages"
)

// Rules gives each key of a Keyed its Limit. An exact key beats a pattern,
// and a pattern beats the default.
type Rules struct {
	// Exact maps keys to their limits.
	Exact map[string]Limit

	// Patterns are tried in order; the first that matches wins.
	Patterns []Pattern

	// Default is the limit of a key nothing else matches; nil means such a
	// key is refused with ErrUnknownKey.
	Default *Limit
}

// Pattern is a rule for every key that Match matches, in path.Match syntax:
// "*.github.com" matches "api.github.com", and "tenant-?" matches
// "tenant-7". A "*" does not match a "/".
type Pattern struct {
	Match string
	Limit Limit
}

// Keyed starts work at no more than a limit per key: one limit per API,
// host or tenant, each with its own bucket. A key's bucket is made on
// first use from the Rules, and passivated once it has been idle (nobody
// waits and it has fully drained) for the idle timeout (WithIdleTimeout),
// so that keys seen once cost nothing for long. A passivated bucket is
// replaced by a new one on the next request; it starts empty, exactly as
// the old one was.
//
// Acquire is the method most callers want; For gives the whole Scheduler
// API for one key. A Keyed is safe for concurrent use; its zero value is
// not usable.
type Keyed struct {
	req      *actors.Requester
	buckets  *atomic.Int64
	stopOnce sync.Once
	metrics  *keyedMetrics // nil without WithMeterProvider
}

// NewKeyed spawns a registry of buckets with rules in sys. Every limit and
// pattern is checked first: a bad one gets an error wrapping
// ErrInvalidLimit that names its key or pattern. The options WithMaxQueue,
// WithMaxQueuedAmount and WithLogger apply to every bucket, and
// WithIdleTimeout sets when they are passivated.
func NewKeyed(sys *actor.ActorSystem, rules Rules, opts ...Option) (*Keyed, error) {
	table, err := rules.table()
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if o.idleTimeout < 0 {
		return nil, fmt.Errorf("scheduler: idle timeout %v is negative", o.idleTimeout)
	}

	k := &Keyed{buckets: new(atomic.Int64)}
	props, err := actors.RegistryProps(actors.RegistrySpec{Rules: table,
		MaxQueue: o.maxQueue, MaxQueuedAmount: o.maxQueuedAmount, Logger: o.logger,
		IdleAfter: o.idleTimeout, Buckets: k.buckets})
	if err != nil {
		return nil, fmt.Errorf("scheduler: %v", err)
	}
	k.req = actors.NewRequester(sys, sys.Root.Spawn(props))
	if k.metrics, err = newKeyedMetrics(o.meterProvider, k); err != nil {
		k.Stop()
		return nil, err
	}

	return k, nil
}

// Acquire waits until amount units are granted under key's limit, in FIFO
// order among the callers of that key; other keys neither wait for it nor
// count towards it. It is shorthand for k.For(key).Acquire(ctx, amount). A
// key that matches no rule, or is empty, gets an error wrapping
// ErrUnknownKey.
func (k *Keyed) Acquire(ctx context.Context, key string, amount float64) error {
	if key == "" {
		return fmt.Errorf("%w: the key is empty", ErrUnknownKey)
	}

	return k.For(key).Acquire(ctx, amount)
}

// For returns the Scheduler of key: Acquire, TryAcquire, Go, Status and
// SetLimit work on key's bucket alone. It is cheap, so there is no need to
// keep it.
//
// SetLimit changes the limit of key's live bucket only; once that bucket is
// passivated, the next one has the limit of key's rule again. Status counts
// from when the live bucket was made. PID returns the registry's PID. Stop
// does nothing: the bucket belongs to k, so stop k instead.
func (k *Keyed) For(key string) *Scheduler {
	s := &Scheduler{req: k.req, key: key, metrics: k.metrics.bucket(key)}

	// The Requester is k's, shared by every key, and Scheduler.Stop would
	// close it: use up s's one Stop now.
	s.stopOnce.Do(func() {})

	return s
}

// PID returns the registry's PID, for actors that talk to it with the
// messages directly (each request names its key).
func (k *Keyed) PID() *actor.PID {
	return k.req.Bucket()
}

// Buckets returns how many keys have a live bucket now.
func (k *Keyed) Buckets() int {
	return int(k.buckets.Load())
}

// Stop answers every waiter of every key with ErrStopped and stops every
// bucket and the registry; afterwards every call returns ErrStopped. Stop
// is idempotent and returns once every waiter has been answered.
func (k *Keyed) Stop() {
	k.stopOnce.Do(func() {
		// The registry answers once every bucket has answered its waiters.
		c := k.req.Start(&messages.Stop{}, nil)
		<-c.Reply()
		k.req.Recycle(c)
		k.req.Close("the scheduler stopped")
		k.metrics.stop()
	})
}

// table validates r and converts it for the registry.
func (r Rules) table() (*actors.Rules, error) {
	exact := make(map[string]*messages.Limit, len(r.Exact))
	for _, key := range slices.Sorted(maps.Keys(r.Exact)) { // the first error is always the same
		m, err := r.Exact[key].message()
		if err != nil {
			return nil, fmt.Errorf("%w, in the rule for key %q", err, key)
		}
		exact[key] = m
	}

	patterns := make([]actors.Pattern, 0, len(r.Patterns))
	for _, p := range r.Patterns {
		m, err := p.Limit.message()
		if err != nil {
			return nil, fmt.Errorf("%w, in the rule for pattern %q", err, p.Match)
		}
		patterns = append(patterns, actors.Pattern{Match: p.Match, Limit: m})
	}

	var fallback *messages.Limit
	if r.Default != nil {
		m, err := r.Default.message()
		if err != nil {
			return nil, fmt.Errorf("%w, in the default rule", err)
		}
		fallback = m
	}

	table, err := actors.NewRules(exact, patterns, fallback)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLimit, err)
	}

	return table, nil
}
