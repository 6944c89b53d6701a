package actors

import "github.com/asynkron/protoactor-go/actor"

// waiterKey identifies a request: the requester's address and id, and the
// request id the requester chose. Strings are shared with the sender's PID,
// so building a key allocates nothing.
type waiterKey struct {
	address, id string
	request     uint64
}

// keyOf returns the key of request id sent by sender.
func keyOf(sender *actor.PID, id uint64) waiterKey {
	return waiterKey{address: sender.GetAddress(), id: sender.GetId(), request: id}
}

// waiter is one queued Acquire.
type waiter struct {
	key      waiterKey
	sender   *actor.PID
	units    uint64
	deadline int64 // bucket time after which it is no use granting; 0 for none
	hold     bool  // granted as a hold (see core.hold)
	prev     *waiter
	next     *waiter
}

// queue is the FIFO of waiters: a doubly linked list for order plus an index
// by key, so that any waiter can leave in O(1) wherever it stands.
type queue struct {
	head, tail *waiter
	index      map[waiterKey]*waiter
	units      uint64 // sum of the waiters' units
	peak       int    // most waiters since the index was made
}

// bigQueue is the number of waiters past which an emptied queue drops its
// index: Go maps never shrink, and a burst of a million waiters would
// otherwise pin tens of megabytes for the bucket's lifetime.
const bigQueue = 1024

// push appends w.
func (q *queue) push(w *waiter) {
	if q.index == nil {
		q.index = make(map[waiterKey]*waiter)
	}
	q.index[w.key] = w
	q.units += w.units
	q.peak = max(q.peak, len(q.index))

	w.prev = q.tail
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
}

// remove unlinks w, which must be in q.
func (q *queue) remove(w *waiter) {
	delete(q.index, w.key)
	q.units -= w.units
	if len(q.index) == 0 && q.peak > bigQueue {
		q.index, q.peak = nil, 0
	}

	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// len returns the number of waiters.
func (q *queue) len() int {
	return len(q.index)
}
