package scheduler_test

import (
	"context"
	"fmt"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dripsched/drip/scheduler"
)

// BenchmarkAcquireMetrics measures what WithMeterProvider adds to Acquire:
// the same calls without metrics and with the OpenTelemetry SDK recording
// them (a ManualReader, so every measurement is aggregated for real), with
// 1 and 1024 goroutines. Compare the two as a ratio:
//
//	go test -run '^$' -bench AcquireMetrics -benchmem -count 6 ./scheduler
func BenchmarkAcquireMetrics(b *testing.B) {
	for _, g := range []int{1, 1024} {
		for _, with := range []bool{false, true} {
			name := map[bool]string{false: "without", true: "with"}[with]
			b.Run(fmt.Sprintf("%s/goroutines=%d", name, g), func(b *testing.B) {
				var opts []scheduler.Option
				if with {
					mp := sdkmetric.NewMeterProvider(
						sdkmetric.WithReader(sdkmetric.NewManualReader()))
					b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
					opts = append(opts, scheduler.WithMeterProvider(mp))
				}
				s, err := scheduler.New(benchSystem(b), neverWaits, opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(s.Stop)

				b.ReportAllocs()
				fanOut(b, g, func(ctx context.Context) error { return s.Acquire(ctx, 1) })
			})
		}
	}
}
