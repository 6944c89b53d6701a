package actors

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/messages"
)

// networkTypes are the message types a bucket or a registry can be sent
// over the network; the fuzz input's first byte picks one, and the rest is
// decoded into it as protobuf, as protoactor's remote would.
var networkTypes = []func() proto.Message{
	func() proto.Message { return &messages.Acquire{} },
	func() proto.Message { return &messages.TryAcquire{} },
	func() proto.Message { return &messages.Cancel{} },
	func() proto.Message { return &messages.Release{} },
	func() proto.Message { return &messages.GetStatus{} },
	func() proto.Message { return &messages.SetLimit{} },
	func() proto.Message { return &messages.Leak{} },
	func() proto.Message { return &messages.ScheduleLeak{} },
	func() proto.Message { return &messages.Idle{} },
	func() proto.Message { return &messages.Passivate{} },
	func() proto.Message { return &messages.Passivated{} },
	func() proto.Message { return &messages.Granted{} },
	func() proto.Message { return &messages.Rejected{} },
	func() proto.Message { return &messages.Status{} },
	func() proto.Message { return &messages.Limit{} },
	func() proto.Message { return &actor.DeadLetterResponse{} },
	func() proto.Message { return &messages.Commit{} },
}

// restartCounter is a slog handler that counts the bucket's "restarted"
// lines: a bucket that panics is restarted by its supervisor and says so.
type restartCounter struct{ n *atomic.Int64 }

func (h restartCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h restartCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h restartCounter) WithGroup(string) slog.Handler            { return h }

func (h restartCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "restarted") {
		h.n.Add(1)
	}

	return nil
}

// FuzzNetworkMessages sends a bucket and a registry whatever a remote peer
// could: any message type with any field values, decoded from the fuzz
// input. Neither may panic or restart, and both must go on serving: a
// well-formed Acquire after the message is still granted. Stop and Pause
// legitimately end or hold the service, so they are not among the types.
func FuzzNetworkMessages(f *testing.F) {
	add := func(kind byte, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kind, b)
	}
	add(0, &messages.Acquire{RequestId: 1, Amount: math.NaN(), Key: "api"})
	add(0, &messages.Acquire{RequestId: 2, Amount: math.Inf(1), MaxWaitNanos: math.MinInt64})
	add(0, &messages.Acquire{RequestId: 3, Amount: 1e300, Key: strings.Repeat("k", 300)})
	add(0, &messages.Acquire{RequestId: 4, Amount: 1, Key: "api", Hold: true})
	add(16, &messages.Commit{RequestId: 4, Key: "api"})
	add(1, &messages.TryAcquire{Amount: -1})
	add(2, &messages.Cancel{RequestId: 99, Key: "api"})
	add(3, &messages.Release{RequestId: 7, Key: "nobody"})
	add(5, &messages.SetLimit{Limit: &messages.Limit{Rate: math.NaN(), PerNanos: -1}, Key: "api"})
	add(5, &messages.SetLimit{Key: "api"})
	add(7, &messages.ScheduleLeak{DelayNanos: math.MaxInt64})
	add(9, &messages.Passivate{})
	add(10, &messages.Passivated{Stopped: true})
	add(13, &messages.Status{Queued: math.MaxUint64})
	f.Add(byte(0), []byte{0xff, 0xff, 0xff})

	sys := newSystem()
	restarts := new(atomic.Int64)
	logger := slog.New(restartCounter{restarts})
	limit := &messages.Limit{Rate: 1e9, PerNanos: int64(time.Second), Burst: 1e9,
		Mode: messages.Mode_MODE_LEAKY_BUCKET}
	rules, err := NewRules(nil, nil, limit)
	if err != nil {
		f.Fatal(err)
	}
	registryProps, err := RegistryProps(RegistrySpec{Rules: rules, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}
	in := newInbox(sys, "fuzz-caller")
	f.Cleanup(func() { sys.Shutdown() })

	f.Fuzz(func(t *testing.T, kind byte, payload []byte) {
		m := networkTypes[int(kind)%len(networkTypes)]()
		if proto.Unmarshal(payload, m) != nil {
			return // remote would not deliver it
		}
		bucket := spawnBucket(t, sys, BucketSpec{Limit: limit, Logger: logger})
		registry := sys.Root.Spawn(registryProps)
		before := restarts.Load()

		for _, target := range []*actor.PID{bucket, registry} {
			sys.Root.RequestWithCustomSender(target, m, in.pid)
			if a, ok := m.(*messages.Acquire); ok && a.GetHold() {
				// A held grant holds the bucket until its holder commits.
				sys.Root.RequestWithCustomSender(target,
					&messages.Commit{RequestId: a.GetRequestId(), Key: a.GetKey()}, in.pid)
			}
			sys.Root.RequestWithCustomSender(target,
				&messages.Acquire{RequestId: math.MaxUint64, Amount: 1, Key: "probe"}, in.pid)
			expectGrant(t, in, m)
		}
		if n := restarts.Load() - before; n != 0 {
			t.Errorf("%T %v: %d restarts", m, m, n)
		}

		stopAndWait(t, sys, bucket)
		stopAndWait(t, sys, registry)
	})
}

// expectGrant reads the inbox until the probe's grant comes; whatever the
// fuzzed message earned comes first, if anything.
func expectGrant(t *testing.T, in *inbox, sent proto.Message) {
	t.Helper()

	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-in.got:
			if g, ok := got.(*messages.Granted); ok && g.GetRequestId() == math.MaxUint64 {
				return
			}
			if r, ok := got.(*messages.Rejected); ok && r.GetRequestId() == math.MaxUint64 {
				t.Fatalf("after %T %v the probe was rejected: %v", sent, sent, r)
			}
		case <-deadline:
			t.Fatalf("after %T %v the probe got no grant in 5 s", sent, sent)
		}
	}
}

// stopAndWait stops pid and waits until it has stopped.
func stopAndWait(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) {
	t.Helper()

	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatalf("stopping %v: %v", pid, err)
	}
}
