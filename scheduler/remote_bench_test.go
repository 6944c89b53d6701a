package scheduler_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// The remote benchmarks put drip over protoactor remote side by side with
// protoactor's own request/response over the same connection: the bench
// process talks to one child process (see node_test.go) on loopback, which
// hosts a drip bucket that never makes anyone wait and an actor that grants
// every Acquire at once.
//
//	go test -run '^$' -bench Remote -benchmem ./scheduler
//
// Each top-level benchmark starts its own child and its own remote, used by
// all its sub-benchmarks, and shuts both down when it ends, so goleak finds
// nothing. The two benchmarks' remotes run one after the other, never at
// once: remote.Start sets gRPC's global logger without a lock.

func init() {
	nodeRoles[benchServerRole] = runBenchServerNode
}

const (
	// benchServerRole is the child's role: it hosts the two targets.
	benchServerRole = "bench-server"

	// benchBucketName and benchEchoName are the targets' actor names.
	benchBucketName = "bench-bucket"
	benchEchoName   = "bench-echo"

	// remoteInFlight is how many Acquires BenchmarkRemoteGrants1000InFlight
	// keeps outstanding.
	remoteInFlight = 1000
)

// benchProfileEnv, when it names a file, makes the bench server write its
// CPU profile there: most of a remote grant's cost is spent in the child,
// which the bench process's -cpuprofile does not see.
const benchProfileEnv = "DRIP_BENCH_SERVER_CPUPROFILE"

// runBenchServerNode hosts a drip bucket with the neverWaits limit and a
// grantAll actor under fixed names, prints "READY" once both can be
// reached, and serves until its stdin closes.
func runBenchServerNode() error {
	if path := os.Getenv(benchProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	sys, r := startRemote()
	defer r.Shutdown(false) // see examples/remote/server: graceful can hang 10 s
	s, err := scheduler.New(sys, neverWaits, scheduler.WithName(benchBucketName))
	if err != nil {
		return err
	}
	defer s.Stop()
	if _, err := sys.Root.SpawnNamed(actor.PropsFromFunc(grantAll), benchEchoName); err != nil {
		return fmt.Errorf("spawning %s: %w", benchEchoName, err)
	}
	fmt.Println("READY")

	_, err = io.Copy(io.Discard, os.Stdin)

	return err
}

// remoteBench is what a remote benchmark talks to: the child's two targets,
// seen from an actor system in the bench process with a remote of its own.
type remoteBench struct {
	sys    *actor.ActorSystem
	bucket *actor.PID // the drip bucket
	echo   *actor.PID // the grantAll actor
}

// startRemoteBench starts the child and the bench process's remote, and
// stops both when b ends: the remote first, while the child still answers,
// so that its graceful shutdown does not wait for a dead peer.
func startRemoteBench(b *testing.B) *remoteBench {
	b.Helper()

	addr := startBenchServer(b)

	sys := newSystem()
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	b.Cleanup(func() {
		r.Shutdown(true)
		sys.Shutdown()
	})

	return &remoteBench{sys: sys, bucket: actor.NewPID(addr, benchBucketName),
		echo: actor.NewPID(addr, benchEchoName)}
}

// startBenchServer starts a child playing benchServerRole, waits until it
// is ready and returns its address. When b ends it closes the child's
// stdin, which ends the child, and reaps it. It does what startNode does
// for a test: startNode takes a *testing.T, which a benchmark has not.
func startBenchServer(b *testing.B) string {
	b.Helper()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+benchServerRole)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the bench server: %v", err)
	}

	lines := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	addr, _ := strings.CutPrefix(expectLine(b, lines, "ADDR "), "ADDR ")
	expectLine(b, lines, "READY")

	return addr
}

// expectLine returns the next line from lines that starts with prefix,
// failing b if none comes within 10 s.
func expectLine(b *testing.B, lines <-chan string, prefix string) string {
	b.Helper()

	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				b.Fatalf("the bench server exited before printing %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			b.Fatalf("the bench server printed no %q within 10 s", prefix)
		}
	}
}

// BenchmarkRemoteGrants1000InFlight measures a grant over remote when one
// actor keeps 1000 Acquires in flight: to a drip bucket, and to an actor
// that grants everything at once (protoactor's raw request/response).
func BenchmarkRemoteGrants1000InFlight(b *testing.B) {
	env := startRemoteBench(b)

	b.Run("drip", func(b *testing.B) { remoteGrants(b, env.sys, env.bucket) })
	b.Run("protoactor-raw", func(b *testing.B) { remoteGrants(b, env.sys, env.echo) })
}

