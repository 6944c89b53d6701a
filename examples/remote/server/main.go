// Command server hosts drip buckets under fixed names over protoactor
// remote, so that programs on other nodes share their limits: each one
// attaches to a bucket as actor.NewPID(address, name) with
// scheduler.Attach, as examples/remote/client does.
//
// It prints one line saying where it listens and what it hosts, serves
// until SIGINT or SIGTERM, then stops its buckets (every waiter gets
// ErrStopped), prints what each bucket granted, and shuts remote down.
//
// Usage:
//
//	go run ./examples/remote/server [-addr 127.0.0.1:8090] [-rate 100] [-burst 100]
//		[-mode leaky|sliding] [-buckets api,search]
//
// The address is also the one clients use, so give a host they can reach,
// not an empty one or 0.0.0.0.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/scheduler"
)

// config is what the flags select.
type config struct {
	host    string
	port    int
	buckets []string // actor names, one bucket each
	limit   scheduler.Limit
}

// main parses the flags and serves until a signal comes.
func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "host:port to listen on and to advertise")
	rate := fs.Float64("rate", 100, "units per second")
	burst := fs.Float64("burst", 0, "leaky bucket capacity; 0 means the rate")
	mode := fs.String("mode", "leaky", "leaky or sliding")
	buckets := fs.String("buckets", "api", "comma-separated bucket names")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := config{limit: scheduler.Limit{Rate: *rate, Burst: *burst}}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return config{}, fmt.Errorf("-addr %q: %v", *addr, err)
	}
	if cfg.port, err = strconv.Atoi(port); err != nil || cfg.port < 0 || cfg.port > 65535 {
		return config{}, fmt.Errorf("-addr %q: port %q is not a number from 0 to 65535",
			*addr, port)
	}
	cfg.host = host

	switch *mode {
	case "leaky":
		cfg.limit.Mode = scheduler.LeakyBucket
	case "sliding":
		cfg.limit.Mode = scheduler.SlidingWindow
	default:
		return config{}, fmt.Errorf("-mode %q: want leaky or sliding", *mode)
	}
	if err := cfg.limit.Validate(); err != nil {
		return config{}, fmt.Errorf("-rate %v -burst %v: %w", *rate, *burst, err)
	}

	for _, name := range strings.Split(*buckets, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.buckets = append(cfg.buckets, name)
		}
	}
	if len(cfg.buckets) == 0 {
		return config{}, fmt.Errorf("-buckets %q: need at least one name", *buckets)
	}

	return cfg, nil
}

// serve hosts cfg's buckets until ctx ends, then shuts everything down. It
// writes the listening line, and at the end each bucket's totals, to out.
func serve(ctx context.Context, cfg config, out io.Writer) error {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet))
	defer sys.Shutdown()

	r, err := node.StartRemote(sys, cfg.host, cfg.port)
	if err != nil {
		return err
	}
	// Not graceful: Shutdown(true) waits for every endpoint writer to stop,
	// and stopping a bucket tells each of its watchers, the requesters of
	// clients long gone included, which starts a writer that retries its
	// dial 5 times 2 s apart: shutdown would hang for 10 s. Shutdown(false)
	// stops the gRPC server at once; the process exits right after, which
	// closes every connection, and that is how the clients learn of it.
	defer r.Shutdown(false)

	// Host the buckets.
	scheds := make([]*scheduler.Scheduler, 0, len(cfg.buckets))
	defer func() {
		for _, s := range scheds {
			s.Stop()
		}
	}()
	for _, name := range cfg.buckets {
		s, err := scheduler.New(sys, cfg.limit, scheduler.WithName(name))
		if err != nil {
			return err
		}
		scheds = append(scheds, s)
	}
	fmt.Fprintf(out, "listening on %s with buckets %s (%s)\n",
		sys.Address(), strings.Join(cfg.buckets, ", "), describe(cfg.limit))

	<-ctx.Done()

	// Report, then stop the buckets before remote goes, so that every
	// waiter's ErrStopped still reaches its node.
	for i, s := range scheds {
		fmt.Fprintln(out, totals(cfg.buckets[i], s))
		s.Stop()
	}

	return nil
}

// describe names a limit for the listening line.
func describe(l scheduler.Limit) string {
	per := l.Per
	if per == 0 {
		per = time.Second
	}
	if l.Mode == scheduler.SlidingWindow {
		return fmt.Sprintf("sliding window, %v per %v", l.Rate, per)
	}
	burst := l.Burst
	if burst == 0 {
		burst = l.Rate
	}

	return fmt.Sprintf("leaky bucket, %v per %v, burst %v", l.Rate, per, burst)
}

// totals returns one line with what the bucket name granted and rejected.
func totals(name string, s *scheduler.Scheduler) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	st, err := s.Status(ctx)
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}

	return fmt.Sprintf("%s: granted %d (%v units), rejected %d", name, st.Granted,
		st.GrantedAmount, st.Rejected)
}
