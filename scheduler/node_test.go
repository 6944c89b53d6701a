package scheduler_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/dripsched/drip/scheduler"
)

// Remote tests run every node in a child process of the test binary: the
// binary re-executes itself with nodeEnv naming the role to play. One
// remote per process avoids the data race in protoactor's remote.Start,
// which sets gRPC's global logger, and makes SIGKILL a real node death.
//
// A node prints what the parent needs as lines on stdout ("ADDR ...",
// "RESULT ...") and takes commands, one per line, on stdin.
const nodeEnv = "DRIP_TEST_NODE"

// nodeRoles are the parts a child process can play.
var nodeRoles = map[string]func() error{
	"server": runServerNode,
	"client": runClientNode,
}

// runNodeIfChild plays the role named by nodeEnv and exits, if there is
// one; TestMain calls it before running any test.
func runNodeIfChild() {
	role := os.Getenv(nodeEnv)
	if role == "" {
		return
	}

	run, ok := nodeRoles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown node role %q\n", role)
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "node %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// node is a child process seen from the test.
type node struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at EOF
	done  chan struct{}
}

// startNode starts a child playing role with the given environment
// additions, and stops it when the test ends.
func startNode(t *testing.T, name, role string, env ...string) *node {
	t.Helper()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, nodeEnv+"="+role)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", name, err)
	}

	n := &node{t: t, name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 1024),
		done: make(chan struct{})}
	go n.read(stdout)
	t.Cleanup(n.kill)

	return n
}

// read copies the child's stdout into n.lines, then reaps the child.
func (n *node) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		n.lines <- sc.Text()
	}
	close(n.lines)
	_ = n.cmd.Wait()
	close(n.done)
}

// send writes one command line to the child.
func (n *node) send(format string, args ...any) {
	n.t.Helper()

	if _, err := fmt.Fprintf(n.stdin, format+"\n", args...); err != nil {
		n.t.Fatalf("node %s: sending %q: %v", n.name, fmt.Sprintf(format, args...), err)
	}
}

// expect returns the fields after prefix of the next line that starts with
// prefix, failing the test if none comes within timeout.
func (n *node) expect(prefix string, timeout time.Duration) []string {
	n.t.Helper()

	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-n.lines:
			if !ok {
				n.t.Fatalf("node %s exited before printing %s", n.name, prefix)
			}
			if rest, found := strings.CutPrefix(line, prefix+" "); found {
				return strings.Fields(rest)
			}
		case <-deadline:
			n.t.Fatalf("node %s printed no %s within %v", n.name, prefix, timeout)
		}
	}
}

// kill ends the child with SIGKILL and waits until it is reaped.
func (n *node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.done
}

// startRemote starts an actor system with remote on a free loopback port
// and prints its address as "ADDR host:port".
func startRemote() (*actor.ActorSystem, *remote.Remote) {
	sys := quietSystem()
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	fmt.Println("ADDR", sys.Address())

	return sys, r
}

// quietSystem returns an actor system for a node: it logs nothing, unless
// DRIP_TEST_NODE_LOG is set, and then everything to stderr.
func quietSystem() *actor.ActorSystem {
	var logs io.Writer = io.Discard
	if os.Getenv("DRIP_TEST_NODE_LOG") != "" {
		logs = os.Stderr
	}
	logger := func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	return actor.NewActorSystem(actor.WithLoggerFactory(logger))
}

// envFloat reads a number from the environment.
func envFloat(name string) (float64, error) {
	v, err := strconv.ParseFloat(os.Getenv(name), 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}

	return v, nil
}

// runServerNode hosts a bucket named "api" with rate DRIP_RATE per second
// and burst DRIP_BURST. The command "status" prints
// "STATUS <queued> <granted>".
func runServerNode() error {
	rate, err := envFloat("DRIP_RATE")
	if err != nil {
		return err
	}
	burst, err := envFloat("DRIP_BURST")
	if err != nil {
		return err
	}

	sys, r := startRemote()
	defer r.Shutdown(false)
	s, err := scheduler.New(sys, scheduler.Limit{Rate: rate, Burst: burst},
		scheduler.WithName("api"))
	if err != nil {
		return err
	}
	defer s.Stop()

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "status" {
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		st, err := s.Status(context.Background())
		if err != nil {
			return err
		}
		fmt.Println("STATUS", st.Queued, st.Granted)
	}

	return nil
}

// runClientNode attaches to the bucket "api" at DRIP_SERVER. The command
// "acquire <n>" starts n Acquire calls of one unit at once, each printing
// "RESULT <ok|error> <ms since the command> <error>" when it ends.
func runClientNode() error {
	sys, r := startRemote()
	defer r.Shutdown(false)
	s := scheduler.Attach(sys, actor.NewPID(os.Getenv("DRIP_SERVER"), "api"))
	defer s.Stop()

	var (
		wg  sync.WaitGroup
		out sync.Mutex // one line at a time
	)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "acquire %d", &n); err != nil {
			return fmt.Errorf("unknown command %q", sc.Text())
		}

		start := time.Now()
		for range n {
			wg.Go(func() {
				err := s.Acquire(context.Background(), 1)
				ms := time.Since(start).Milliseconds()
				out.Lock()
				defer out.Unlock()
				if err != nil {
					fmt.Println("RESULT error", ms, err)
					return
				}
				fmt.Println("RESULT ok", ms)
			})
		}
	}
	wg.Wait()

	return nil
}
