// Command cluster throttles one key from three cluster members at once: the
// key's bucket is one protoactor virtual actor, so the members share one
// limit without an external store.
//
// Run the whole demonstration, which starts three member processes on
// loopback, gathers what each was granted and checks the combined count:
//
//	go run ./examples/cluster
//	go run ./examples/cluster -kill   # and SIGKILL the hosting member half-way
//
// Or start the members yourself, one terminal each:
//
//	go run ./examples/cluster -member 1
//	go run ./examples/cluster -member 2
//	go run ./examples/cluster -member 3
//
// Members find each other with protoactor's automanaged provider on HTTP
// ports 6331 to 6333 (see -automan).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/dripsched/drip/actors"
	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/scheduler"
)

// config is what the flags say.
type config struct {
	member   int // 0: run the demonstration
	members  int
	automan  int // the first member's automanaged port
	rate     float64
	duration time.Duration
	workers  int
	kill     bool
	key      string
}

// childEnv carries a member's arguments to a child process of the
// demonstration, separated by newlines; it also tells the member that it
// is a child.
const childEnv = "DRIP_CLUSTER_CHILD"

func main() {
	args := os.Args[1:]
	if v := os.Getenv(childEnv); v != "" {
		args = strings.Split(v, "\n")
	}
	cfg, err := parseConfig(args)
	if err == nil {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// parseConfig reads the flags in args.
func parseConfig(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.IntVar(&cfg.member, "member", 0, "run as member `n` (1..members); 0 runs the demonstration")
	fs.IntVar(&cfg.members, "members", 3, "how many members the cluster has")
	fs.IntVar(&cfg.automan, "automan", 6331, "automanaged `port` of member 1; member n uses port+n-1")
	fs.Float64Var(&cfg.rate, "rate", 1000, "the key's limit, per sliding second")
	fs.DurationVar(&cfg.duration, "for", 10*time.Second, "how long the members acquire")
	fs.IntVar(&cfg.workers, "workers", 8, "goroutines acquiring in each member")
	fs.BoolVar(&cfg.kill, "kill", false, "SIGKILL the member that hosts the key half-way")
	fs.StringVar(&cfg.key, "key", "api.example.com", "the key every member throttles")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if cfg.members < 1 || cfg.member < 0 || cfg.member > cfg.members {
		return config{}, fmt.Errorf("-member %d is not in 1..%d", cfg.member, cfg.members)
	}

	return cfg, nil
}

// run is the program: a member, or the demonstration.
func run(cfg config) error {
	if cfg.member > 0 {
		return runMember(cfg)
	}

	sum, err := demonstrate(cfg)
	if err != nil {
		return err
	}
	sum.print(cfg)

	return nil
}

// runMember joins the cluster, waits for "go" on stdin if it is a child of
// the demonstration (or starts at once otherwise), acquires for the
// duration and reports every grant.
func runMember(cfg config) error {
	c, err := startMember(cfg)
	if err != nil {
		return err
	}
	s, err := scheduler.Cluster(c, cfg.key)
	if err != nil {
		return err
	}

	child := os.Getenv(childEnv) != ""
	if child {
		// The demonstration asks where the key lives, then says go.
		fmt.Println("ADDR", c.ActorSystem.Address())
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() && sc.Text() != "go" {
			fmt.Println("HOST", c.Get(cfg.key, actors.GrainKind).GetAddress())
		}
	}
	fmt.Printf("member %d at %s: acquiring %q for %v\n", cfg.member,
		c.ActorSystem.Address(), cfg.key, cfg.duration)

	grants := acquire(s, cfg, child)
	fmt.Printf("member %d: granted %d in %v\n", cfg.member, grants, cfg.duration)
	s.Stop()
	c.Shutdown(true)

	return nil
}

// startMember starts this process's cluster member.
func startMember(cfg config) (*cluster.Cluster, error) {
	kind, err := scheduler.ClusterKind(scheduler.Rules{Default: &scheduler.Limit{
		Rate: cfg.rate, Mode: scheduler.SlidingWindow}})
	if err != nil {
		return nil, err
	}

	var hosts []string
	for i := range cfg.members {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", cfg.automan+i))
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet))
	provider := automanaged.NewWithConfig(300*time.Millisecond, cfg.automan+cfg.member-1, hosts...)
	c := cluster.New(sys, cluster.Configure("drip-example", provider, disthash.New(),
		remote.Configure("127.0.0.1", 0), cluster.WithKinds(kind)))
	c.StartMember()

	return c, nil
}

// acquire runs the workers for the duration and returns how many units
// they were granted. A child prints "GRANT <unix ns>" for each grant; a
// member on its own prints its count every second.
func acquire(s *scheduler.Scheduler, cfg config, child bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()

	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
	)
	for range cfg.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := s.Acquire(ctx, 1)
				if errors.Is(err, scheduler.ErrUnreachable) {
					// The key's member died; the cluster moves it. Try again.
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if err != nil {
					continue // the context ended
				}
				mu.Lock()
				total++
				if child {
					fmt.Println("GRANT", time.Now().UnixNano())
				}
				mu.Unlock()
			}
		})
	}
	if !child {
		go reportEverySecond(ctx, cfg.member, &mu, &total)
	}
	wg.Wait()

	return total
}

