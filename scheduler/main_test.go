package scheduler_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	runNodeIfChild()
	goleak.VerifyTestMain(m)
}

// newSystem returns an actor system that logs nothing.
func newSystem() *actor.ActorSystem {
	quiet := func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	return actor.NewActorSystem(actor.WithLoggerFactory(quiet),
		actor.WithDeadLetterThrottleInterval(time.Millisecond))
}
