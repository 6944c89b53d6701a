package scheduler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// These tests are in package scheduler, not scheduler_test, for retryAfter;
// they use the exported API otherwise.

// roundTripFunc is a RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// fakeServer is an in-memory server to use as a Transport's Base, so that
// a synctest bubble keeps everything on its fake clock. It records when
// each request arrived, by "host path", and answers 200 unless answer
// says otherwise.
type fakeServer struct {
	start  time.Time
	answer func(*http.Request) (status int, h http.Header)

	mu      sync.Mutex
	arrived map[string][]time.Duration
}

func newFakeServer() *fakeServer {
	return &fakeServer{start: time.Now(), arrived: map[string][]time.Duration{}}
}

func (s *fakeServer) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	name := req.URL.Host + " " + req.URL.Path
	s.arrived[name] = append(s.arrived[name], time.Since(s.start))
	s.mu.Unlock()

	status, h := http.StatusOK, http.Header{}
	if s.answer != nil {
		status, h = s.answer(req)
	}

	return &http.Response{StatusCode: status, Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader(http.StatusText(status)))}, nil
}

// check compares the arrival times of the request called name, sorted,
// with want.
func (s *fakeServer) check(t *testing.T, name string, want ...time.Duration) {
	t.Helper()
	synctest.Wait()

	s.mu.Lock()
	got := slices.Sorted(slices.Values(s.arrived[name]))
	s.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("%q arrived at %v, want %v", name, got, want)
	}
}

// newTransport returns a Transport over server with a Keyed for rules,
// stopped when the test ends.
func newTransport(t *testing.T, rules Rules, server http.RoundTripper) *Transport {
	t.Helper()

	quiet := func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }
	sys := actor.NewActorSystem(actor.WithLoggerFactory(quiet),
		actor.WithDeadLetterThrottleInterval(time.Millisecond))
	k, err := NewKeyed(sys, rules)
	if err != nil {
		t.Fatalf("NewKeyed: %v", err)
	}
	t.Cleanup(k.Stop)

	return &Transport{Keyed: k, Base: server}
}

// call is one request made through a client, in its own goroutine.
type call struct {
	done chan struct{}
	resp *http.Response
	err  error
}

// send starts a GET of url with ctx through c, and waits until it is
// queued or answered.
func send(ctx context.Context, c *http.Client, url string) *call {
	r := &call{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err == nil {
			r.resp, r.err = c.Do(req)
		} else {
			r.err = err
		}
		if r.resp != nil {
			r.resp.Body.Close()
		}
	}()
	synctest.Wait()

	return r
}

// wait returns the call's response and error once it has ended.
func (r *call) wait() (*http.Response, error) {
	<-r.done
	return r.resp, r.err
}

// sendAll sends GETs of each url at once and waits for them all; a failed
// one fails the test.
func sendAll(t *testing.T, c *http.Client, urls ...string) {
	t.Helper()

	calls := make([]*call, len(urls))
	for i, url := range urls {
		calls[i] = send(context.Background(), c, url)
	}
	for i, r := range calls {
		if _, err := r.wait(); err != nil {
			t.Errorf("GET %s: %v", urls[i], err)
		}
	}
}

// everyHost allows every host 10 requests per second, one at a time.
var everyHost = Rules{Default: &Limit{Rate: 10, Burst: 1}}

func TestTransportSpacesRequestsToOneHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		c := &http.Client{Transport: newTransport(t, everyHost, server)}

		sendAll(t, c, "http://a.test/", "http://a.test/", "http://a.test/", "http://a.test/")
		server.check(t, "a.test /", 0, 100*time.Millisecond, 200*time.Millisecond,
			300*time.Millisecond)
	})
}

func TestTransportKeepsHostsApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		c := &http.Client{Transport: newTransport(t, everyHost, server)}

		sendAll(t, c, "http://a.test/", "http://b.test/", "http://a.test/", "http://b.test/",
			"http://b.test:8080/")
		server.check(t, "a.test /", 0, 100*time.Millisecond)
		server.check(t, "b.test /", 0, 100*time.Millisecond)
		server.check(t, "b.test:8080 /", 0) // another port is another key
	})
}