// reportEverySecond prints the member's grants in each wall-clock second.
func reportEverySecond(ctx context.Context, member int, mu *sync.Mutex, total *int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			mu.Lock()
			n := *total
			mu.Unlock()
			fmt.Printf("member %d: %s granted %d\n", member, now.Format("15:04:05"), n-last)
			last = n
		}
	}
}

// child is one member process of the demonstration.
type child struct {
	cmd   *exec.Cmd
	addr  string // the member's actor system address
	stdin io.WriteCloser
	lines chan string
}

// demonstrate starts the members as child processes, lets them acquire,
// optionally kills the hosting member half-way, and reports the combined
// figures.
func demonstrate(cfg config) (summary, error) {
	var members []*child
	for i := 1; i <= cfg.members; i++ {
		m, err := startChild(cfg, i)
		if err != nil {
			return summary{}, err
		}
		defer m.cmd.Process.Kill() //nolint:errcheck // best effort on the way out
		members = append(members, m)
	}
	host, err := agreeOnHost(members)
	if err != nil {
		return summary{}, err
	}
	fmt.Printf("%d members; key %q lives on %s; %v per sliding second for %v\n",
		cfg.members, cfg.key, host, cfg.rate, cfg.duration)

	var (
		mu     sync.Mutex
		grants []int64
		wg     sync.WaitGroup
	)
	for _, m := range members {
		m.stdin.Write([]byte("go\n")) //nolint:errcheck // a dead child shows in its count
		wg.Go(func() {
			for line := range m.lines {
				if at, ok := grantTime(line); ok {
					mu.Lock()
					grants = append(grants, at)
					mu.Unlock()
				} else if !strings.HasPrefix(line, "HOST") {
					fmt.Println(line)
				}
			}
		})
	}

	var killed int64
	if cfg.kill {
		time.Sleep(cfg.duration / 2)
		killed = killHost(members, host)
	}
	wg.Wait()

	return summarize(slices.Sorted(slices.Values(grants)), killed), nil
}

// startChild starts member i as a child process of this one.
func startChild(cfg config, i int) (*child, error) {
	args := []string{"-member", strconv.Itoa(i),
		"-members", strconv.Itoa(cfg.members), "-automan", strconv.Itoa(cfg.automan),
		"-rate", fmt.Sprint(cfg.rate), "-for", cfg.duration.String(),
		"-workers", strconv.Itoa(cfg.workers), "-key", cfg.key}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, "\n"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting member %d: %w", i, err)
	}

	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 4096)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		_ = cmd.Wait()
	}()

	// The automanaged provider's HTTP server announces itself first.
	for line := range c.lines {
		if addr, found := strings.CutPrefix(line, "ADDR "); found {
			c.addr = addr
			return c, nil
		}
	}

	return nil, fmt.Errorf("member %d exited before it started", i)
}

