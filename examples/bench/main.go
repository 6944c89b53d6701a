// Command bench measures drip against its peers in one run and writes the
// figures, with plots, to docs/BENCHMARKS.md:
//
//	go run ./examples/bench            # the full run, about four minutes
//	go run ./examples/bench -quick     # a short run, under a minute
//	go run ./examples/bench -sections throughput,accuracy -out /tmp/bench
//
// It has four sections. Throughput asks drip, golang.org/x/time/rate,
// go.uber.org/ratelimit and protoactor's raw request/response for units
// nobody runs short of, from 1, 64 and 1024 goroutines, and from an actor
// keeping 1000 requests in flight. Remote does the same over loopback
// between two child processes, against protoactor's raw remote round trip. Accuracy runs a weighted mix at 100,
// 1,000 and 10,000 per second in real time through every limiter and
// compares each grant with the exact ideal schedule. Scale queues a million
// waiters on one bucket, makes 100,000 keyed buckets, times the timer
// actor's wake-ups as the number of waiting buckets grows, and measures the
// CPU that 10,000 idle buckets use.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/node"
)

// The sections a run can choose.
const (
	sectionThroughput = "throughput"
	sectionAccuracy   = "accuracy"
	sectionScale      = "scale"
)

var allSections = []string{sectionThroughput, sectionRemote, sectionAccuracy, sectionScale}

// config is what a run measures and where it writes.
type config struct {
	out      string   // directory for BENCHMARKS.md and the plots
	command  string   // the command line, recorded in the report
	sections []string // which of allSections to run

	benchTime  time.Duration // how long each throughput figure runs
	goroutines []int         // goroutine counts for throughput

	accuracyTime time.Duration // how long each rate runs in real time
	rates        []int         // units per second for accuracy

	waiters     int           // waiters queued on one bucket
	keys        int           // keyed buckets
	timerSizes  []int         // buckets with a pending wake-up
	idleBuckets int           // buckets left idle
	idleTime    time.Duration // how long the idle buckets are watched
}

// has reports whether cfg runs section.
func (cfg config) has(section string) bool {
	return slices.Contains(cfg.sections, section)
}

// main parses the flags, runs the chosen sections and writes the report.
func main() {
	serveRemoteIfChild()

	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config; -quick changes the
// defaults of the durations only, so an explicit flag still wins.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	out := fs.String("out", "docs", "directory to write BENCHMARKS.md and the plots to")
	quick := fs.Bool("quick", false, "a short run: 2 s per rate and per idle watch, 300 ms per figure")
	sections := fs.String("sections", strings.Join(allSections, ","),
		"comma-separated sections to run: "+strings.Join(allSections, ", "))
	benchTime := fs.Duration("benchtime", 0, "time per throughput figure (default 1s, -quick 300ms)")
	accTime := fs.Duration("accuracy-time", 0, "time per rate (default 10s, -quick 2s)")
	idleTime := fs.Duration("idle-time", 0,
		"time the idle buckets are watched (default 10s, -quick 2s)")
	rates := fs.String("rates", "100,1000,10000", "rates per second for accuracy")
	goroutines := fs.String("goroutines", "1,64,1024", "goroutine counts for throughput")
	waiters := fs.Int("waiters", 1_000_000, "waiters queued on one bucket")
	keys := fs.Int("keys", 100_000, "keyed buckets")
	timerSizes := fs.String("timer-sizes", "10,1000,100000", "buckets waiting on the timer")
	idle := fs.Int("idle-buckets", 10_000, "idle buckets whose CPU is measured")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := config{out: *out, command: commandLine(args), waiters: *waiters, keys: *keys,
		idleBuckets: *idle}
	cfg.benchTime = pick(*benchTime, *quick, time.Second, 300*time.Millisecond)
	cfg.accuracyTime = pick(*accTime, *quick, 10*time.Second, 2*time.Second)
	cfg.idleTime = pick(*idleTime, *quick, 10*time.Second, 2*time.Second)

	var errs []error
	cfg.sections = strings.Split(*sections, ",")
	for _, s := range cfg.sections {
		if !slices.Contains(allSections, s) {
			errs = append(errs, fmt.Errorf("-sections: unknown section %q, want %s",
				s, strings.Join(allSections, ", ")))
		}
	}
	var err error
	if cfg.rates, err = parseInts("-rates", *rates); err != nil {
		errs = append(errs, err)
	}
	if cfg.goroutines, err = parseInts("-goroutines", *goroutines); err != nil {
		errs = append(errs, err)
	}
	if cfg.timerSizes, err = parseInts("-timer-sizes", *timerSizes); err != nil {
		errs = append(errs, err)
	}

	return cfg, errors.Join(errs...)
}

// pick returns set if it is not zero, else the quick or the full default.
func pick(set time.Duration, quick bool, full, short time.Duration) time.Duration {
	switch {
	case set > 0:
		return set
	case quick:
		return short
	}

	return full
}

// parseInts parses a comma-separated list of positive integers given to
// the flag called name.
func parseInts(name, list string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", name, f)
		}
		ns = append(ns, n)
	}

	return ns, nil
}

// commandLine renders the command that ran, for the report.
func commandLine(args []string) string {
	return strings.TrimSpace("go run ./examples/bench " + strings.Join(args, " "))
}

// results holds what each section measured; a section not run leaves its
// part empty.
type results struct {
	machine    machine
	started    time.Time
	took       time.Duration
	throughput *throughputResults
	remote     *remoteResults
	accuracy   *accuracyResults
	scale      *scaleResults
}

// run measures the sections cfg chooses, printing progress to w, and
// writes the report and plots into cfg.out.
func run(cfg config, w io.Writer) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", cfg.out, err)
	}
	res := results{machine: describeMachine(), started: time.Now()}

	var err error
	if cfg.has(sectionThroughput) {
		fmt.Fprintln(w, "throughput...")
		if res.throughput, err = runThroughput(cfg); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if cfg.has(sectionRemote) {
		fmt.Fprintln(w, "remote...")
		if res.remote, err = runRemote(cfg); err != nil {
			return fmt.Errorf("remote: %w", err)
		}
	}
	if cfg.has(sectionAccuracy) {
		fmt.Fprintln(w, "accuracy...")
		if res.accuracy, err = runAccuracy(cfg, w); err != nil {
			return fmt.Errorf("accuracy: %w", err)
		}
	}
	if cfg.has(sectionScale) {
		fmt.Fprintln(w, "scale...")
		if res.scale, err = runScale(cfg); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	res.took = time.Since(res.started)

	plots, err := writePlots(cfg.out, res)
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.out, "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte(renderReport(cfg, res, plots)), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(w, "wrote %s in %v\n", path, res.took.Round(time.Second))

	return nil
}

// newSystem returns an actor system that logs nothing and lets go of its
// dead-letter throttle goroutine quickly.
func newSystem() *actor.ActorSystem {

	return actor.NewActorSystem(actor.WithLoggerFactory(node.Quiet),
		actor.WithDeadLetterThrottleInterval(time.Millisecond))
}
