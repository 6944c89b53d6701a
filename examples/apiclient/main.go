// Command apiclient calls a rate-limited HTTP API through
// scheduler.Transport, as close to the API's limit as it can go without
// being refused.
//
// It starts a local server on loopback that allows each host -rate
// requests in any sliding second, counted by arrival, and answers 429 Too
// Many Requests with a Retry-After header beyond that. It then sends -n
// GET requests from -c goroutines through a Transport whose limit is the
// same sliding window, and prints how many requests were refused and how
// the elapsed time compares with the ideal schedule. It exits with status
// 1 if the server refused any request.
//
// The client's window is -margin longer than the server's (see
// clientLimit); -margin 0 drops the margin, and some requests then arrive
// too close together and are refused. The client opens its connections
// before it starts (see warmDialer); -warm=false leaves that to the first
// window, which then needs a larger margin.
//
// Usage:
//
//	go run ./examples/apiclient [-n 1000] [-rate 100] [-c 200] [-margin 15ms] [-warm=true]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/scheduler"
)

// per is the server's window, and the period of the ideal schedule.
const per = time.Second

// defaultMargin is how much longer the client's window is than the
// server's; see clientLimit.
const defaultMargin = 15 * time.Millisecond

// config is what the flags select.
type config struct {
	n       int           // requests to send
	rate    int           // requests allowed per second
	workers int           // goroutines sending them
	margin  time.Duration // added to the client's window; see clientLimit
	warm    bool          // open the connections before the first request
}

// summary is what one run measured.
type summary struct {
	sent      int           // requests the client sent and got an answer to
	ok        int           // answered 200
	tooMany   int           // answered 429
	other     int           // any other answer
	refused   int           // 429s the server counted
	busiest   int           // most requests that arrived at the server in one window
	headroom  time.Duration // see closestWindow; negative when the server refused some
	measured  bool          // whether there were enough arrivals for headroom
	elapsed   time.Duration
	ideal     time.Duration
	overIdeal float64 // (elapsed - ideal) / ideal, in percent
}

// main runs the client against the server and prints the summary.
func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiclient:", err)
		os.Exit(2)
	}

	sum, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiclient:", err)
		os.Exit(1)
	}
	printSummary(os.Stdout, cfg, sum)
	if sum.tooMany > 0 {
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("apiclient", flag.ContinueOnError)
	n := fs.Int("n", 1000, "number of requests")
	rate := fs.Int("rate", 100, "requests the server allows in any sliding second")
	workers := fs.Int("c", 200, "goroutines sending requests")
	margin := fs.Duration("margin", defaultMargin,
		"added to the client's window; 0 lets delivery jitter break the server's limit")
	warm := fs.Bool("warm", true, "open the connections before the first request")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := config{n: *n, rate: *rate, workers: *workers, margin: *margin,
		warm: *warm}
	switch {
	case cfg.n <= 0:
		return config{}, fmt.Errorf("-n %d: need at least one request", cfg.n)
	case cfg.rate <= 0:
		return config{}, fmt.Errorf("-rate %d: must be positive", cfg.rate)
	case cfg.workers <= 0:
		return config{}, fmt.Errorf("-c %d: need at least one goroutine", cfg.workers)
	case cfg.margin < 0:
		return config{}, fmt.Errorf("-margin %v: must not be negative", cfg.margin)
	}

	return cfg, nil
}

// clientLimit is the client's limit: the server's window, margin longer.
//
// The bucket grants request i+rate exactly one window after request i,
// but each request reaches the server a moment after its grant: the
// goroutine wakes up, the connection is dialled or taken from the pool,
// the request is written and read. That delay varies (the first requests
// dial, later ones reuse connections), and when request i was slower to
// arrive than request i+rate, the server sees both within one window,
// with rate others between them, and refuses the last. A margin longer
// than the spread of those delays keeps every pair a full window apart on
// arrival; it lengthens each window by margin/per. The spread grows with
// the number of requests a window releases at once and with the machine's
// load: on a 2-core machine, 100 at once needed 2 to 13 ms when the
// machine was otherwise idle, and up to 25 ms while other builds ran. The
// default, 15 ms, costs 1.5%, about all that staying within 2% of the
// ideal schedule leaves, so under heavy load some runs still see a 429;
// the summary's headroom shows how close a run came.
func clientLimit(cfg config) scheduler.Limit {
	return scheduler.Limit{Rate: float64(cfg.rate), Per: per + cfg.margin,
		Mode: scheduler.SlidingWindow}
}

