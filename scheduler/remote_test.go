package scheduler_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run a bucket on one node and its callers on others, each a
// child process (see node_test.go), over protoactor remote on loopback.
// They use real time, so they assert one-sided bounds only.

// startServer starts a node hosting the bucket "api" and returns it with
// its address.
func startServer(t *testing.T, rate, burst string) (*node, string) {
	t.Helper()

	server := startNode(t, "server", "server", "DRIP_RATE="+rate, "DRIP_BURST="+burst)

	return server, server.expect("ADDR", 10*time.Second)[0]
}

// startClient starts a node attached to the bucket at addr.
func startClient(t *testing.T, name, addr string) *node {
	t.Helper()

	client := startNode(t, name, "client", "DRIP_SERVER="+addr)
	client.expect("ADDR", 10*time.Second)

	return client
}

// waitQueued polls the server until its bucket has want waiters, and
// returns how long that took.
func waitQueued(t *testing.T, server *node, want int, timeout time.Duration) time.Duration {
	t.Helper()

	start := time.Now()
	for {
		server.send("status")
		got, err := strconv.Atoi(server.expect("STATUS", 5*time.Second)[0])
		require.NoError(t, err)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("the bucket has %d waiters after %v, want %d", got, timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// result is one "RESULT" line of a client.
type result struct {
	ok  bool
	ms  int64
	err string
}

// expectResult reads the next result of client.
func expectResult(t *testing.T, client *node, timeout time.Duration) result {
	t.Helper()

	f := client.expect("RESULT", timeout)
	ms, err := strconv.ParseInt(f[1], 10, 64)
	require.NoError(t, err)

	return result{ok: f[0] == "ok", ms: ms, err: strings.Join(f[2:], " ")}
}

func TestRemoteAttachKeepsTheLimit(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, "20", "1")
	client := startClient(t, "client", addr)

	// Ten units at 20 per second with burst 1: the first goes at once, the
	// tenth no sooner than 9 × 50 ms later, whatever the network does.
	client.send("acquire 10")
	var last int64
	for range 10 {
		r := expectResult(t, client, 10*time.Second)
		if !r.ok {
			t.Fatalf("remote Acquire failed: %s", r.err)
		}
		last = max(last, r.ms)
	}
	if last < 450 {
		t.Errorf("ten grants took %d ms, want at least 450 ms at 20 per second", last)
	}
}

func TestRemoteCallerKilledLeavesTheQueue(t *testing.T) {
	t.Parallel()
	server, addr := startServer(t, "1", "1")
	doomed := startClient(t, "doomed", addr)
	behind := startClient(t, "behind", addr)

	// doomed takes the burst and queues five more; behind queues one after
	// them. Served in order, behind would wait five seconds or more.
	doomed.send("acquire 1")
	if r := expectResult(t, doomed, 10*time.Second); !r.ok {
		t.Fatalf("first Acquire failed: %s", r.err)
	}
	doomed.send("acquire 5")
	waitQueued(t, server, 5, 5*time.Second)
	behind.send("acquire 1")
	waitQueued(t, server, 6, 5*time.Second)

	// SIGKILL: the bucket learns from the broken connection and drops the
	// five waiters; behind moves up to the head.
	doomed.kill()
	killed := time.Now()
	took := waitQueued(t, server, 1, 5*time.Second)
	if took > 2*time.Second {
		t.Errorf("the dead node's waiters left after %v, want within 2 s", took)
	}

	r := expectResult(t, behind, 10*time.Second)
	if !r.ok {
		t.Fatalf("the waiter behind the dead node failed: %s", r.err)
	}
	if since := time.Since(killed); since > 2500*time.Millisecond {
		t.Errorf("the waiter behind was granted %v after the kill, want within 2.5 s", since)
	}
	t.Logf("dead node's waiters dropped in %v; the next waiter was granted %v after the kill",
		took, time.Since(killed))
}

func TestRemoteBucketKilledFailsCallers(t *testing.T) {
	t.Parallel()
	server, addr := startServer(t, "1", "1")
	client := startClient(t, "client", addr)

	client.send("acquire 1")
	if r := expectResult(t, client, 10*time.Second); !r.ok {
		t.Fatalf("first Acquire failed: %s", r.err)
	}
	client.send("acquire 3")
	waitQueued(t, server, 3, 5*time.Second)

	// The waiting calls fail once the connection breaks; nothing hangs.
	server.kill()
	killed := time.Now()
	for range 3 {
		r := expectResult(t, client, 5*time.Second)
		if r.ok || !strings.Contains(r.err, "unreachable") {
			t.Errorf("waiting Acquire after the bucket's node died = %+v, want unreachable", r)
		}
	}
	failed := time.Since(killed)
	if failed > 2*time.Second {
		t.Errorf("waiting calls failed %v after the kill, want within 2 s", failed)
	}

	// A new call to the dead node fails within the default bound as well.
	client.send("acquire 1")
	r := expectResult(t, client, 5*time.Second)
	if r.ok || !strings.Contains(r.err, "unreachable") {
		t.Errorf("new Acquire to a dead node = %+v, want unreachable", r)
	}
	if r.ms > 2000 {
		t.Errorf("new Acquire to a dead node failed after %d ms, want within 2 s", r.ms)
	}
	t.Logf("waiting calls failed %v after the kill; a new call failed after %d ms", failed, r.ms)
}
