package scheduler_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/dripsched/drip/scheduler"
)

// meters is an OpenTelemetry SDK MeterProvider whose metrics a test reads
// when it wants, with a ManualReader.
type meters struct {
	provider *sdkmetric.MeterProvider
	reader   *sdkmetric.ManualReader
}

func newMeters(t *testing.T) *meters {
	reader := sdkmetric.NewManualReader()
	m := &meters{provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		reader: reader}
	t.Cleanup(func() {
		if err := m.provider.Shutdown(context.Background()); err != nil {
			t.Errorf("MeterProvider.Shutdown: %v", err)
		}
	})

	return m
}

// collect reads every metric once.
func (m *meters) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()

	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}

	return rm
}

// find returns the metric called name; ok is false if rm has none.
func find(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}

	return metricdata.Metrics{}, false
}

// points returns the values of the counter or gauge called name, by their
// attributes as "drip.bucket=a,drip.reason=stopped".
func points(t *testing.T, rm metricdata.ResourceMetrics, name string) map[string]float64 {
	t.Helper()

	m, ok := find(rm, name)
	if !ok {
		return map[string]float64{}
	}
	got := map[string]float64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		addPoints(got, d.DataPoints)
	case metricdata.Sum[float64]:
		addPoints(got, d.DataPoints)
	case metricdata.Gauge[int64]:
		addPoints(got, d.DataPoints)
	case metricdata.Gauge[float64]:
		addPoints(got, d.DataPoints)
	default:
		t.Fatalf("%s is a %T, want a sum or a gauge", name, m.Data)
	}

	return got
}

func addPoints[N int64 | float64](to map[string]float64, dps []metricdata.DataPoint[N]) {
	for _, dp := range dps {
		to[dp.Attributes.Encoded(attribute.DefaultEncoder())] = float64(dp.Value)
	}
}

// waits returns the wait histogram of bucket.
func waits(t *testing.T, rm metricdata.ResourceMetrics,
	bucket string) metricdata.HistogramDataPoint[float64] {
	t.Helper()

	m, ok := find(rm, scheduler.MetricWait)
	if !ok {
		t.Fatalf("no %s", scheduler.MetricWait)
	}
	if m.Unit != "s" {
		t.Errorf("%s has unit %q, want s", m.Name, m.Unit)
	}
	for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
		if v, _ := dp.Attributes.Value(scheduler.AttributeBucket); v.AsString() == bucket {
			return dp
		}
	}
	t.Fatalf("no %s for bucket %q", scheduler.MetricWait, bucket)

	return metricdata.HistogramDataPoint[float64]{}
}