func TestTransportPausesOnRetryAfter(t *testing.T) {
	// Dates are read on synctest's clock, which starts on a whole second.
	inTwoSeconds := func() string { return time.Now().Add(2 * time.Second).Format(http.TimeFormat) }
	tests := []struct {
		name       string
		status     int
		retryAfter func() string
		pause      time.Duration
	}{
		{"429 in seconds", http.StatusTooManyRequests, func() string { return "2" }, 2 * time.Second},
		{"503 in seconds", http.StatusServiceUnavailable, func() string { return "2" }, 2 * time.Second},
		{"429 as a date", http.StatusTooManyRequests, inTwoSeconds, 2 * time.Second},
		{"429 unparsable", http.StatusTooManyRequests, func() string { return "1e9" }, 0},
		{"429 without header", http.StatusTooManyRequests, func() string { return "" }, 0},
		{"200 with header", http.StatusOK, func() string { return "2" }, 0},
		{"302 with header", http.StatusFound, func() string { return "2" }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				server := newFakeServer()
				server.answer = func(req *http.Request) (int, http.Header) {
					if req.URL.Path != "/first" {
						return http.StatusOK, nil
					}
					h := http.Header{}
					if v := tt.retryAfter(); v != "" {
						h.Set("Retry-After", v)
					}
					if tt.status == http.StatusFound {
						h.Set("Location", "/elsewhere")
					}
					return tt.status, h
				}
				tr := newTransport(t, Rules{Default: &Limit{Rate: 100}}, server)
				c := &http.Client{Transport: tr, // it must not follow the redirect
					CheckRedirect: func(*http.Request, []*http.Request) error {
						return http.ErrUseLastResponse
					}}

				// The response comes back as it was: no retry, no change.
				resp, err := send(context.Background(), c, "http://a.test/first").wait()
				if err != nil || resp.StatusCode != tt.status ||
					resp.Header.Get("Retry-After") != tt.retryAfter() {
					t.Fatalf("GET /first = %v, %v; want status %d and its Retry-After",
						resp, err, tt.status)
				}
				server.check(t, "a.test /first", 0)

				sendAll(t, c, "http://a.test/next", "http://b.test/next")
				server.check(t, "a.test /next", tt.pause)
				server.check(t, "b.test /next", 0)
			})
		})
	}
}

func TestTransportCancelledWhileWaitingIsNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		tr := newTransport(t, Rules{Default: &Limit{Rate: 1, Burst: 1}}, server)
		sendAll(t, &http.Client{Transport: tr}, "http://a.test/first")

		ctx, cancel := context.WithCancel(context.Background())
		body := &closeRecorder{Reader: strings.NewReader("payload")}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://a.test/late", body)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := tr.RoundTrip(req)
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()

		err = <-done
		if !errors.Is(err, context.Canceled) ||
			!strings.Contains(err.Error(), `POST http://a.test/late (key "a.test")`) {
			t.Errorf("RoundTrip = %v, want context.Canceled naming the request and key", err)
		}
		if !body.closed.Load() {
			t.Error("the body of the request not sent was not closed")
		}

		// Well past when it would have been granted, it still was not sent.
		time.Sleep(2 * time.Second)
		server.check(t, "a.test /late")
	})
}

func TestTransportRefusesUnmeetableDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		c := &http.Client{Transport: newTransport(t, Rules{Default: &Limit{Rate: 1, Burst: 1}},
			server)}
		sendAll(t, c, "http://a.test/first")

		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := send(ctx, c, "http://a.test/late").wait(); !errors.Is(err, ErrDeadline) {
			t.Errorf("GET with 500ms left behind a 1s wait = %v, want ErrDeadline", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the refusal took %v, want none", waited)
		}
		server.check(t, "a.test /late")
	})
}

// closeRecorder is a request body that records whether it was closed.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeRecorder) Close() error {
	b.closed.Store(true)
	return nil
}

func TestTransportCustomKeyAndCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		tenants := Rules{Exact: map[string]Limit{"alice": {Rate: 10}, "bob": {Rate: 10}}}
		tr := newTransport(t, tenants, server)
		tr.Key = func(req *http.Request) string { return req.URL.Query().Get("tenant") }
		tr.Cost = func(req *http.Request) float64 {
			if req.URL.Path == "/batch" {
				return 5
			}
			return 1
		}
		c := &http.Client{Transport: tr}

		// alice's bucket holds 10: two batches fit at once, the third waits
		// until 5 units have drained, for 500 ms; bob waits for nobody, and
		// neither does a host of alice's on another server.
		sendAll(t, c, "http://a.test/batch?tenant=alice", "http://a.test/batch?tenant=alice",
			"http://a.test/batch?tenant=alice", "http://a.test/one?tenant=bob",
			"http://b.test/one?tenant=bob")
		server.check(t, "a.test /batch", 0, 0, 500*time.Millisecond)
		server.check(t, "a.test /one", 0)
		server.check(t, "b.test /one", 0)

		st, err := tr.Keyed.For("alice").Status(context.Background())
		if err != nil || st.GrantedAmount != 15 {
			t.Errorf("alice's Status = %+v, %v; want 15 units granted", st, err)
		}
	})
}

func TestTransportUnknownKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		tr := newTransport(t, Rules{Exact: map[string]Limit{"a.test": {Rate: 1}}}, server)
		c := &http.Client{Transport: tr}

		// The URL in the error has its password hidden.
		_, err := send(context.Background(), c, "http://me:secret@b.test/x").wait()
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"b.test"`) ||
			strings.Contains(err.Error(), "secret") {
			t.Errorf("GET from an unknown host = %v, want ErrUnknownKey naming it, no password",
				err)
		}

		noKey := *tr
		noKey.Key = func(*http.Request) string { return "" }
		c = &http.Client{Transport: &noKey}
		if _, err := send(context.Background(), c, "http://a.test/x").wait(); !errors.Is(err,
			ErrUnknownKey) {
			t.Errorf("GET with an empty key = %v, want ErrUnknownKey", err)
		}
		server.check(t, "b.test /x")
		server.check(t, "a.test /x")
	})
}

func TestTransportTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := newFakeServer()
		tr := newTransport(t, everyHost, server)
		tr.Cost = func(*http.Request) float64 { return 2 }

		_, err := send(context.Background(), &http.Client{Transport: tr}, "http://a.test/").wait()
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("GET costing 2 with burst 1 = %v, want ErrTooLarge", err)
		}
		server.check(t, "a.test /")
	})
}

func TestTransportWithoutKeyedFails(t *testing.T) {
	server := newFakeServer()
	body := &closeRecorder{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPut, "http://a.test/x", body)
	if err != nil {
		t.Fatal(err)
	}

	resp, err := (&Transport{Base: server}).RoundTrip(req)
	if resp != nil || err == nil || !strings.Contains(err.Error(), "Keyed is nil") ||
		!strings.Contains(err.Error(), "PUT http://a.test/x") {
		t.Errorf("RoundTrip with no Keyed = %v, %v; want an error naming Keyed and the request",
			resp, err)
	}
	if !body.closed.Load() {
		t.Error("the body of the request not sent was not closed")
	}
	if len(server.arrived) != 0 {
		t.Errorf("requests sent: %v, want none", server.arrived)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string // "" for none
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"86400", 24 * time.Hour, true},
		{"86401", 24 * time.Hour, true},                   // capped
		{"99999999999999999999999", 24 * time.Hour, true}, // beyond uint64, capped
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Sun Mar  1 12:00:30 2026", 30 * time.Second, true},       // asctime
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},                 // past: now
		{"Sun, 01 Mar 2027 12:00:00 GMT", 24 * time.Hour, true},    // capped
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"5 s", 0, false},
		{"soon", 0, false},
		{"2026-03-01T12:00:30Z", 0, false}, // RFC 3339 is not an HTTP date
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		got, ok := retryAfter(h, now)
		if ok != tt.ok || (ok && got.Sub(now) != tt.want) {
			t.Errorf("retryAfter(%q) = now+%v, %v; want now+%v, %v",
				tt.header, got.Sub(now), ok, tt.want, tt.ok)
		}
	}
}
