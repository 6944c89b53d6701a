package scheduler_test

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dripsched/drip/scheduler"
)

// hostRules limits "slow" to 1 per second, every host under example.com to
// 2 per second, and nothing else.
var hostRules = scheduler.Rules{
	Exact:    map[string]scheduler.Limit{"slow": {Rate: 1}},
	Patterns: []scheduler.Pattern{{Match: "*.example.com", Limit: scheduler.Limit{Rate: 2}}},
}

// mustNewKeyed returns a Keyed for rules, stopped when the test ends.
func mustNewKeyed(t *testing.T, rules scheduler.Rules, opts ...scheduler.Option) *scheduler.Keyed {
	t.Helper()

	k, err := scheduler.NewKeyed(newSystem(), rules, opts...)
	if err != nil {
		t.Fatalf("NewKeyed: %v", err)
	}
	t.Cleanup(k.Stop)

	return k
}

// checkBuckets checks how many keys have a live bucket.
func checkBuckets(t *testing.T, k *scheduler.Keyed, want int) {
	t.Helper()

	synctest.Wait()
	if got := k.Buckets(); got != want {
		t.Errorf("%d live buckets, want %d", got, want)
	}
}

func TestKeyedLimitsEachKeyOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules)
		g := newGrants()
		bg := context.Background()

		// "slow" takes one per second; a.example.com and b.example.com each
		// take two per second of their own, whatever the others do.
		for _, name := range []string{"slow-1", "slow-2", "slow-3"} {
			g.acquire(bg, k.For("slow"), name, 1)
		}
		for _, name := range []string{"a-1", "a-2", "a-3", "a-4"} {
			g.acquire(bg, k.For("a.example.com"), name, 1)
		}
		g.acquire(bg, k.For("b.example.com"), "b-1", 2)
		g.acquire(bg, k.For("b.example.com"), "b-2", 1)
		time.Sleep(3 * time.Second)

		const ms = time.Millisecond
		g.check(t, map[string]time.Duration{
			"slow-1": 0, "slow-2": time.Second, "slow-3": 2 * time.Second,
			"a-1": 0, "a-2": 0, "a-3": 500 * ms, "a-4": 1000 * ms,
			"b-1": 0, "b-2": 500 * ms,
		})
		checkBuckets(t, k, 3)
	})
}

func TestKeyedCancelFreesTheKeysQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules)
		g := newGrants()
		bg := context.Background()
		ctx, cancel := context.WithCancel(bg)

		g.acquire(bg, k.For("slow"), "first", 1)
		g.acquire(ctx, k.For("slow"), "cancelled", 1)
		g.acquire(bg, k.For("slow"), "next", 1)
		time.Sleep(500 * time.Millisecond)
		cancel()
		time.Sleep(time.Second)

		g.check(t, map[string]time.Duration{"first": 0, "next": time.Second})
		if err := g.errs["cancelled"]; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v, want context.Canceled", err)
		}
	})
}

func TestKeyedPassivatesIdleBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules, scheduler.WithIdleTimeout(10*time.Second))
		bg := context.Background()

		// Granted at 0, drained at 1 s: passivated at 11 s, not before.
		if err := k.Acquire(bg, "slow", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11*time.Second - time.Nanosecond)
		checkBuckets(t, k, 1)
		time.Sleep(time.Nanosecond)
		checkBuckets(t, k, 0)

		// A new bucket comes back on the next request, empty and with the
		// rule's limit.
		if !k.For("slow").TryAcquire(1) {
			t.Error("TryAcquire(1) on a new, empty bucket failed")
		}
		st, err := k.For("slow").Status(bg)
		if err != nil || st.Granted != 1 || st.Limit.Rate != 1 {
			t.Errorf("Status = %+v, %v; want a new bucket with one grant at rate 1", st, err)
		}
		checkBuckets(t, k, 1)
	})
}

func TestKeyedSetLimitChangesOneKeyUntilPassivated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules, scheduler.WithIdleTimeout(time.Minute))
		bg := context.Background()
		a, b := k.For("a.example.com"), k.For("b.example.com")

		if err := a.SetLimit(bg, scheduler.Limit{Rate: 50}); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Status(bg); err != nil || st.Limit.Rate != 2 {
			t.Errorf("b's status = %+v, %v; want rate 2, as its rule says", st, err)
		}
		if st, err := a.Status(bg); err != nil || st.Limit.Rate != 50 {
			t.Errorf("a's status = %+v, %v; want rate 50", st, err)
		}
		err := a.SetLimit(bg, scheduler.Limit{Rate: -1})
		if !errors.Is(err, scheduler.ErrInvalidLimit) {
			t.Errorf("SetLimit(rate -1) = %v, want ErrInvalidLimit", err)
		}

		time.Sleep(2 * time.Minute)
		checkBuckets(t, k, 0)
		if st, err := a.Status(bg); err != nil || st.Limit.Rate != 2 {
			t.Errorf("after passivation a's status = %+v, %v; want its rule's rate 2", st, err)
		}
	})
}

