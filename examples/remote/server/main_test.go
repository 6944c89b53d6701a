package main

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dripsched/drip/scheduler"
)

// The server runs end to end, with the client, in
// examples/remote/client's TestRemoteExample: it needs a process of its
// own, as every remote does.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("parseFlags(nil): %v", err)
	}
	if cfg.host != "127.0.0.1" || cfg.port != 8090 || !slices.Equal(cfg.buckets, []string{"api"}) ||
		!reflect.DeepEqual(cfg.limit, scheduler.Limit{Rate: 100}) {
		t.Errorf("parseFlags(nil) = %+v, want bucket api at 100/s on 127.0.0.1:8090", cfg)
	}

	cfg, err = parseFlags([]string{"-addr", "10.0.0.1:0", "-mode", "sliding", "-rate", "5",
		"-buckets", "a, b,,c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c"}
	if cfg.host != "10.0.0.1" || cfg.port != 0 || !slices.Equal(cfg.buckets, want) ||
		!reflect.DeepEqual(cfg.limit, scheduler.Limit{Rate: 5, Mode: scheduler.SlidingWindow}) {
		t.Errorf("parseFlags(sliding, 3 buckets) = %+v", cfg)
	}

	for _, args := range [][]string{
		{"-mode", "fast"}, {"-rate", "0"}, {"-rate", "10", "-burst", "-1"},
		{"-addr", "8090"}, {"-addr", "127.0.0.1:http"}, {"-addr", "127.0.0.1:70000"},
		{"-buckets", ", ,"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		limit scheduler.Limit
		want  string
	}{
		{scheduler.Limit{Rate: 100}, "leaky bucket, 100 per 1s, burst 100"},
		{scheduler.Limit{Rate: 5, Burst: 2, Per: time.Minute}, "leaky bucket, 5 per 1m0s, burst 2"},
		{scheduler.Limit{Rate: 100, Mode: scheduler.SlidingWindow}, "sliding window, 100 per 1s"},
	}
	for _, tt := range tests {
		if got := describe(tt.limit); got != tt.want {
			t.Errorf("describe(%+v) = %q, want %q", tt.limit, got, tt.want)
		}
	}
}
