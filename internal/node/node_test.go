package node

import (
	"net"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartRemoteOnATakenPortIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	sys := actor.NewActorSystem(actor.WithLoggerFactory(Quiet))
	r, err := StartRemote(sys, "127.0.0.1", port)
	if err == nil || r != nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("StartRemote on a taken port = %v, %v; want an error naming %s", r, err,
			l.Addr())
	}
}
