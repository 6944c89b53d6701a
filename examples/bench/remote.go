package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dripsched/drip/internal/node"
	"github.com/dripsched/drip/messages"
	"github.com/dripsched/drip/scheduler"
)

// The remote section runs two child processes of this program on
// loopback, a server and a client, each with its own remote: one remote per
// process (two in one race on gRPC's global logger), and this process
// keeps none, so it leaves no gRPC goroutine behind.
const (
	sectionRemote   = "remote"
	remoteRoleEnv   = "DRIP_BENCH_REMOTE_ROLE"   // "server" or "client"
	remoteServerEnv = "DRIP_BENCH_REMOTE_SERVER" // the client's server address
	remoteTimeEnv   = "DRIP_BENCH_REMOTE_TIME"   // the client's time per figure
)

// remoteResults are the remote section's figures.
type remoteResults struct {
	grantsDrip, grantsRaw figure // one actor, 1000 requests in flight
	dripP50, dripP99      time.Duration
	rawP50, rawP99        time.Duration
}

// serveRemoteIfChild plays a remote role and exits, if this process is
// one of the remote section's children. main and TestMain call it first.
func serveRemoteIfChild() {
	role := os.Getenv(remoteRoleEnv)
	if role == "" {
		return
	}

	var err error
	switch role {
	case "server":
		err = serveRemote()
	case "client":
		err = clientRemote(os.Getenv(remoteServerEnv), os.Getenv(remoteTimeEnv))
	default:
		err = fmt.Errorf("unknown remote role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench remote:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveRemote hosts a drip bucket nobody runs short of, "bucket", and an
// actor that grants at once, "raw", prints "ADDR <address>" and serves
// until stdin closes.
func serveRemote() error {
	sys := newSystem()
	r, err := node.StartRemote(sys, "127.0.0.1", 0)
	if err != nil {
		return err
	}
	defer r.Shutdown(false)

	s, err := scheduler.New(sys, scheduler.Limit{Rate: 1e9, Burst: 1e9}, scheduler.WithName("bucket"))
	if err != nil {
		return err
	}
	defer s.Stop()
	if _, err := sys.Root.SpawnNamed(actor.PropsFromFunc(grantAll), "raw"); err != nil {
		return err
	}

	fmt.Println("ADDR", sys.Address())
	_, _ = io.Copy(io.Discard, os.Stdin)

	return nil
}

// clientRemote measures the server at addr for d each figure and prints
// one line per figure: "GRANTS <target> <ops> <elapsed ns> <allocs>" and
// "LATENCY <target> <p50 ns> <p99 ns>".
func clientRemote(addr, d string) error {
	per, err := time.ParseDuration(d)
	if err != nil {
		return fmt.Errorf("%s: %v", remoteTimeEnv, err)
	}
	sys := newSystem()
	r, err := node.StartRemote(sys, "127.0.0.1", 0)
	if err != nil {
		return err
	}
	defer r.Shutdown(false)
	bucket, raw := actor.NewPID(addr, "bucket"), actor.NewPID(addr, "raw")

	for _, target := range []struct {
		name string
		pid  *actor.PID
	}{{"drip", bucket}, {"raw", raw}} {
		f, err := measureActor(sys, target.pid, per)
		if err != nil {
			return fmt.Errorf("%s: %w", target.name, err)
		}
		fmt.Println("GRANTS", target.name, f.ops, int64(f.elapsed), f.allocs)
	}

	s := scheduler.Attach(sys, bucket)
	defer s.Stop()
	ctx := context.Background()
	for _, target := range []struct {
		name string
		call func() error
	}{
		{"drip", func() error { return s.Acquire(ctx, 1) }},
		{"raw", func() error {
			_, err := sys.Root.RequestFuture(raw, &messages.Acquire{Amount: 1}, 5*time.Second).Result()
			return err
		}},
	} {
		p50, p99, err := roundTrips(target.call, per)
		if err != nil {
			return fmt.Errorf("%s: %w", target.name, err)
		}
		fmt.Println("LATENCY", target.name, int64(p50), int64(p99))
	}

	return nil
}

// roundTrips makes one call after another for d and returns the median and
// the 99th percentile of their times.
func roundTrips(call func() error, d time.Duration) (p50, p99 time.Duration, err error) {
	var took []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		if err := call(); err != nil {
			return 0, 0, err
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)

	return percentile(took, 0.50), percentile(took, 0.99), nil
}

// runRemote starts the server and the client as children and gathers the
// client's figures.
func runRemote(cfg config) (*remoteResults, error) {
	server, lines, err := startChild(remoteRoleEnv + "=server")
	if err != nil {
		return nil, err
	}
	defer server.stop()
	addr, err := expectLine(lines, "ADDR")
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}

	client, lines, err := startChild(remoteRoleEnv+"=client", remoteServerEnv+"="+addr,
		remoteTimeEnv+"="+cfg.benchTime.String())
	if err != nil {
		return nil, err
	}
	defer client.stop()

	res := &remoteResults{}
	for line := range lines {
		if err := res.parse(line); err != nil {
			return nil, err
		}
	}
	if err := client.cmd.Wait(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if res.grantsDrip.ops == 0 || res.grantsRaw.ops == 0 || res.dripP50 == 0 || res.rawP50 == 0 {
		return nil, fmt.Errorf("the client reported no figures")
	}

	return res, nil
}

// parse takes one line of the client's output.
func (res *remoteResults) parse(line string) error {
	var name string
	switch {
	case strings.HasPrefix(line, "GRANTS "):
		var f figure
		var elapsed int64
		if _, err := fmt.Sscanf(line, "GRANTS %s %d %d %g", &name, &f.ops, &elapsed,
			&f.allocs); err != nil {
			return fmt.Errorf("client line %q: %v", line, err)
		}
		f.elapsed = time.Duration(elapsed)
		if name == "drip" {
			res.grantsDrip = f
		} else {
			res.grantsRaw = f
		}
	case strings.HasPrefix(line, "LATENCY "):
		var p50, p99 int64
		if _, err := fmt.Sscanf(line, "LATENCY %s %d %d", &name, &p50, &p99); err != nil {
			return fmt.Errorf("client line %q: %v", line, err)
		}
		if name == "drip" {
			res.dripP50, res.dripP99 = time.Duration(p50), time.Duration(p99)
		} else {
			res.rawP50, res.rawP99 = time.Duration(p50), time.Duration(p99)
		}
	}

	return nil
}

// child is a child process of the remote section.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild starts this program again with env added, and returns its
// stdout line by line.
func startChild(env ...string) (*child, <-chan string, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %v: %w", env, err)
	}

	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	return &child{cmd: cmd, stdin: stdin}, lines, nil
}

// stop closes the child's stdin, which ends a server, and makes sure it
// is gone.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// expectLine returns the rest of the first line that starts with prefix.
func expectLine(lines <-chan string, prefix string) (string, error) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("exited before printing %s", prefix)
			}
			if rest, found := strings.CutPrefix(line, prefix+" "); found {
				return rest, nil
			}
		case <-timeout:
			return "", fmt.Errorf("printed no %s within 20 s", prefix)
		}
	}
}
