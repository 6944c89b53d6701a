package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil || cfg.addr != "127.0.0.1:9464" || cfg.duration != 0 {
		t.Errorf("parseFlags(nil) = %+v, %v; want 127.0.0.1:9464 until interrupted", cfg, err)
	}
	if _, err := parseFlags([]string{"-for", "-1s"}); err == nil {
		t.Error("parseFlags(-for -1s) succeeded, want an error")
	}
}

func TestServesDripMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, ln, w)
		w.Close()
	}()

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the first line: %v", err)
	}
	url := "http://" + ln.Addr().String() + "/metrics"
	if !strings.Contains(line, url) {
		t.Errorf("the program said %q, want it to name %s", line, url)
	}
	go io.Copy(io.Discard, out) // nothing more is expected, but never block run

	// The grant counts are added up at each scrape: scrape until the
	// workload has had a grant on both keys.
	var metrics map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		metrics = scrape(t, url)
		if metrics[`drip_grants_total{drip_bucket="api.example.com"}`] > 0 &&
			metrics[`drip_grants_total{drip_bucket="search.example.com"}`] > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}

	for _, key := range []string{"api.example.com", "search.example.com"} {
		bucket := `{drip_bucket="` + key + `"}`
		if n := metrics["drip_grants_total"+bucket]; n <= 0 {
			t.Errorf("drip_grants_total%s = %v, want a positive count", bucket, n)
		}
		for _, name := range []string{"drip_granted_amount_total", "drip_wait_duration_seconds_count",
			"drip_level", "drip_queue_length", "drip_queue_amount"} {
			if _, ok := metrics[name+bucket]; !ok {
				t.Errorf("no %s%s in the scrape", name, bucket)
			}
		}
	}
	var rejected float64
	for name, v := range metrics {
		if strings.HasPrefix(name, "drip_rejections_total{") {
			rejected += v
		}
	}
	if rejected <= 0 {
		t.Errorf("no drip_rejections_total in the scrape, want the crowded key's")
	}
}

// scrape gets url and returns its drip_ samples by name and drip_ labels,
// as `drip_level{drip_bucket="api.example.com"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}

	samples := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, value, ok := sample(lines.Text())
		if ok && strings.HasPrefix(name, "drip_") {
			samples[name] = value
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}

	return samples
}

// sample parses one line of the Prometheus text format, keeping only the
// drip_ labels; ok is false for comments and lines it cannot read.
func sample(line string) (name string, value float64, ok bool) {
	if strings.HasPrefix(line, "#") {
		return "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, false
	}
	value, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return "", 0, false
	}

	name, labels, found := strings.Cut(line[:i], "{")
	if !found {
		return name, value, true
	}
	var kept []string
	for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		if strings.HasPrefix(l, "drip_") {
			kept = append(kept, l)
		}
	}
	if len(kept) > 0 {
		name += "{" + strings.Join(kept, ",") + "}"
	}

	return name, value, true
}
