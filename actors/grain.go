package actors

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/dripsched/drip/messages"
)

// GrainKind is the name of the cluster kind whose activations are buckets.
const GrainKind = "drip-bucket"

// GrainProps returns the props of the cluster kind GrainKind: each
// activation is the bucket of one key, its cluster identity, with the
// limit rules give that key and the queue bounds and logger of spec.
//
// An activation starts full. The cluster may activate a key again after
// the member that hosted it died, and the new activation cannot know what
// the old one granted; starting full means it grants nothing until a
// whole burst has drained, so the move adds no free burst. A key's very
// first activation waits that long too.
//
// The activation is a grain actor that spawns the bucket as its child and
// forwards every request to it with the sender kept. The child restarts on
// a panic as any bucket does (queue kept, level full); the grain itself
// does nothing that can fail.
func GrainProps(rules *Rules, spec BucketSpec) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &grain{rules: rules, spec: spec}
	})
}

// grain is one activation of GrainKind.
type grain struct {
	rules  *Rules
	spec   BucketSpec
	key    string
	bucket *actor.PID // nil until ClusterInit, or if the key has no rule
	reason messages.RejectReason
	detail string // why there is no bucket
}

var _ actor.Actor = (*grain)(nil)

// Receive implements actor.Actor.
func (g *grain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.init(ctx, m.Identity.GetIdentity())
	case *messages.Acquire, *messages.TryAcquire, *messages.GetStatus, *messages.SetLimit,
		*messages.Pause:
		g.forward(ctx, true)
	case *messages.Cancel, *messages.Release, *messages.Commit:
		g.forward(ctx, false)
	case *actor.Terminated:
		// The bucket stopped (a Stop message): so does the activation, and
		// the next request activates the key afresh.
		if samePID(m.GetWho(), g.bucket) {
			ctx.Stop(ctx.Self())
		}
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		g.logger(ctx).Debug("drip: grain dropped an unknown message",
			slog.String("type", fmt.Sprintf("%T", m)), slog.Any("sender", ctx.Sender()))
	}
}

// init spawns the bucket for key with the limit its rule gives.
func (g *grain) init(ctx actor.Context, key string) {
	g.key = key

	l, ok := g.rules.Lookup(key)
	if !ok {
		g.reason = messages.RejectReason_REJECT_REASON_UNKNOWN_KEY
		g.detail = fmt.Sprintf("no rule matches key %q", key)
		return
	}

	spec := g.spec
	spec.Limit, spec.Key, spec.StartFull = l, key, true
	props, err := BucketProps(spec)
	if err != nil {
		// Rules checked every limit, so only a bad spec gets here.
		g.reason = messages.RejectReason_REJECT_REASON_INVALID_LIMIT
		g.detail = fmt.Sprintf("key %q: %v", key, err)
		return
	}
	g.bucket = ctx.Spawn(props)
	ctx.Watch(g.bucket)
}

// forward hands the current request to the bucket, or rejects it if there
// is none and it expects an answer.
func (g *grain) forward(ctx actor.Context, answer bool) {
	if g.bucket != nil {
		ctx.Forward(g.bucket)
		return
	}
	if !answer || ctx.Sender() == nil {
		return
	}

	var id uint64
	if req, ok := ctx.Message().(requestMessage); ok {
		id = req.GetRequestId()
	}
	ctx.Respond(&messages.Rejected{RequestId: id, Reason: g.reason, Detail: g.detail})
}

func (g *grain) logger(ctx actor.Context) *slog.Logger {
	if g.spec.Logger != nil {
		return g.spec.Logger
	}

	return ctx.Logger()
}
