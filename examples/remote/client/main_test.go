package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dripsched/drip/scheduler"
)

// childEnv, when set, makes the test binary run the client's main with its
// own arguments instead of the tests: TestRemoteExample runs the client as
// a child process, so that its remote is the only one in its process.
const childEnv = "DRIP_EXAMPLE_CLIENT"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		main() // exits with status 1 or 2 itself on failure
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	want := config{server: "127.0.0.1:8090", bucket: "api", n: 500, listen: "127.0.0.1:0",
		lag: defaultLag}
	if err != nil || cfg != want {
		t.Errorf("parseFlags(nil) = %+v, %v; want %+v", cfg, err, want)
	}

	for _, args := range [][]string{
		{"-n", "0"}, {"-bucket", ""}, {"-server", "8090"}, {"-listen", "127.0.0.1:x"},
		{"-lag", "-1ms"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

// ms is shorthand for a number of milliseconds.
func ms(n int) time.Duration {
	return time.Duration(n) * time.Millisecond
}

func TestMaxInWindow(t *testing.T) {
	tests := []struct {
		name string
		at   []time.Duration // sorted
		want int
	}{
		{"empty", nil, 0},
		{"one", []time.Duration{ms(5)}, 1},
		// A grant exactly one window later is outside: windows are half-open.
		{"edge", []time.Duration{0, ms(1000)}, 1},
		{"just inside", []time.Duration{0, ms(999)}, 2},
		{"same moment", []time.Duration{ms(3), ms(3), ms(3)}, 3},
		{"best window late", []time.Duration{0, ms(600), ms(1200), ms(1300), ms(1599)}, 4},
	}
	for _, tt := range tests {
		if got := maxInWindow(tt.at, time.Second); got != tt.want {
			t.Errorf("%s: maxInWindow(%v, 1s) = %d, want %d", tt.name, tt.at, got, tt.want)
		}
	}
}

func TestBound(t *testing.T) {
	tests := []struct {
		limit scheduler.Limit
		want  int
	}{
		{scheduler.Limit{Rate: 100, Burst: 10}, 110},
		{scheduler.Limit{Rate: 100, Burst: 100}, 200},
		{scheduler.Limit{Rate: 100, Burst: 100, Mode: scheduler.SlidingWindow}, 100},
	}
	for _, tt := range tests {
		if got := bound(tt.limit); got != tt.want {
			t.Errorf("bound(%+v) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

func TestSummaryFailsOverTheBound(t *testing.T) {
	// Three grants within one period of a limit that allows two.
	l := scheduler.Limit{Rate: 1, Burst: 1, Per: time.Second}
	sum := summarize(l, []time.Duration{0, ms(10), ms(20)}, make([]error, 3), defaultLag)
	if sum.ok() || sum.maxSlack != 3 || sum.bound != 2 {
		t.Errorf("summary of 3 grants in 20 ms at %+v = %+v (ok %v), want 3 over the bound 2",
			l, sum, sum.ok())
	}

	sum = summarize(l, []time.Duration{0, ms(10)}, []error{nil, errors.New("boom")}, defaultLag)
	if sum.ok() || sum.granted != 1 || len(sum.errs) != 1 {
		t.Errorf("summary with a failed call = %+v (ok %v), want 1 granted, 1 error, not ok",
			sum, sum.ok())
	}
}

// TestRemoteExample runs the example as documented, on loopback: the
// server program, built from ../server, hosts the bucket, and the client
// runs as a child process of this test binary. It checks the client's
// summary, the server's totals after SIGINT, and that the client fails
// fast when no server runs. Times are real, so they are one-sided bounds.
func TestRemoteExample(t *testing.T) {
	// Under -race, with other packages' tests running beside it, a reply
	// can come back tens of milliseconds after its grant; a bucket that
	// broke its limit would still show it in windows that much shorter.
	const testLag = "100ms"
	server := buildServer(t)

	t.Run("leaky", func(t *testing.T) {
		t.Parallel()
		// Burst 10, then one every 10 ms: 150 grants take at least 1.4 s.
		srv := startServer(t, server, "-rate", "100", "-burst", "10")
		out := runClient(t, 0, "-server", srv.addr, "-n", "150", "-lag", testLag)
		checkSummary(t, out, 150, 1400*time.Millisecond, 110)
		srv.interrupt(t, "api: granted 150 (150 units), rejected 0")
	})

	t.Run("sliding", func(t *testing.T) {
		t.Parallel()
		// 100 at once, the other 50 one period later.
		srv := startServer(t, server, "-rate", "100", "-mode", "sliding", "-buckets", "a,b")
		out := runClient(t, 0, "-server", srv.addr, "-bucket", "b", "-n", "150", "-lag", testLag)
		checkSummary(t, out, 150, time.Second, 100)
		srv.interrupt(t, "b: granted 150 (150 units), rejected 0")
	})

	t.Run("server down", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		out := runClient(t, 1, "-server", closedPort(t), "-n", "50")
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("the client took %v to give up on a server that is down, want under 3 s",
				took)
		}
		if !strings.Contains(out, "granted 0 of 50") || !strings.Contains(out, "unreachable") {
			t.Errorf("client output with the server down:\n%s\nwant 0 granted and unreachable", out)
		}
	})
}

// buildServer builds the server example into a temporary directory and
// returns the program's path.
func buildServer(t *testing.T) string {
	t.Helper()

	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "server")
	cmd := exec.Command(goTool, "build", "-o", bin, "../server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../server: %v\n%s", err, out)
	}

	return bin
}

// serverProcess is the server example running.
type serverProcess struct {
	cmd   *exec.Cmd
	addr  string        // where it listens, from its first line
	lines chan string   // the rest of its stdout; closed at exit
	done  chan struct{} // closed once the process is reaped
	err   error         // its exit status, once done is closed
}

// listening matches the server's first line and captures its address.
var listening = regexp.MustCompile(`^listening on (\S+) with buckets `)

// startServer starts the server program with args on a free loopback port,
// waits for its first line, and kills it when the test ends if it still
// runs.
func startServer(t *testing.T, bin string, args ...string) *serverProcess {
	t.Helper()

	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}

	srv := &serverProcess{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			srv.lines <- sc.Text()
		}
		close(srv.lines)
		srv.err = cmd.Wait()
		close(srv.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range srv.lines {
		}
		<-srv.done
	})

	line := srv.next(t, 10*time.Second)
	m := listening.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("server's first line = %q, want %q", line, listening)
	}
	srv.addr = m[1]

	return srv
}

