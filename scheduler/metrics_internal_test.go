package scheduler

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkMetricsRecordGrant measures what recording one grant costs, on
// its own and from parallel goroutines: the part of Acquire that
// WithMeterProvider adds, without the round trip to the bucket that makes
// BenchmarkAcquireMetrics noisy.
func BenchmarkMetricsRecordGrant(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	in, err := newInstruments(mp)
	if err != nil {
		b.Fatal(err)
	}
	m := newBucketMetrics(in, "bench")
	ctx := context.Background()

	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var err error
		for pb.Next() {
			m.finish(ctx, 1, time.Now(), &err)
		}
	})
}