// idealElapsed returns when the last of n requests starts at rate per
// sliding window of length per, the first rate at once: ceil(n/rate)-1
// windows.
func idealElapsed(n, rate int, per time.Duration) time.Duration {
	return time.Duration((n+rate-1)/rate-1) * per
}

// run starts the server, sends cfg.n requests through the Transport, and
// measures the outcome.
func run(cfg config) (summary, error) {
	srv, err := startServer(cfg.rate, per)
	if err != nil {
		return summary{}, err
	}
	defer srv.close()

	// One bucket, for the server's host; any other host is refused.
	sys := newSystem()
	defer sys.Shutdown()
	keyed, err := scheduler.NewKeyed(sys, scheduler.Rules{
		Exact: map[string]scheduler.Limit{srv.host: clientLimit(cfg)}})
	if err != nil {
		return summary{}, err
	}
	defer keyed.Stop()

	// The pool keeps a connection for every request that may be in flight.
	dialer := &warmDialer{}
	defer dialer.close()
	if cfg.warm {
		if err := dialer.open(srv.host, min(cfg.rate, cfg.n)); err != nil {
			return summary{}, err
		}
	}
	base := &http.Transport{MaxIdleConnsPerHost: cfg.rate, DialContext: dialer.DialContext}
	defer base.CloseIdleConnections()
	var mu sync.Mutex
	var last time.Time // the last request's start
	record := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		last = time.Now()
		mu.Unlock()
		return base.RoundTrip(req)
	})
	client := &http.Client{Transport: &scheduler.Transport{Keyed: keyed, Base: record}}

	t0 := time.Now()
	sum, err := send(client, "http://"+srv.host+"/", cfg)
	if err != nil {
		return summary{}, err
	}

	sum.refused, sum.busiest, sum.headroom, sum.measured = srv.stats(cfg.rate)
	sum.elapsed = last.Sub(t0)
	sum.ideal = idealElapsed(cfg.n, cfg.rate, per)
	if sum.ideal > 0 {
		sum.overIdeal = 100 * float64(sum.elapsed-sum.ideal) / float64(sum.ideal)
	}

	return sum, nil
}

// send makes cfg.n GET requests of url with c from cfg.workers goroutines
// and counts the answers.
func send(c *http.Client, url string, cfg config) (summary, error) {
	next := make(chan struct{}, cfg.n)
	for range cfg.n {
		next <- struct{}{}
	}
	close(next)

	var (
		mu   sync.Mutex
		sum  summary
		errs []error
		wg   sync.WaitGroup
	)
	for range min(cfg.workers, cfg.n) {
		wg.Go(func() {
			for range next {
				status, err := get(c, url)

				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case status == http.StatusOK:
					sum.ok++
				case status == http.StatusTooManyRequests:
					sum.tooMany++
				default:
					sum.other++
				}
				if err == nil {
					sum.sent++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if len(errs) > 0 {
		return summary{}, fmt.Errorf("%d requests failed, the first: %w", len(errs), errs[0])
	}

	return sum, nil
}

// get sends one GET of url and returns the status, having read the body so
// that the connection goes back to the pool.
func get(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}

	return resp.StatusCode, nil
}

// roundTripFunc is a RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// newSystem returns an actor system that logs nothing.
func newSystem() *actor.ActorSystem {

	return actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet))
}

// server is the rate-limited API: a loopback HTTP server.
type server struct {
	host  string // "127.0.0.1:port"
	http  *http.Server
	start time.Time

	mu      sync.Mutex
	windows map[string]*window // by Host header
	arrived []time.Duration    // every arrival, refused or not, since start
	refused int
}

// startServer starts a server that allows each host rate requests in any
// sliding window of length per.
func startServer(rate int, per time.Duration) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}

	s := &server{host: ln.Addr().String(), start: time.Now(), windows: map[string]*window{}}
	newWindow := func() *window { return &window{limit: rate, per: per} }
	s.http = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		s.serve(w, r, newWindow)
	})}
	go s.http.Serve(ln) // returns ErrServerClosed once close is called

	return s, nil
}

