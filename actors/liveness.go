package actors

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dripsched/drip/messages"
)

// liveness notices a remote bucket's node going silent. protoactor's remote
// reports a broken connection at once when the peer's socket closes, but a
// node that hangs, or one that cannot be dialled, keeps the endpoint writer
// retrying for 10 s (5 tries, 2 s apart) while calls wait. So while any
// call of its requester waits, liveness probes the bucket every fifth of
// after, and fails the calls once nothing at all has come from the bucket's
// node for after. With nothing in flight it holds no timer.
// probesPerPeriod is how many probes go out while the node may stay silent:
// a silent node is noticed at most after/probesPerPeriod late.
const probesPerPeriod = 5

type liveness struct {
	r     *Requester
	after time.Duration
	epoch time.Time

	lastHeard atomic.Int64 // when the bucket's node last spoke, in ns since epoch
	inFlight  atomic.Int64 // calls registered and not yet answered

	mu    sync.Mutex
	timer *time.Timer // armed while calls wait
}

func newLiveness(r *Requester, after time.Duration) *liveness {
	return &liveness{r: r, after: after, epoch: time.Now()}
}

// heard records a sign of life from the bucket's node.
func (l *liveness) heard() {
	l.lastHeard.Store(int64(time.Since(l.epoch)))
}

// callRegistered counts a new call in flight.
func (l *liveness) callRegistered() {
	l.inFlight.Add(1)
}

// callEnded counts a call answered or abandoned.
func (l *liveness) callEnded() {
	l.inFlight.Add(-1)
}

// callStarted arms the probe timer if it is not armed; silence is counted
// from the first call after a quiet spell.
func (l *liveness) callStarted() {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.timer == nil {
		l.heard()
		l.timer = time.AfterFunc(l.after/probesPerPeriod, l.tick)
	}
}

// tick runs on the probe timer: it disarms when nothing waits, fails the
// calls when the node has been silent too long, and probes otherwise.
func (l *liveness) tick() {
	l.mu.Lock()
	if l.timer == nil || l.inFlight.Load() <= 0 {
		l.timer = nil
		l.mu.Unlock()
		return
	}
	l.timer.Reset(l.after / probesPerPeriod)
	l.mu.Unlock()

	silent := time.Duration(int64(time.Since(l.epoch)) - l.lastHeard.Load())
	if silent >= l.after {
		l.heard() // the next calls get a full period of their own
		l.r.bucketGone(nil, fmt.Sprintf("no word from the bucket for %v",
			silent.Round(time.Millisecond)), true)
		return
	}

	// Any reply counts, even a rejection; request id 0 is never a call's.
	if pid := l.r.target.Load(); pid != nil {
		l.r.sys.Root.RequestWithCustomSender(pid, &messages.GetStatus{}, l.r.self)
	}
}

// stop disarms the probe timer.
func (l *liveness) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}
