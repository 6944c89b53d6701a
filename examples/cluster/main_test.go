package main

import (
	"net"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The demonstration re-executes this binary for each member.
	if os.Getenv(childEnv) != "" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestDemonstrationKeepsOneLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}

	// The member kill is tested in scheduler/cluster_test.go; here the
	// program itself: three members, one limit.
	cfg, err := parseConfig([]string{"-automan", freePortRun(t, 3), "-rate", "200",
		"-for", "3s", "-workers", "4"})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := demonstrate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum.print(cfg)

	// A new activation starts full, so the first second grants nothing,
	// then 200 per second: at least a second's worth comes through.
	if sum.grants < 200 {
		t.Errorf("%d granted in 3 s at 200 per second, want at least 200", sum.grants)
	}
	if sum.before[1] > 200 {
		t.Errorf("%d granted in some %v; the limit is 200", sum.before[1], proofWindow)
	}
}

func TestParseConfigRejectsBadMember(t *testing.T) {
	for _, args := range [][]string{{"-member", "4"}, {"-member", "-1"}, {"-members", "0"}} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("parseConfig(%q) = nil error, want one", args)
		}
	}
}

// freePortRun returns, as a flag value, the first of n consecutive
// loopback ports that are free now.
func freePortRun(t *testing.T, n int) string {
	t.Helper()

	for base := 20000 + os.Getpid()%20000; base < 65000; base += n {
		if portsFree(base, n) {
			return strconv.Itoa(base)
		}
	}
	t.Fatal("no run of free ports")

	return ""
}

// portsFree reports whether ports base to base+n-1 can be listened on.
func portsFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}

	return true
}