// serve answers 200 if r's host is within its limit, else 429.
func (s *server) serve(w http.ResponseWriter, r *http.Request, newWindow func() *window) {
	s.mu.Lock()
	at := time.Since(s.start)
	s.arrived = append(s.arrived, at)
	win, ok := s.windows[r.Host]
	if !ok {
		win = newWindow()
		s.windows[r.Host] = win
	}
	wait, admitted := win.admit(at)
	if !admitted {
		s.refused++
	}
	s.mu.Unlock()

	if !admitted {
		secs := int64(math.Ceil(wait.Seconds())) // Retry-After counts whole seconds
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	fmt.Fprintln(w, "ok")
}

// stats returns how many requests the server refused, the most that
// arrived in any window of length per, and closestWindow's headroom for
// limit.
func (s *server) stats(limit int) (refused, busiest int, headroom time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	sorted := slices.Sorted(slices.Values(s.arrived))
	headroom, ok = closestWindow(sorted, limit, per)

	return s.refused, busiestWindow(sorted, per), headroom, ok
}

// close stops the server and closes its connections.
func (s *server) close() {
	s.http.Close()
}

// window is the server's sliding-window count for one host: at most limit
// requests admitted in any window [t, t+per).
type window struct {
	limit    int
	per      time.Duration
	admitted []time.Duration // arrivals admitted within the last per, oldest first
}

// admit admits a request that arrives at at, if limit have not been
// admitted in (at-per, at]; else it returns how long until one leaves the
// window. Arrival times must not decrease.
func (w *window) admit(at time.Duration) (wait time.Duration, ok bool) {
	// A request admitted at at-per or earlier shares no window with this one.
	drop := 0
	for drop < len(w.admitted) && w.admitted[drop] <= at-w.per {
		drop++
	}
	w.admitted = w.admitted[drop:]

	if len(w.admitted) >= w.limit {
		return w.admitted[0] + w.per - at, false
	}
	w.admitted = append(w.admitted, at)

	return 0, true
}

// busiestWindow returns the most of the sorted times at that fall in one
// window [t, t+width).
func busiestWindow(at []time.Duration, width time.Duration) int {
	best, end := 0, 0
	for first := range at {
		for end < len(at) && at[end] < at[first]+width {
			end++
		}
		best = max(best, end-first)
	}

	return best
}

// closestWindow returns by how much the sorted times at kept clear of
// putting limit+1 of them in one window of length width: the least time
// between a time and the limit-th after it, minus width. It is negative
// when some window holds more than limit, and false when there are not
// limit+1 times.
func closestWindow(at []time.Duration, limit int, width time.Duration) (time.Duration, bool) {
	if len(at) <= limit {
		return 0, false
	}

	closest := at[limit] - at[0]
	for i := 1; i+limit < len(at); i++ {
		closest = min(closest, at[i+limit]-at[i])
	}

	return closest - width, true
}

// warmDialer hands out connections opened ahead of the run, then dials.
//
// A client that has been running has its connections open. A fresh one
// opens them all in its first window, whose requests then reach the
// server several milliseconds later than those of the second window,
// which reuse them; that lag is larger than the rest of the jitter
// together, and only a larger margin absorbs it.
type warmDialer struct {
	net.Dialer
	conns chan net.Conn
}

// open dials n connections to addr, for DialContext to hand out.
func (d *warmDialer) open(addr string, n int) error {
	d.conns = make(chan net.Conn, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		d.conns <- c
	}

	return nil
}

// DialContext returns a connection opened ahead, if one is left, or dials.
func (d *warmDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	default:
		return d.Dialer.DialContext(ctx, network, addr)
	}
}

// close closes the connections never handed out.
func (d *warmDialer) close() {
	for {
		select {
		case c := <-d.conns:
			c.Close()
		default:
			return
		}
	}
}

// printSummary prints the outcome of a run.
func printSummary(w io.Writer, cfg config, sum summary) {
	fmt.Fprintf(w, "%d requests from %d goroutines; the server allows %d per sliding %v,\n",
		cfg.n, min(cfg.workers, cfg.n), cfg.rate, per)
	fmt.Fprintf(w, "the client's window is %v (margin %v).\n\n", per+cfg.margin, cfg.margin)
	fmt.Fprintf(w, "sent        %d\n", sum.sent)
	fmt.Fprintf(w, "200         %d\n", sum.ok)
	fmt.Fprintf(w, "429         %d (the server counted %d)\n", sum.tooMany, sum.refused)
	if sum.other > 0 {
		fmt.Fprintf(w, "other       %d\n", sum.other)
	}
	fmt.Fprintf(w, "busiest 1s  %d arrivals\n", sum.busiest)
	if sum.measured {
		fmt.Fprintf(w, "headroom    %v (the tightest %d+1 arrivals were %v apart)\n",
			sum.headroom.Round(10*time.Microsecond), cfg.rate,
			(per + sum.headroom).Round(10*time.Microsecond))
	}
	fmt.Fprintf(w, "elapsed     %v to the last start; ideal %v (ceil(n/rate)-1 windows): %+.2f%%\n",
		sum.elapsed.Round(time.Millisecond), sum.ideal, sum.overIdeal)
}