// remoteGrants has target grant b.N Acquires through a grantLoad actor.
func remoteGrants(b *testing.B, sys *actor.ActorSystem, target *actor.PID) {
	l := &grantLoad{target: target, total: b.N, done: make(chan struct{})}
	b.ReportAllocs()

	b.ResetTimer()
	load := sys.Root.Spawn(actor.PropsFromFunc(l.Receive))
	<-l.done
	b.StopTimer()

	stopActor(b, sys, load)
	if l.failure != nil {
		b.Fatalf("request %d rejected: %s", l.failure.GetRequestId(), l.failure.GetDetail())
	}
}

// grantLoad is an actor that keeps remoteInFlight Acquires outstanding at
// target, sending a new one for each Granted, until total have been
// granted; then it closes done. A Rejected ends it early, in failure.
type grantLoad struct {
	target  *actor.PID
	total   int
	sent    int
	granted int
	failure *messages.Rejected
	done    chan struct{}
}

// Receive is the actor's behaviour.
func (l *grantLoad) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for l.sent < min(remoteInFlight, l.total) {
			l.send(ctx)
		}
	case *messages.Granted:
		l.granted++
		if l.sent < l.total {
			l.send(ctx)
		}
		if l.granted == l.total {
			close(l.done)
		}
	case *messages.Rejected:
		if l.failure == nil {
			l.failure = m
			close(l.done)
		}
	}
}

// send sends the next Acquire, with the next request id.
func (l *grantLoad) send(ctx actor.Context) {
	l.sent++
	ctx.Request(l.target, &messages.Acquire{RequestId: uint64(l.sent), Amount: 1})
}

// BenchmarkRemoteAcquireLatency measures one uncontended round trip over
// remote from one goroutine, and reports the median and the 99th
// percentile: Scheduler.Acquire on an attached bucket; the same request to
// the grantAll actor with the reply taken by a process that puts it on a
// channel (protoactor-raw, what the Scheduler's request actor does); and
// with protoactor's RequestFuture.
func BenchmarkRemoteAcquireLatency(b *testing.B) {
	env := startRemoteBench(b)

	b.Run("drip", func(b *testing.B) {
		s := scheduler.Attach(env.sys, env.bucket)
		b.Cleanup(s.Stop)
		ctx := context.Background()
		measureLatency(b, func(uint64) error { return s.Acquire(ctx, 1) })
	})
	b.Run("protoactor-raw", func(b *testing.B) {
		in := newReplyInbox(b, env.sys)
		measureLatency(b, func(id uint64) error {
			env.sys.Root.RequestWithCustomSender(env.echo,
				&messages.Acquire{RequestId: id, Amount: 1}, in.pid)
			return checkGranted(<-in.replies, id)
		})
	})
	b.Run("protoactor-future", func(b *testing.B) {
		measureLatency(b, func(id uint64) error {
			f := env.sys.Root.RequestFuture(env.echo,
				&messages.Acquire{RequestId: id, Amount: 1}, 5*time.Second)
			reply, err := f.Result()
			if err != nil {
				return err
			}
			return checkGranted(reply, id)
		})
	})
}

// measureLatency times b.N calls of op, given ids from 1, and reports the
// median and the 99th percentile.
func measureLatency(b *testing.B, op func(id uint64) error) {
	took := make([]time.Duration, b.N)
	b.ReportAllocs()

	b.ResetTimer()
	for i := range took {
		start := time.Now()
		if err := op(uint64(i) + 1); err != nil {
			b.Fatal(err)
		}
		took[i] = time.Since(start)
	}
	b.StopTimer()

	slices.Sort(took)
	b.ReportMetric(micros(percentile(took, 0.50)), "p50-µs")
	b.ReportMetric(micros(percentile(took, 0.99)), "p99-µs")
}

// checkGranted returns an error unless reply grants request id.
func checkGranted(reply any, id uint64) error {
	if g, ok := reply.(*messages.Granted); !ok || g.GetRequestId() != id {
		return fmt.Errorf("reply to request %d = %v, want its Granted", id, reply)
	}

	return nil
}

// replyInbox is a process without a mailbox that puts every user message
// it receives on a channel: the cheapest way for a goroutine to take an
// actor's reply.
type replyInbox struct {
	pid     *actor.PID
	replies chan any
}

var _ actor.Process = (*replyInbox)(nil)

// newReplyInbox registers a replyInbox in sys, removed when b ends.
func newReplyInbox(b *testing.B, sys *actor.ActorSystem) *replyInbox {
	in := &replyInbox{replies: make(chan any, 1)}
	in.pid, _ = sys.ProcessRegistry.Add(in, "bench-inbox-"+sys.ProcessRegistry.NextId())
	b.Cleanup(func() { sys.ProcessRegistry.Remove(in.pid) })

	return in
}

// SendUserMessage implements actor.Process.
func (in *replyInbox) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	in.replies <- msg
}

// SendSystemMessage implements actor.Process; the inbox watches nothing.
func (in *replyInbox) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (in *replyInbox) Stop(*actor.PID) {}
