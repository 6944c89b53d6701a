package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps the pause a Retry-After header can ask for. A server
// that asks for more is most likely wrong (a clock far off, a typo), and a
// bucket paused for a week looks like a hang; a day is long enough for any
// real quota window.
const maxRetryAfter = 24 * time.Hour

// Transport is an http.RoundTripper that starts each request only when its
// key's bucket in Keyed grants it: by default one unit per request, one
// bucket per host. Use it as an http.Client's Transport.
//
// A request waits in FIFO order among the requests of its key. If its
// context ends while it waits, it is never sent, and RoundTrip returns an
// error wrapping the context's error; any other refusal from Keyed
// (ErrUnknownKey, ErrTooLarge, ErrDeadline, ...) is returned the same way,
// wrapped with the method, the URL and the key.
//
// When a response has status 429 (Too Many Requests) or 503 (Service
// Unavailable) and a Retry-After header, in seconds or as an HTTP date,
// Transport pauses the key's bucket until that moment (see
// Scheduler.Pause), at most 24 hours ahead; an unparsable header is
// ignored. Requests already granted are not held back, but every later
// one waits for the pause to end. A date is read against the local clock.
//
// Transport never retries: it returns every response unchanged, its body
// unread. As the pause is already in force when RoundTrip returns, a
// caller that retries needs no sleep of its own, as in
//
//	for {
//		resp, err := client.Do(req) // a request with a body needs a new one each time
//		if err != nil {
//			return err
//		}
//		if resp.StatusCode != http.StatusTooManyRequests {
//			return use(resp)
//		}
//		resp.Body.Close() // the retry waits in the queue until the pause ends
//	}
//
// A Transport is safe for concurrent use once its fields are set; they must
// not change afterwards. Its zero value is not usable: RoundTrip returns an
// error, as Keyed is nil.
type Transport struct {
	// Keyed holds the buckets; required.
	Keyed *Keyed

	// Base sends the requests that are granted; nil means
	// http.DefaultTransport.
	Base http.RoundTripper

	// Key returns the key of a request, the bucket it waits in; nil means
	// the request's req.URL.Host, such as "api.example.com:8443".
	Key func(*http.Request) string

	// Cost returns how many units a request takes from its bucket; nil
	// means 1 for every request.
	Cost func(*http.Request) float64
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip waits until req's bucket grants it, sends it with Base, and
// pauses the bucket if the response asks for it with Retry-After. It does
// not modify req. Like every RoundTripper, it closes req's body, also when
// the request is refused before it is sent.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key, err := t.acquire(req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}

	resp, err := t.base().RoundTrip(req)
	if err != nil {
		return nil, err
	}

	// A pause is asked for only with these statuses; elsewhere, as in a
	// redirect, Retry-After means something else.
	if resp.StatusCode == http.StatusTooManyRequests ||
		resp.StatusCode == http.StatusServiceUnavailable {
		t.pause(req, key, resp.Header)
	}

	return resp, nil
}

// acquire waits for req's grant and returns req's key.
func (t *Transport) acquire(req *http.Request) (string, error) {
	if req.URL == nil {
		return "", errors.New("scheduler: request not sent: it has no URL")
	}
	if t.Keyed == nil {
		return "", fmt.Errorf("scheduler: %s %s not sent: Transport.Keyed is nil",
			requestMethod(req), req.URL.Redacted())
	}

	key := req.URL.Host
	if t.Key != nil {
		key = t.Key(req)
	}
	cost := 1.0
	if t.Cost != nil {
		cost = t.Cost(req)
	}

	if err := t.Keyed.Acquire(req.Context(), key, cost); err != nil {
		return "", fmt.Errorf("scheduler: %s %s (key %q) not sent: %w",
			requestMethod(req), req.URL.Redacted(), key, err)
	}

	return key, nil
}

// pause pauses key's bucket until the moment h's Retry-After names.
func (t *Transport) pause(req *http.Request, key string, h http.Header) {
	now := time.Now()
	until, ok := retryAfter(h, now)
	if !ok || !until.After(now) {
		return
	}

	// The pause must hold even if the caller gives up on req the moment it
	// has the response, so it does not end with req's context; it is one
	// round trip to a local actor. Its only failure is a stopped Keyed,
	// where every later request fails anyway, and the response must reach
	// the caller regardless, so the error is dropped.
	ctx := context.WithoutCancel(req.Context())
	_ = t.Keyed.For(key).Pause(ctx, until)
}

// CloseIdleConnections closes the idle connections of Base, if it keeps
// any, so that http.Client.CloseIdleConnections reaches them.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base == nil {
		return http.DefaultTransport
	}

	return t.Base
}

// requestMethod returns req's method as it goes on the wire: "" means GET.
func requestMethod(req *http.Request) string {
	if req.Method == "" {
		return http.MethodGet
	}

	return req.Method
}

// retryAfter returns the moment h's Retry-After header asks the client to
// wait until, reading it at now. RFC 9110 allows a number of seconds
// ("120") or an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT", or one of the
// two obsolete date forms). A date in the past means now; a moment more
// than maxRetryAfter ahead is cut to now+maxRetryAfter. It returns false if
// the header is missing or is neither form.
func retryAfter(h http.Header, now time.Time) (time.Time, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return time.Time{}, false
	}

	var wait time.Duration
	if isDigits(v) {
		// Too many digits for a uint64 is still a valid, if absurd, number.
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			secs = uint64(maxRetryAfter / time.Second)
		}
		wait = time.Duration(secs) * time.Second
	} else {
		date, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, false
		}
		wait = min(max(date.Sub(now), 0), maxRetryAfter)
	}

	return now.Add(wait), true
}

// isDigits reports whether s is one or more ASCII digits and nothing else:
// RFC 9110's delay-seconds, with no sign, point or space.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}

	return s != ""
}
