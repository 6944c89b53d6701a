// Command client attaches to a bucket hosted by examples/remote/server on
// another node and asks it for n units, one Acquire per goroutine, started
// in order. It prints a short summary: how many were granted, how long
// that took, the rate achieved, the most grants seen in any rolling window
// of the bucket's period next to what the contract allows there, and the
// errors, if any. It exits with status 1 if a call failed or the bound was
// exceeded.
//
// The goroutines start in order, but reach the bucket in the order the Go
// scheduler runs them, which may differ a little; the bucket serves them
// strictly in the order they arrive. A grant is timed when its Acquire
// returns, a moment after the bucket granted it.
//
// A server that is down or silent makes the calls fail with
// scheduler.ErrUnreachable within about 1.5 s; the client does not hang.
// The server answers at the -listen address, so on another machine give
// one it can reach.
//
// Usage, with the server running (go run ./examples/remote/server):
//
//	go run ./examples/remote/client [-server 127.0.0.1:8090] [-bucket api] [-n 500]
//		[-listen 127.0.0.1:0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/scheduler"
)

// defaultLag is how much later than its grant an Acquire may return in
// real time: the reply crosses the network and wakes a goroutine, some
// later than others. So the bound is checked on windows that much shorter
// than the period, as examples/throttle does for starts: a sliding window
// grants its next batch the instant the last one leaves, and a batch whose
// replies came back quicker than the one before seems to share its window.
// On a loaded machine replies lag more; -lag sets it.
const defaultLag = 5 * time.Millisecond

// config is what the flags select.
type config struct {
	server string // host:port of the bucket's node
	bucket string // the bucket's actor name there
	n      int
	listen string        // host:port of this node's own remote
	lag    time.Duration // see defaultLag
}

// summary is the outcome of a run.
type summary struct {
	n         int
	granted   int
	elapsed   time.Duration // from the first call to the last grant
	window    time.Duration // the bucket's period; 0 if its limit is unknown
	maxWindow int           // most grants seen in any window [t, t+window)
	maxSlack  int           // the same in windows [t, t+window-lag)
	lag       time.Duration // see defaultLag
	bound     int           // most grants the contract allows in such a window
	errs      []error       // one per failed call, in call order
	reach     error         // why no call was made: the bucket could not be reached
}

// main parses the flags, runs, prints the summary and sets the exit status.
func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	sum.print(os.Stdout)
	if !sum.ok() {
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	server := fs.String("server", "127.0.0.1:8090", "host:port of the server's node")
	bucket := fs.String("bucket", "api", "name of the bucket on the server")
	n := fs.Int("n", 500, "number of Acquire calls, one unit each")
	listen := fs.String("listen", "127.0.0.1:0", "host:port for this node's remote")
	lag := fs.Duration("lag", defaultLag, "how late a reply may come back, for the window check")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := config{server: *server, bucket: *bucket, n: *n, listen: *listen, lag: *lag}
	if cfg.lag < 0 {
		return config{}, fmt.Errorf("-lag %v is negative", cfg.lag)
	}
	if cfg.n <= 0 {
		return config{}, fmt.Errorf("-n %d: need at least one call", cfg.n)
	}
	if cfg.bucket == "" {
		return config{}, errors.New("-bucket: need a name")
	}
	if _, _, err := net.SplitHostPort(cfg.server); err != nil {
		return config{}, fmt.Errorf("-server %q: %v", cfg.server, err)
	}
	if _, _, err := splitListen(cfg.listen); err != nil {
		return config{}, err
	}

	return cfg, nil
}

// splitListen splits the -listen address into a host and a port number.
func splitListen(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("-listen %q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("-listen %q: port %q is not a number from 0 to 65535",
			addr, port)
	}

	return host, p, nil
}

