package actors

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/dripsched/drip/messages"
)

func TestRulesLookupOrder(t *testing.T) {
	exactLimit, star, anyHost, fallback := perSecond(1, 1), perSecond(2, 2), perSecond(3, 3),
		perSecond(4, 4)
	r, err := NewRules(map[string]*messages.Limit{"api.github.com": exactLimit},
		[]Pattern{{"*.github.com", star}, {"*.*", anyHost}}, fallback)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		key  string
		want float64 // the rate of the rule that must win
	}{
		{"api.github.com", 1},   // exact beats every pattern
		{"raw.github.com", 2},   // the first pattern that matches
		{"example.com", 3},      // the second pattern
		{"a.b.github.com", 2},   // "*" matches dots
		{"localhost", 4},        // nothing else: the default
		{"api.github.com/x", 4}, // "*" does not match "/"
		{"API.GITHUB.COM", 3},   // keys are case-sensitive
		{"github.com", 3},       // "*.github.com" needs a part before the dot
		{"", 4},                 // the registry refuses "" before it looks
	}
	for _, tt := range tests {
		l, ok := r.Lookup(tt.key)
		if !ok || l.GetRate() != tt.want {
			t.Errorf("Lookup(%q) = rate %v, %v; want rate %v", tt.key, l.GetRate(), ok, tt.want)
		}
	}
}

func TestRulesWithoutDefault(t *testing.T) {
	r, err := NewRules(nil, []Pattern{{"tenant-?", perSecond(1, 1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}

	for key, want := range map[string]bool{"tenant-7": true, "tenant-42": false, "other": false} {
		if _, ok := r.Lookup(key); ok != want {
			t.Errorf("Lookup(%q) found a rule: %v, want %v", key, ok, want)
		}
	}
}

func TestRulesCopyTheirLimits(t *testing.T) {
	l := perSecond(1, 1)
	r, err := NewRules(map[string]*messages.Limit{"a": l}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	l.Rate = -1
	if got, _ := r.Lookup("a"); got.GetRate() != 1 {
		t.Errorf("after changing the caller's limit, the rule has rate %v, want 1", got.GetRate())
	}
}

func TestRulesRefuseBadInput(t *testing.T) {
	good := perSecond(1, 1)
	tests := []struct {
		name     string
		exact    map[string]*messages.Limit
		patterns []Pattern
		fallback *messages.Limit
		want     string // a part of the error
		bad      bool   // the error wraps path.ErrBadPattern
	}{
		{"exact rate", map[string]*messages.Limit{"api": perSecond(-5, 1)}, nil, nil,
			`key "api": rate -5 is not a positive number`, false},
		{"exact missing", map[string]*messages.Limit{"api": nil}, nil, nil,
			`key "api": the limit is missing`, false},
		{"empty key", map[string]*messages.Limit{"": good}, nil, nil, "empty key", false},
		{"pattern syntax", nil, []Pattern{{"[a-", good}}, nil,
			`pattern "[a-": syntax error in pattern`, true},
		{"pattern syntax after a mismatch", nil, []Pattern{{"x[", good}}, nil,
			`pattern "x["`, true},
		{"pattern limit", nil, []Pattern{{"*.com", &messages.Limit{Rate: 1, Burst: 1}}}, nil,
			`pattern "*.com": period 0s is not positive`, false},
		{"default", nil, nil, &messages.Limit{Rate: 1, PerNanos: int64(time.Second)},
			"default rule: burst 0 is not a positive number", false},
	}

	for _, tt := range tests {
		r, err := NewRules(tt.exact, tt.patterns, tt.fallback)
		switch {
		case err == nil:
			t.Errorf("%s: NewRules = %v, want an error naming %q", tt.name, r, tt.want)
		case !strings.Contains(err.Error(), tt.want):
			t.Errorf("%s: NewRules error %q, want one naming %q", tt.name, err, tt.want)
		case errors.Is(err, path.ErrBadPattern) != tt.bad:
			t.Errorf("%s: errors.Is(%q, path.ErrBadPattern) = %v, want %v", tt.name, err,
				!tt.bad, tt.bad)
		}
	}
}
