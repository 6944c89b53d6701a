package scheduler_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/dripsched/drip/scheduler"
)

// A Scheduler records its grants, rejections and waits through the
// MeterProvider given with WithMeterProvider; here the OpenTelemetry SDK's,
// read by hand.
func ExampleWithMeterProvider() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	s, err := scheduler.New(newSystem(), scheduler.Limit{Rate: 10, Burst: 2},
		scheduler.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}
	defer s.Stop()

	for range 2 {
		if err := s.Acquire(context.Background(), 1); err != nil {
			panic(err)
		}
	}
	s.TryAcquire(1) // the burst is used up: rejected, reason would_wait

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			fmt.Println(m.Name, sum.DataPoints[0].Value)
		}
	}
	// Unordered output:
	// drip.grants 2
	// drip.rejections 1
}
