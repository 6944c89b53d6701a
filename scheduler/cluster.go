package scheduler

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/dripsched/drip/actors"
)

// ClusterKind returns the protoactor cluster kind whose virtual actors are
// drip buckets, one per key, with the limits rules give the keys. Register
// it on every member, with the same rules:
//
//	kind, err := scheduler.ClusterKind(rules)
//	cfg := cluster.Configure("drip", provider, disthash.New(), remoteConfig,
//		cluster.WithKinds(kind))
//
// The queue bounds and the logger of opts apply to every bucket.
//
// A bucket starts full: a key's activation may succeed one on a member that
// died, and starting full means the move hands out no free burst. The first
// activation of a key therefore also waits a whole burst before its first
// grant.
func ClusterKind(rules Rules, opts ...Option) (*cluster.Kind, error) {
	table, err := rules.table()
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)

	// The same checks as a bucket of New, made once rather than per key.
	spec := actors.BucketSpec{MaxQueue: o.maxQueue, MaxQueuedAmount: o.maxQueuedAmount,
		Logger: o.logger}
	if _, err := actors.BucketProps(withAnyLimit(spec)); err != nil {
		return nil, fmt.Errorf("scheduler: %v", err)
	}

	return cluster.NewKind(actors.GrainKind, actors.GrainProps(table, spec)), nil
}

// withAnyLimit returns spec with a valid limit, to check its other fields.
func withAnyLimit(spec actors.BucketSpec) actors.BucketSpec {
	l, _ := Limit{Rate: 1}.message()
	spec.Limit = l

	return spec
}

// Cluster returns a Scheduler for the bucket of key in cluster c: every
// member, and every client of the cluster, that asks for the same key
// reaches the one activation, so the limit holds across all of them. The
// kind from ClusterKind must be registered on the members.
//
// The Scheduler finds the activation through the cluster on first use, and
// again after it was lost. When the member hosting it dies, the calls
// waiting there fail with ErrUnreachable (within 2 s by default; see
// WithUnreachableAfter), and the next calls go to the key's new
// activation once the cluster has noticed. Stop withdraws the Scheduler's
// own waiters and leaves the bucket running. With WithMeterProvider its
// metrics name the bucket by key.
func Cluster(c *cluster.Cluster, key string, opts ...Option) (*Scheduler, error) {
	if c == nil {
		return nil, errors.New("scheduler: the cluster is nil")
	}
	if key == "" {
		return nil, errors.New("scheduler: the cluster key is empty")
	}
	o := buildOptions(opts)

	lookup := &clusterLookup{c: c, key: key, timeout: o.unreachableAfter}
	forget := func(pid *actor.PID) { c.PidCache.RemoveByValue(key, actors.GrainKind, pid) }
	req := actors.NewRequester(c.ActorSystem, nil, actors.WithResolver(lookup.get, forget),
		actors.WithUnreachableAfter(o.unreachableAfter))
	s := &Scheduler{req: req}
	if err := s.instrument(o.meterProvider, key); err != nil {
		req.Close("the scheduler could not be made")
		return nil, err
	}

	return s, nil
}

// clusterLookup finds a key's activation, giving up after timeout.
//
// protoactor's cluster.Get waits up to 5 s (disthash's fixed activation
// timeout) when it asks a member that has just died and is still in the
// member list. A caller should not wait that long for an answer that will
// be no, so get waits at most timeout; the lookup goes on in its own
// goroutine, and concurrent callers share the one in flight until it has
// taken longer than timeout.
type clusterLookup struct {
	c       *cluster.Cluster
	key     string
	timeout time.Duration

	mu      sync.Mutex
	pending chan struct{} // closed when the lookup in flight ends
	found   *actor.PID    // what the latest lookup found
}

// get returns the activation's PID, or nil if none was found in time.
func (l *clusterLookup) get() *actor.PID {
	l.mu.Lock()
	if l.pending == nil {
		done := make(chan struct{})
		l.pending = done
		go l.run(done)
	}
	done := l.pending
	l.mu.Unlock()

	wait := time.NewTimer(max(l.timeout, time.Millisecond))
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		// A lookup this slow asked a member that is gone; the next caller
		// starts afresh, as the member list may have caught up by then.
		l.mu.Lock()
		if l.pending == done {
			l.pending = nil
		}
		l.mu.Unlock()
		return nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()

	return l.found
}

// run does one lookup and publishes its result.
func (l *clusterLookup) run(done chan struct{}) {
	pid := l.c.Get(l.key, actors.GrainKind)

	l.mu.Lock()
	l.found = pid
	if l.pending == done {
		l.pending = nil
	}
	l.mu.Unlock()
	close(done)
}