// next returns the server's next line, failing the test if none comes
// within timeout.
func (srv *serverProcess) next(t *testing.T, timeout time.Duration) string {
	t.Helper()

	select {
	case line, ok := <-srv.lines:
		if !ok {
			<-srv.done
			t.Fatalf("the server exited (%v) before printing a line", srv.err)
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("the server printed nothing within %v", timeout)
	}

	return ""
}

// interrupt sends SIGINT to the server and checks that it prints want
// among its last lines and exits with status 0 within a few seconds.
func (srv *serverProcess) interrupt(t *testing.T, want string) {
	t.Helper()

	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT to the server: %v", err)
	}
	sent := time.Now()
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server still runs 10 s after SIGINT")
	}
	took := time.Since(sent)

	var last []string
	for line := range srv.lines { // closed before done
		last = append(last, line)
	}
	if !slices.Contains(last, want) {
		t.Errorf("the server's lines after SIGINT = %q, want %q among them", last, want)
	}
	if srv.err != nil {
		t.Errorf("the server exited with %v after SIGINT, want status 0", srv.err)
	}
	if took > 3*time.Second {
		t.Errorf("the server took %v to shut down after SIGINT, want under 3 s", took)
	}
}

// runClient runs the client with args as a child process of the test
// binary and returns its output; it fails the test unless the client exits
// with status want within 30 s.
func runClient(t *testing.T, want int, args ...string) string {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil && want == 0:
	case errors.As(err, &exit) && exit.ExitCode() == want:
	default:
		t.Fatalf("client %q: %v, want exit status %d; output:\n%s", args, err, want, out.String())
	}

	return out.String()
}

// summaryLines match the client's summary and capture its numbers.
var (
	grantedLine = regexp.MustCompile(`(?m)^granted (\d+) of (\d+) in (\S+): `)
	windowLine  = regexp.MustCompile(
		`(?m)^most granted in any 1s window: (\d+), within the bound (\d+)`)
)

// checkSummary checks the client's output: all n granted, taking at least
// minElapsed, and no window over bound.
func checkSummary(t *testing.T, out string, n int, minElapsed time.Duration, bound int) {
	t.Helper()

	g := grantedLine.FindStringSubmatch(out)
	w := windowLine.FindStringSubmatch(out)
	if g == nil || w == nil || !strings.Contains(out, "errors: none") {
		t.Fatalf("client output:\n%s\nwant lines matching %q, %q and errors: none",
			out, grantedLine, windowLine)
	}

	if granted, _ := strconv.Atoi(g[1]); granted != n {
		t.Errorf("granted %d of %s, want %d", granted, g[2], n)
	}
	elapsed, err := time.ParseDuration(g[3])
	if err != nil || elapsed < minElapsed {
		t.Errorf("%d grants took %s, want at least %v", n, g[3], minElapsed)
	}
	most, _ := strconv.Atoi(w[1])
	if reported, _ := strconv.Atoi(w[2]); most > bound || reported != bound {
		t.Errorf("most granted in one window %d with bound %d, want at most %d", most,
			reported, bound)
	}
	t.Logf("client summary:\n%s", out)
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	return addr
}