// run starts a node, makes cfg.n Acquire calls to the remote bucket and
// measures them. It fails only if the node cannot start; failed calls are
// part of the summary.
func run(ctx context.Context, cfg config) (summary, error) {
	host, port, _ := splitListen(cfg.listen)
	sys := actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet))
	defer sys.Shutdown()
	r, err := node.StartRemote(sys, host, port)
	if err != nil {
		return summary{}, err
	}
	// Not graceful: with the server down, Shutdown(true) would wait for the
	// endpoint writer, which retries its dial 5 times 2 s apart. The server
	// learns that this node left when the process exits and its connection
	// closes.
	defer r.Shutdown(false)

	s := scheduler.Attach(sys, actor.NewPID(cfg.server, cfg.bucket))
	defer s.Stop()

	// The limit gives the bound; asking for it also fails fast, with
	// ErrUnreachable, when the server is down.
	st, err := s.Status(ctx)
	if err != nil {
		return summary{n: cfg.n, reach: fmt.Errorf("bucket %s at %s: %w",
			cfg.bucket, cfg.server, err)}, nil
	}

	at, errs := acquireAll(ctx, s, cfg.n)

	return summarize(st.Limit, at, errs, cfg.lag), nil
}

// acquireAll starts n goroutines in order, each asking s for one unit, and
// returns when each call returned (measured from the first start) and the
// errors of those that failed, by index.
func acquireAll(ctx context.Context, s *scheduler.Scheduler, n int) ([]time.Duration, []error) {
	at := make([]time.Duration, n)
	errs := make([]error, n)

	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Acquire(ctx, 1)
			at[i] = time.Since(t0)
		})
	}
	wg.Wait()

	return at, errs
}

// summarize measures the calls that returned at the times at, against
// limit l.
func summarize(l scheduler.Limit, at []time.Duration, errs []error, lag time.Duration) summary {
	sum := summary{n: len(at), window: l.Per, bound: bound(l)}

	var granted []time.Duration
	for i, err := range errs {
		if err != nil {
			sum.errs = append(sum.errs, err)
			continue
		}
		granted = append(granted, at[i])
	}
	sum.granted = len(granted)

	slices.Sort(granted)
	if len(granted) > 0 {
		sum.elapsed = granted[len(granted)-1]
	}
	sum.maxWindow = maxInWindow(granted, l.Per)
	sum.lag = lag
	sum.maxSlack = maxInWindow(granted, l.Per-lag)

	return sum
}

// bound returns the most units l lets a bucket grant in any window of
// length l.Per: Burst + Rate for a leaky bucket, Rate for a sliding
// window.
func bound(l scheduler.Limit) int {
	if l.Mode == scheduler.SlidingWindow {
		return int(l.Rate)
	}

	return int(l.Burst + l.Rate)
}

// maxInWindow returns the most of the sorted times that fall in one window
// [t, t+width). The fullest window starts at one of the times.
func maxInWindow(sorted []time.Duration, width time.Duration) int {
	best, end := 0, 0
	for first, t := range sorted {
		for end < len(sorted) && sorted[end] < t+width {
			end++
		}
		best = max(best, end-first)
	}

	return best
}

// ok reports whether every call was granted within the bound.
func (sum summary) ok() bool {
	return sum.reach == nil && len(sum.errs) == 0 && sum.maxSlack <= sum.bound
}

// print writes the summary.
func (sum summary) print(w io.Writer) {
	if sum.reach != nil {
		fmt.Fprintf(w, "granted 0 of %d: no call made, %v\n", sum.n, sum.reach)
		return
	}

	rate := 0.0
	if sum.elapsed > 0 {
		rate = float64(sum.granted) / sum.elapsed.Seconds()
	}
	fmt.Fprintf(w, "granted %d of %d in %v: %.1f per second\n", sum.granted, sum.n,
		sum.elapsed.Round(time.Millisecond), rate)

	if sum.window > 0 {
		verdict := "within"
		if sum.maxSlack > sum.bound {
			verdict = "OVER"
		}
		fmt.Fprintf(w, "most granted in any %v window: %d, %s the bound %d", sum.window,
			sum.maxSlack, verdict, sum.bound)
		if sum.maxWindow > sum.bound && sum.maxWindow > sum.maxSlack {
			fmt.Fprintf(w, " (%d with the returns in a window's last %v: reply lag blurs it)",
				sum.maxWindow, sum.lag)
		}
		fmt.Fprintln(w)
	}

	if len(sum.errs) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprintf(w, "errors: %d, the first: %v\n", len(sum.errs), sum.errs[0])
}
