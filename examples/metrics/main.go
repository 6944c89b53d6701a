// Command metrics shows drip's metrics: it serves them in the Prometheus
// text format while a small workload runs through a Keyed scheduler with
// two keys, so that grants, rejections, waits and queues move.
//
// The metrics go through the OpenTelemetry SDK to its Prometheus exporter,
// which registers with a registry of the program's own: nothing is added
// to the global Prometheus registry or to the global MeterProvider.
//
// Usage:
//
//	go run ./examples/metrics [-addr 127.0.0.1:9464] [-for 0]
//	curl -s http://127.0.0.1:9464/metrics | grep ^drip_
//
// It runs until interrupted, or for the -for duration if it is not zero.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/scheduler"
)

// The workload's keys: one that has room for its callers and one that
// does not, so that its queue fills and callers are refused.
const (
	roomyKey   = "api.example.com"
	crowdedKey = "search.example.com"
)

// rules are the limits of the two keys.
var rules = scheduler.Rules{Exact: map[string]scheduler.Limit{
	roomyKey:   {Rate: 50, Burst: 10},
	crowdedKey: {Rate: 5, Burst: 2},
}}

// Each key has workers callers that give up on a request after patience,
// and at most maxQueue wait per key.
const (
	workers  = 4
	patience = 300 * time.Millisecond
	maxQueue = 2
)

// config is what the flags select.
type config struct {
	addr     string
	duration time.Duration // 0: until interrupted
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err == nil {
		err = run(ctx, ln, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9464", "host:port to serve /metrics on")
	duration := fs.Duration("for", 0, "how long to run; 0 means until interrupted")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if *duration < 0 {
		return config{}, fmt.Errorf("-for %v is negative", *duration)
	}

	return config{addr: *addr, duration: *duration}, nil
}

// run serves the metrics on ln at /metrics and runs the workload until ctx
// ends; then it stops both and closes ln. It writes where to look to out.
func run(ctx context.Context, ln net.Listener, out io.Writer) error {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		ln.Close()
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())

	sys := actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet))
	defer sys.Shutdown()
	k, err := scheduler.NewKeyed(sys, rules, scheduler.WithMaxQueue(maxQueue),
		scheduler.WithMeterProvider(mp))
	if err != nil {
		ln.Close()
		return err
	}
	defer k.Stop()

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "drip metrics for keys %s and %s at http://%s/metrics\n",
		roomyKey, crowdedKey, ln.Addr())

	work(ctx, k)

	// The workload has stopped; give a scrape in progress a moment.
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}

	return err
}

// work runs the callers of both keys until ctx ends.
func work(ctx context.Context, k *scheduler.Keyed) {
	var wg sync.WaitGroup
	for _, key := range []string{roomyKey, crowdedKey} {
		for i := range workers {
			wg.Go(func() { call(ctx, k, key, float64(1+i%2)) })
		}
	}
	wg.Wait()
}

// call asks for amount units of key again and again until ctx ends, as a
// client of the API would before each request. A refused caller waits a
// little before it asks again.
func call(ctx context.Context, k *scheduler.Keyed, key string, amount float64) {
	s := k.For(key)
	for ctx.Err() == nil {
		wait, cancel := context.WithTimeout(ctx, patience)
		err := s.Acquire(wait, amount)
		cancel()
		if err != nil {
			sleep(ctx, 50*time.Millisecond)
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