func TestKeyedRefusesUnknownAndEmptyKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules)
		bg := context.Background()

		err := k.Acquire(bg, "example.org", 1)
		if !errors.Is(err, scheduler.ErrUnknownKey) ||
			!strings.Contains(err.Error(), `"example.org"`) {
			t.Errorf("Acquire(example.org) = %v, want ErrUnknownKey naming the key", err)
		}
		if k.For("example.org").TryAcquire(1) {
			t.Error("TryAcquire on an unknown key succeeded")
		}
		if _, err := k.For("example.org").Status(bg); !errors.Is(err, scheduler.ErrUnknownKey) {
			t.Errorf("Status of an unknown key = %v, want ErrUnknownKey", err)
		}
		if err := k.Acquire(bg, "", 1); !errors.Is(err, scheduler.ErrUnknownKey) {
			t.Errorf("Acquire with an empty key = %v, want ErrUnknownKey", err)
		}
		if err := k.For("").Acquire(bg, 1); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("For(\"\").Acquire = %v, want an error about the empty key", err)
		}
		if err := k.Acquire(bg, "slow", -1); !errors.Is(err, scheduler.ErrInvalidAmount) {
			t.Errorf("Acquire(slow, -1) = %v, want ErrInvalidAmount", err)
		}
		checkBuckets(t, k, 0)
	})
}

func TestKeyedDefaultRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rules := hostRules
		rules.Default = &scheduler.Limit{Rate: 5}
		k := mustNewKeyed(t, rules)

		st, err := k.For("anything.else").Status(context.Background())
		if err != nil || st.Limit.Rate != 5 {
			t.Errorf("Status = %+v, %v; want the default rule's rate 5", st, err)
		}
	})
}

func TestKeyedStopAnswersEveryWaiterOfEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := mustNewKeyed(t, hostRules)
		g := newGrants()
		bg := context.Background()

		g.acquire(bg, k.For("slow"), "slow-1", 1)
		g.acquire(bg, k.For("slow"), "slow-2", 1)
		g.acquire(bg, k.For("a.example.com"), "a-1", 2)
		g.acquire(bg, k.For("a.example.com"), "a-2", 2)

		// Stop on one key's Scheduler leaves every key running.
		k.For("slow").Stop()
		if !k.For("b.example.com").TryAcquire(1) {
			t.Error("TryAcquire failed after For(slow).Stop()")
		}

		k.Stop()
		k.Stop() // idempotent
		synctest.Wait()
		for _, name := range []string{"slow-2", "a-2"} {
			if err := g.errs[name]; !errors.Is(err, scheduler.ErrStopped) {
				t.Errorf("%s: %v, want ErrStopped", name, err)
			}
		}
		if err := k.Acquire(bg, "slow", 1); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Acquire after Stop = %v, want ErrStopped", err)
		}
		if _, err := k.For("a.example.com").Status(bg); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Status after Stop = %v, want ErrStopped", err)
		}
		g.check(t, map[string]time.Duration{"slow-1": 0, "a-1": 0})
		checkBuckets(t, k, 0)
	})
}

func TestNewKeyedRefusesBadRules(t *testing.T) {
	good := scheduler.Limit{Rate: 1}
	tests := []struct {
		name  string
		rules scheduler.Rules
		opts  []scheduler.Option
		is    []error
		want  string
	}{
		{"exact limit", scheduler.Rules{Exact: map[string]scheduler.Limit{
			"api": good, "bad-api": {Rate: -5}}},
			nil, []error{scheduler.ErrInvalidLimit},
			`rate -5 is not a positive number, in the rule for key "bad-api"`},
		{"exact mode", scheduler.Rules{Exact: map[string]scheduler.Limit{"m": {Rate: 1, Mode: 7}}},
			nil, []error{scheduler.ErrInvalidLimit}, `unknown mode 7, in the rule for key "m"`},
		{"empty key", scheduler.Rules{Exact: map[string]scheduler.Limit{"": good}},
			nil, []error{scheduler.ErrInvalidLimit}, "empty key"},
		{"pattern limit", scheduler.Rules{Patterns: []scheduler.Pattern{
			{Match: "*.com", Limit: scheduler.Limit{Rate: 1, Per: -time.Second}}}},
			nil, []error{scheduler.ErrInvalidLimit},
			`period -1s is not positive, in the rule for pattern "*.com"`},
		{"pattern syntax", scheduler.Rules{Patterns: []scheduler.Pattern{
			{Match: "*.com", Limit: good}, {Match: "[z-", Limit: good}}},
			nil, []error{scheduler.ErrInvalidLimit, path.ErrBadPattern}, `pattern "[z-"`},
		{"default", scheduler.Rules{Default: &scheduler.Limit{Rate: 1, Burst: -2}},
			nil, []error{scheduler.ErrInvalidLimit},
			"burst -2 is not a positive number, in the default rule"},
		{"idle timeout", hostRules, []scheduler.Option{scheduler.WithIdleTimeout(-time.Second)},
			nil, "scheduler: idle timeout -1s is negative"},
		{"max queue", hostRules, []scheduler.Option{scheduler.WithMaxQueue(-3)},
			nil, "scheduler: max queue -3 is negative"},
	}

	for _, tt := range tests {
		k, err := scheduler.NewKeyed(newSystem(), tt.rules, tt.opts...)
		if err == nil {
			k.Stop()
			t.Errorf("%s: NewKeyed succeeded, want an error naming %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewKeyed error %q, want one naming %q", tt.name, err, tt.want)
		}
		for _, target := range tt.is {
			if !errors.Is(err, target) {
				t.Errorf("%s: NewKeyed error %q does not wrap %v", tt.name, err, target)
			}
		}
	}
}
