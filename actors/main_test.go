package actors

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newSystem returns an actor system that logs nothing and lets go of its
// dead-letter throttle quickly.
func newSystem() *actor.ActorSystem {
	quiet := func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	return actor.NewActorSystem(actor.WithLoggerFactory(quiet),
		actor.WithDeadLetterThrottleInterval(time.Millisecond))
}

// inbox is a process that collects every message sent to it, for tests
// that play the requester's part.
type inbox struct {
	pid *actor.PID
	got chan any
}

func newInbox(sys *actor.ActorSystem, name string) *inbox {
	in := &inbox{got: make(chan any, 1024)}
	in.pid, _ = sys.ProcessRegistry.Add(in, name)

	return in
}

func (in *inbox) SendUserMessage(_ *actor.PID, m any) { in.got <- actor.UnwrapEnvelopeMessage(m) }
func (in *inbox) SendSystemMessage(*actor.PID, any)   {}
func (in *inbox) Stop(*actor.PID)                     {}
