// Package node holds what every example program needs to be an actor
// system of its own: a quiet one, and protoactor remote started without a
// panic.
package node

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// Quiet is a logger factory that drops everything: protoactor and gRPC log
// every connection and dead letter at INFO, and an example's output is its
// own.
func Quiet(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// StartRemote starts protoactor remote for sys on host:port (port 0 for a
// free one). remote.Start panics when it cannot listen; that becomes an
// error here.
func StartRemote(sys *actor.ActorSystem, host string, port int) (r *remote.Remote, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("listening on %s: %v", net.JoinHostPort(host,
				strconv.Itoa(port)), p)
		}
	}()

	r = remote.NewRemote(sys, remote.Configure(host, port))
	r.Start()

	return r, nil
}
