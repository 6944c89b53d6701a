// Package dueheap keeps the timer actor's wake-ups: at most one due time
// per key, earliest first. Setting, moving, removing and popping a key each
// cost O(log n) in the number of keys, so one timer can serve many buckets.
package dueheap

import "container/heap"

// Heap holds one due time and one value per key. Use New to make one; a
// Heap is not safe for concurrent use (the timer actor owns its own).
type Heap[K comparable, V any] struct {
	entries entries[K, V]
	byKey   map[K]*entry[K, V]
	spare   *entry[K, V] // the last entry popped, for the next key set
}

// New returns an empty Heap.
func New[K comparable, V any]() *Heap[K, V] {
	return &Heap[K, V]{byKey: make(map[K]*entry[K, V])}
}

// Len returns how many keys have a due time.
func (h *Heap[K, V]) Len() int {
	return len(h.entries)
}

// Set gives key the due time due and the value value, whether or not it had
// one before.
func (h *Heap[K, V]) Set(key K, value V, due int64) {
	if e, ok := h.byKey[key]; ok {
		e.value, e.due = value, due
		heap.Fix(&h.entries, e.index)
		return
	}

	// A bucket woken asks again soon after: reuse its entry rather than
	// make one per wake-up.
	e := h.spare
	if e == nil {
		e = new(entry[K, V])
	}
	h.spare = nil
	*e = entry[K, V]{key: key, value: value, due: due}
	heap.Push(&h.entries, e)
	h.byKey[key] = e
}

// Remove takes away key's due time, if it has one.
func (h *Heap[K, V]) Remove(key K) {
	if e, ok := h.byKey[key]; ok {
		heap.Remove(&h.entries, e.index)
		delete(h.byKey, key)
	}
}

// Next returns the earliest due time, and false if no key has one.
func (h *Heap[K, V]) Next() (due int64, ok bool) {
	if len(h.entries) == 0 {
		return 0, false
	}

	return h.entries[0].due, true
}

// PopDue takes away the earliest due time and returns its value if it is
// at or before now; otherwise it changes nothing and returns false.
func (h *Heap[K, V]) PopDue(now int64) (value V, ok bool) {
	if len(h.entries) == 0 || h.entries[0].due > now {
		return value, false
	}

	e := heap.Pop(&h.entries).(*entry[K, V])
	delete(h.byKey, e.key)
	value = e.value
	*e = entry[K, V]{}
	h.spare = e

	return value, true
}

// entry is one key's due time.
type entry[K comparable, V any] struct {
	key   K
	value V
	due   int64
	index int // in entries
}

// entries is a min-heap by due time, for container/heap.
type entries[K comparable, V any] []*entry[K, V]

func (es entries[K, V]) Len() int           { return len(es) }
func (es entries[K, V]) Less(i, j int) bool { return es[i].due < es[j].due }

func (es entries[K, V]) Swap(i, j int) {
	es[i], es[j] = es[j], es[i]
	es[i].index, es[j].index = i, j
}

func (es *entries[K, V]) Push(x any) {
	e := x.(*entry[K, V])
	e.index = len(*es)
	*es = append(*es, e)
}

func (es *entries[K, V]) Pop() any {
	old := *es
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*es = old[:len(old)-1]

	return e
}