// agreeOnHost asks every member where the key lives until they agree.
func agreeOnHost(members []*child) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		seen := make(map[string]bool)
		for _, m := range members {
			m.stdin.Write([]byte("where\n")) //nolint:errcheck // a dead child never answers
			line, ok := <-m.lines
			if !ok {
				return "", errors.New("a member exited while the cluster formed")
			}
			seen[strings.TrimPrefix(line, "HOST ")] = true
		}
		if len(seen) == 1 && !seen[""] {
			for host := range seen {
				return host, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	return "", errors.New("the members did not agree on where the key lives within 30 s")
}

// killHost kills the member at host and returns when, in unix ns.
func killHost(members []*child, host string) int64 {
	for _, m := range members {
		if m.addr == host {
			_ = m.cmd.Process.Kill()
			fmt.Printf("killed the member at %s, which hosted the key\n", host)
			return time.Now().UnixNano()
		}
	}

	return 0
}

// grantTime parses a "GRANT <unix ns>" line.
func grantTime(line string) (int64, bool) {
	rest, ok := strings.CutPrefix(line, "GRANT ")
	if !ok {
		return 0, false
	}
	at, err := strconv.ParseInt(rest, 10, 64)

	return at, err == nil
}

// summary is what the demonstration measured. Windows are counted as the
// members saw the grants: a second of arrivals can hold a few more than
// the limit, because a grant reaches its member a moment after the bucket
// made it, some over the network and some not. If delivery takes under
// 50 ms, any proofWindow of arrivals lies within one second of the
// bucket's grants, so the proof counts are the ones the limit bounds.
type summary struct {
	grants  int
	span    time.Duration
	killed  bool
	resumed time.Duration // from the kill to the next grant

	// Most grants in any second and in any proofWindow: before the kill
	// (the whole run without -kill), around the move, and after it.
	before, during, after [2]int
}

// proofWindow is a second less the most a grant is taken to need to reach
// its member.
const proofWindow = 950 * time.Millisecond

// summarize measures the sorted grants; killed is when the hosting member
// was killed, in unix ns, or 0.
func summarize(grants []int64, killed int64) summary {
	if len(grants) == 0 {
		return summary{}
	}

	end := grants[len(grants)-1]
	sum := summary{grants: len(grants), span: time.Duration(end - grants[0]), killed: killed != 0}
	windows := []time.Duration{time.Second, proofWindow}
	if killed == 0 {
		for i, w := range windows {
			sum.before[i], _ = mostInWindow(grants, w, 0, end)
		}
		return sum
	}

	i, found := slices.BinarySearch(grants, killed+1)
	if !found && i == len(grants) {
		return sum // nothing after the kill
	}
	resumed := grants[i]
	sum.resumed = time.Duration(resumed - killed)
	for i, w := range windows {
		moveEnd := resumed + int64(w)
		sum.before[i], _ = mostInWindow(grants, w, 0, killed-int64(w))
		sum.during[i], _ = mostInWindow(grants, w, killed-int64(w), moveEnd)
		sum.after[i], _ = mostInWindow(grants, w, moveEnd, end)
	}

	return sum
}

// print writes the summary.
func (s summary) print(cfg config) {
	if s.grants == 0 {
		fmt.Println("no grants")
		return
	}

	fmt.Printf("together: %d granted, the first and the last %v apart\n", s.grants,
		s.span.Round(time.Millisecond))
	if !s.killed {
		fmt.Printf("most granted in any sliding second: %d as the members saw them; "+
			"in any %v: %d (limit %v)\n", s.before[0], proofWindow, s.before[1], cfg.rate)
		return
	}

	if s.resumed == 0 {
		fmt.Println("nothing was granted after the kill")
		return
	}
	fmt.Printf("served again %v after the kill (the new activation starts full)\n",
		s.resumed.Round(time.Millisecond))
	for i, w := range []time.Duration{time.Second, proofWindow} {
		fmt.Printf("most granted in any %v: before the kill %d, around the move %d, after %d "+
			"(limit %v)\n", w, s.before[i], s.during[i], s.after[i], cfg.rate)
	}
}

// mostInWindow returns the most grants in any window [t, t+per) that starts
// at a grant in [from, to), and where it starts. Grants are sorted.
func mostInWindow(grants []int64, per time.Duration, from, to int64) (int, int64) {
	best, at, j := 0, int64(0), 0
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