// checkPoints compares the points of the metric called name with want.
func checkPoints(t *testing.T, rm metricdata.ResourceMetrics, name string,
	want map[string]float64) {
	t.Helper()

	if got := points(t, rm, name); !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// checkWaits checks that the waits of bucket were exactly want, in seconds.
func checkWaits(t *testing.T, rm metricdata.ResourceMetrics, bucket string, want ...float64) {
	t.Helper()

	dp := waits(t, rm, bucket)
	var sum float64
	for _, w := range want {
		sum += w
	}
	minimum, _ := dp.Min.Value()
	maximum, _ := dp.Max.Value()
	if dp.Count != uint64(len(want)) || dp.Sum != sum ||
		minimum != slices.Min(want) || maximum != slices.Max(want) {
		t.Errorf("waits of %s: %d, sum %v, min %v, max %v; want %v", bucket,
			dp.Count, dp.Sum, minimum, maximum, want)
	}
}

func TestMetricsCountGrantsRejectionsAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeters(t)
		s := mustNew(t, scheduler.Limit{Rate: 10, Burst: 2}, scheduler.WithMaxQueue(1),
			scheduler.WithMeterProvider(m.provider))
		bucket := "drip.bucket=" + s.PID().GetId()
		ctx := context.Background()

		// Two grants at once fill the burst; a third waits 100 ms, and the
		// queue is then full.
		for range 2 {
			if err := s.Acquire(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		g := newGrants()
		g.acquire(ctx, s, "waits", 1)
		if s.TryAcquire(1) {
			t.Error("TryAcquire succeeded while someone waits")
		}
		for _, amount := range []float64{1, 0, 3} {
			if err := s.Acquire(ctx, amount); err == nil {
				t.Errorf("Acquire(%v) succeeded, want an error", amount)
			}
		}

		// The gauges show the bucket full and the one waiter.
		rm := m.collect(t)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{bucket: 2})
		checkPoints(t, rm, scheduler.MetricQueueLength, map[string]float64{bucket: 1})
		checkPoints(t, rm, scheduler.MetricQueueAmount, map[string]float64{bucket: 1})
		g.check(t, map[string]time.Duration{})

		time.Sleep(100 * time.Millisecond)
		g.check(t, map[string]time.Duration{"waits": 100 * time.Millisecond})

		// A context that has ended, one that ends while waiting, and a
		// deadline that cannot be met.
		ended, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Acquire(ended, 1); !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire with an ended context = %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := s.Acquire(short, 1); !errors.Is(err, scheduler.ErrDeadline) {
			t.Errorf("Acquire with a 50 ms deadline = %v, want ErrDeadline", err)
		}
		waiting, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(30 * time.Millisecond)
			cancel()
		}()
		if err := s.Acquire(waiting, 1); !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire cancelled while waiting = %v", err)
		}

		// A Scheduler that stopped refuses, and reports no gauges.
		s.Stop()
		if err := s.Acquire(ctx, 1); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Acquire after Stop = %v", err)
		}

		rm = m.collect(t)
		checkPoints(t, rm, scheduler.MetricGrants, map[string]float64{bucket: 3})
		checkPoints(t, rm, scheduler.MetricGrantedAmount, map[string]float64{bucket: 3})
		checkPoints(t, rm, scheduler.MetricRejections, map[string]float64{
			bucket + ",drip.reason=would_wait":     1,
			bucket + ",drip.reason=queue_full":     1,
			bucket + ",drip.reason=invalid_amount": 1,
			bucket + ",drip.reason=too_large":      1,
			bucket + ",drip.reason=canceled":       2,
			bucket + ",drip.reason=deadline":       1,
			bucket + ",drip.reason=stopped":        1,
		})
		checkWaits(t, rm, s.PID().GetId(), 0, 0, 0.1)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{})
	})
}

func TestMetricsOfGoAndTryAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeters(t)
		s := mustNew(t, scheduler.Limit{Rate: 4, Burst: 1},
			scheduler.WithMeterProvider(m.provider))
		bucket := "drip.bucket=" + s.PID().GetId()
		ctx := context.Background()

		if !s.TryAcquire(1) {
			t.Fatal("TryAcquire on an empty bucket failed")
		}
		for range 2 { // granted at 250 and 500 ms
			if err := s.Go(ctx, 1, func(context.Context) {}); err != nil {
				t.Fatal(err)
			}
		}
		gone, cancel := context.WithCancel(ctx)
		if err := s.Go(gone, 1, func(context.Context) { t.Error("a cancelled task ran") }); err != nil {
			t.Fatal(err)
		}
		if err := s.Go(ctx, 2, func(context.Context) {}); !errors.Is(err, scheduler.ErrTooLarge) {
			t.Errorf("Go(2) = %v, want ErrTooLarge", err)
		}
		time.Sleep(100 * time.Millisecond)
		cancel()
		time.Sleep(time.Second)

		rm := m.collect(t)
		checkPoints(t, rm, scheduler.MetricGrants, map[string]float64{bucket: 3})
		checkPoints(t, rm, scheduler.MetricRejections, map[string]float64{
			bucket + ",drip.reason=canceled":  1,
			bucket + ",drip.reason=too_large": 1,
		})
		checkWaits(t, rm, s.PID().GetId(), 0, 0.25, 0.5)
	})
}

func TestKeyedMetricsNameTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeters(t)
		k, err := scheduler.NewKeyed(newSystem(), scheduler.Rules{Exact: map[string]scheduler.Limit{
			"a": {Rate: 10, Burst: 5}, "b": {Rate: 10, Burst: 5}}},
			scheduler.WithMeterProvider(m.provider))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Stop()
		ctx := context.Background()

		for _, key := range []string{"a", "a", "b"} {
			if err := k.Acquire(ctx, key, 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := k.Acquire(ctx, "c", 1); !errors.Is(err, scheduler.ErrUnknownKey) {
			t.Errorf("Acquire for key c = %v, want ErrUnknownKey", err)
		}
		if !k.For("b").TryAcquire(3) {
			t.Error("TryAcquire(3) on b, 2 of 5 used, failed")
		}

		rm := m.collect(t)
		checkPoints(t, rm, scheduler.MetricGrants, map[string]float64{
			"drip.bucket=a": 2, "drip.bucket=b": 2})
		checkPoints(t, rm, scheduler.MetricGrantedAmount, map[string]float64{
			"drip.bucket=a": 4, "drip.bucket=b": 5})
		checkPoints(t, rm, scheduler.MetricRejections, map[string]float64{
			"drip.bucket=c,drip.reason=unknown_key": 1})
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{
			"drip.bucket=a": 4, "drip.bucket=b": 5})
		checkWaits(t, rm, "a", 0, 0)

		// Once drained and unused, a key is reported once more, at zero,
		// and then left out until it is used again.
		time.Sleep(time.Second)
		rm = m.collect(t)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{
			"drip.bucket=a": 0, "drip.bucket=b": 0})
		rm = m.collect(t)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{})

		if err := k.Acquire(ctx, "b", 1); err != nil {
			t.Fatal(err)
		}
		rm = m.collect(t)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{"drip.bucket=b": 1})
		checkPoints(t, rm, scheduler.MetricGrants, map[string]float64{
			"drip.bucket=a": 2, "drip.bucket=b": 3})
	})
}

// TestKeyedMetricsOfAKeptScheduler checks that a Scheduler of a key kept
// while its key was left out of the gauges brings the key back.
func TestKeyedMetricsOfAKeptScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeters(t)
		k, err := scheduler.NewKeyed(newSystem(), scheduler.Rules{
			Default: &scheduler.Limit{Rate: 10}}, scheduler.WithMeterProvider(m.provider))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Stop()
		kept := k.For("a")

		m.collect(t) // a is reported, at zero, and left out
		m.collect(t)
		if err := kept.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		rm := m.collect(t)
		checkPoints(t, rm, scheduler.MetricLevel, map[string]float64{"drip.bucket=a": 1})
	})
}

func TestWithoutMeterProviderRecordsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, scheduler.Limit{Rate: 10}, scheduler.WithMeterProvider(nil))
		if err := s.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		if !s.TryAcquire(1) {
			t.Error("TryAcquire failed")
		}
	})
}

func TestAttachedMetricsNameTheBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeters(t)
		sys := newSystem()
		owner, err := scheduler.New(sys, scheduler.Limit{Rate: 10}, scheduler.WithName("api"))
		if err != nil {
			t.Fatal(err)
		}
		defer owner.Stop()

		// Another handle on the same bucket, as a remote node would have.
		s := scheduler.Attach(sys, owner.PID(), scheduler.WithMeterProvider(m.provider))
		for range 3 {
			if err := s.Acquire(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
		}
		got := points(t, m.collect(t), scheduler.MetricGrants)
		if want := map[string]float64{"drip.bucket=api": 3}; !maps.Equal(got, want) {
			t.Errorf("%s = %v, want %v", scheduler.MetricGrants, got, want)
		}
		s.Stop()
	})
}
