package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dripsched/drip/messages"
)

// Part is one bucket's share of a request made with AcquireAll.
type Part struct {
	Scheduler *Scheduler
	Amount    float64
}

// AcquireAll acquires every part as one request: requests per minute from
// one bucket and tokens per minute from another, say, or a per-API bucket
// and a global one. It returns nil once every part is granted, and
// otherwise consumes nothing from any bucket.
//
// It asks the buckets one after another, in one order that every
// AcquireAll uses (by bucket and key), each for a hold: a grant that
// bucket keeps to itself, granting nothing else, until it is committed or
// handed back. Once the last part is held, every hold is committed. If a
// part is refused, or ctx ends, the parts already held are handed back,
// and a bucket undoes a held grant exactly. Because every request takes
// its holds in the same order, two AcquireAll calls never wait for each
// other in a circle. FIFO order holds in each bucket; the price of
// all-or-nothing is that a bucket serves nobody else while it holds a part
// for a request still waiting on a later bucket (at most 10 s: a hold that
// lasts longer is taken as committed).
//
// Parts for the same bucket and key are added together. The error is the
// first part's that failed, naming the part, or ctx.Err() unchanged.
func AcquireAll(ctx context.Context, parts ...Part) error {
	ordered, err := orderParts(parts)
	if err != nil {
		return err
	}

	held := make([]heldPart, 0, len(ordered))
	for _, p := range ordered {
		id, err := p.Scheduler.acquireHeld(ctx, p.Amount)
		if err != nil {
			for _, h := range held {
				h.s.req.Tell(&messages.Release{RequestId: h.id, Key: h.s.key})
			}
			if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
				return ctxErr
			}
			return fmt.Errorf("%w (part for bucket %s)", err, p.Scheduler.name())
		}
		held = append(held, heldPart{s: p.Scheduler, id: id})
	}

	for _, h := range held {
		h.s.req.Tell(&messages.Commit{RequestId: h.id, Key: h.s.key})
	}

	return nil
}

// heldPart is a part granted as a hold, by its request id.
type heldPart struct {
	s  *Scheduler
	id uint64
}

// orderParts checks parts, adds up those for the same bucket and key, and
// sorts them in the order every AcquireAll takes its holds in.
func orderParts(parts []Part) ([]Part, error) {
	if len(parts) == 0 {
		return nil, errors.New("scheduler: AcquireAll needs at least one part")
	}

	byBucket := make(map[string]int, len(parts))
	var out []Part
	for i, p := range parts {
		if p.Scheduler == nil {
			return nil, fmt.Errorf("scheduler: part %d has no Scheduler", i)
		}
		if err := p.Scheduler.checkAmount(p.Amount); err != nil {
			return nil, fmt.Errorf("%w (part %d)", err, i)
		}

		name := p.Scheduler.name()
		if j, ok := byBucket[name]; ok {
			out[j].Amount += p.Amount
			continue
		}
		byBucket[name] = len(out)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Part) int {
		return cmp.Compare(a.Scheduler.name(), b.Scheduler.name())
	})

	return out, nil
}

// name identifies the Scheduler's bucket, and orders buckets for
// AcquireAll: its PID and, behind a registry, its key. Without remote
// every actor system's PIDs have the same address, so the system's id
// tells them apart.
func (s *Scheduler) name() string {
	pid := s.req.Bucket()
	name := pid.GetAddress() + "/" + pid.GetId()
	if pid.GetAddress() == "nonhost" {
		name += "@" + s.req.System().ID
	}
	if s.key != "" {
		name += "#" + s.key
	}

	return name
}

// acquireHeld is Acquire for a hold: it returns the request id of the held
// grant, for its Commit or Release.
func (s *Scheduler) acquireHeld(ctx context.Context, amount float64) (uint64, error) {
	m, err := s.acquireMessage(ctx, amount)
	if err != nil {
		return 0, err
	}
	m.Hold = true

	c := s.req.Start(m, nil)
	id := c.ID()
	select {
	case reply := <-c.Reply():
		s.req.Recycle(c)
		return id, replyError(reply)
	case <-ctx.Done():
		// A grant that comes after this is handed back by the requester,
		// which also ends its hold.
		if s.req.Abandon(id, true) {
			return 0, ctx.Err()
		}
	}

	reply := <-c.Reply()
	s.req.Recycle(c)

	return id, replyError(reply)
}
