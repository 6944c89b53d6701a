package scheduler_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/scheduler"
)

func init() {
	nodeRoles["member"] = runMemberNode
}

// clusterRate is the limit of the key "api" in the cluster tests: 100 per
// second in any sliding second.
const clusterRate = 100

// runMemberNode is one member of a cluster found through the automanaged
// provider: its own HTTP port is DRIP_AUTOMAN_PORT, and DRIP_AUTOMAN_HOSTS
// lists every member's. Commands: "where" prints "HOST <address>" of the
// member that hosts the key "api"; "run <n>" starts n goroutines that
// acquire from "api" without end and print "GRANT <unix ns>" for each grant.
func runMemberNode() error {
	port, err := strconv.Atoi(os.Getenv("DRIP_AUTOMAN_PORT"))
	if err != nil {
		return fmt.Errorf("DRIP_AUTOMAN_PORT: %v", err)
	}
	c, err := startMember(port, strings.Split(os.Getenv("DRIP_AUTOMAN_HOSTS"), ","))
	if err != nil {
		return err
	}
	s, err := scheduler.Cluster(c, "api")
	if err != nil {
		return err
	}
	fmt.Println("ADDR", c.ActorSystem.Address())

	var out sync.Mutex
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var n int
		_, scanErr := fmt.Sscanf(sc.Text(), "run %d", &n)
		switch {
		case sc.Text() == "where":
			fmt.Println("HOST", c.Get("api", actors.GrainKind).GetAddress())
		case scanErr == nil:
			for range n {
				go acquireForever(s, &out)
			}
		default:
			return fmt.Errorf("unknown command %q", sc.Text())
		}
	}

	return nil
}

// startMember starts a cluster member with drip's kind.
func startMember(port int, hosts []string) (*cluster.Cluster, error) {
	kind, err := scheduler.ClusterKind(scheduler.Rules{
		Exact: map[string]scheduler.Limit{"api": {Rate: clusterRate, Mode: scheduler.SlidingWindow}},
	})
	if err != nil {
		return nil, err
	}

	sys := quietSystem()
	provider := automanaged.NewWithConfig(300*time.Millisecond, port, hosts...)
	cfg := cluster.Configure("drip-test", provider, disthash.New(),
		remote.Configure("127.0.0.1", 0), cluster.WithKinds(kind))
	c := cluster.New(sys, cfg)
	c.StartMember()

	return c, nil
}

// acquireForever takes one unit after another and prints each grant. A
// call lost with its member is retried after a pause, as a user would.
func acquireForever(s *scheduler.Scheduler, out *sync.Mutex) {
	for {
		err := s.Acquire(context.Background(), 1)
		at := time.Now().UnixNano()
		out.Lock()
		if err != nil {
			fmt.Println("ERROR", at, err)
		} else {
			fmt.Println("GRANT", at)
		}
		out.Unlock()
		if errors.Is(err, scheduler.ErrUnreachable) || err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()

	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}

	return ports
}

// grantLog collects the grants members print, in unix nanoseconds.
type grantLog struct {
	mu     sync.Mutex
	grants []int64
}

// collect reads the GRANT lines of n until its output ends.
func (g *grantLog) collect(n *node) {
	for line := range n.lines {
		rest, ok := strings.CutPrefix(line, "GRANT ")
		if !ok {
			continue
		}
		at, err := strconv.ParseInt(rest, 10, 64)
		if err == nil {
			g.mu.Lock()
			g.grants = append(g.grants, at)
			g.mu.Unlock()
		}
	}
}

// sorted returns the grants so far, in order.
func (g *grantLog) sorted() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()

	return slices.Sorted(slices.Values(g.grants))
}

// maxInWindow returns the most grants in any window [t, t+per) that starts
// at a grant in [from, to), and where that window starts.
func maxInWindow(grants []int64, per time.Duration, from, to int64) (int, int64) {
	best, at := 0, int64(0)
	j := 0
	for i, start := range grants {
		for j < len(grants) && grants[j] < start+int64(per) {
			j++
		}
		if start >= from && start < to && j-i > best {
			best, at = j-i, start
		}
	}

	return best, at
}

func TestClusterOneLimitAcrossMembers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}

	// Three members, each knowing all three automanaged ports.
	ports := freePorts(t, 3)
	var hosts []string
	for _, p := range ports {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", p))
	}
	members := make(map[string]*node)
	var order []*node
	for i, p := range ports {
		n := startNode(t, fmt.Sprintf("member-%d", i), "member",
			"DRIP_AUTOMAN_PORT="+strconv.Itoa(p), "DRIP_AUTOMAN_HOSTS="+strings.Join(hosts, ","))
		members[n.expect("ADDR", 20*time.Second)[0]] = n
		order = append(order, n)
	}
	host := waitForOneHost(t, order)

	// Everyone acquires; the key's one activation serves them all.
	log := &grantLog{}
	for _, n := range order {
		n.send("run 4")
	}
	for _, n := range order {
		go log.collect(n)
	}
	time.Sleep(3 * time.Second) // the length of the steady-state sample, not a wait for a condition

	// Kill the member that hosts the activation while the others acquire.
	members[host].kill()
	killed := time.Now().UnixNano()
	var recovered int64
	deadline := time.Now().Add(20 * time.Second)
	for recovered == 0 && time.Now().Before(deadline) {
		for _, at := range log.sorted() {
			if at > killed {
				recovered = at
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recovered == 0 {
		t.Fatal("no grant in 20 s after the hosting member was killed")
	}
	time.Sleep(2 * time.Second) // a steady-state sample after the move

	// Members see a grant a moment after the bucket makes it, some over
	// the network and some not. If the bucket grants at most the limit in
	// any second and a grant takes at most delivery to arrive, then any
	// window of a second less delivery holds at most the limit.
	const delivery = 100 * time.Millisecond
	window := time.Second - delivery
	grants := log.sorted()
	raw, _ := maxInWindow(grants, time.Second, 0, killed-int64(time.Second))
	before, at := maxInWindow(grants, window, 0, killed-int64(time.Second))
	if before > clusterRate {
		t.Errorf("%d grants in the %v from %v, before the kill; the limit is %d",
			before, window, time.Unix(0, at), clusterRate)
	}
	after, at := maxInWindow(grants, window, recovered+int64(time.Second), grants[len(grants)-1])
	if after > clusterRate {
		t.Errorf("%d grants in the %v from %v, after the move; the limit is %d",
			after, window, time.Unix(0, at), clusterRate)
	}
	if before < clusterRate*8/10 {
		t.Errorf("at most %d grants in any second before the kill; the limit %d was barely used",
			before, clusterRate)
	}
	during, _ := maxInWindow(grants, window, killed-int64(time.Second), recovered+int64(time.Second))
	duringRaw, _ := maxInWindow(grants, time.Second, killed-int64(time.Second),
		recovered+int64(time.Second))
	t.Logf("served again %v after the kill; most grants around the move: %d in %v, %d in 1s "+
		"(limit %d); before the kill: %d in 1s as members saw them",
		time.Duration(recovered-killed).Round(time.Millisecond), during, window, duringRaw,
		clusterRate, raw)
}

// waitForOneHost asks every member where the key lives until they agree,
// and returns the address.
func waitForOneHost(t *testing.T, members []*node) string {
	t.Helper()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		seen := make(map[string]bool)
		for _, n := range members {
			n.send("where")
			seen[n.expect("HOST", 20*time.Second)[0]] = true
		}
		if len(seen) == 1 && !seen[""] {
			for host := range seen {
				return host
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the members did not agree on where the key lives within 30 s")

	return ""
}
