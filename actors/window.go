package actors

// window is the sliding-window log: what was granted, and when, during the
// last period. Grants made at the same nanosecond share one entry.
type window struct {
	entries []grantEntry // oldest first, from entries[start]
	start   int
	units   uint64 // sum over the live entries
}

type grantEntry struct {
	at    int64
	units uint64
}

// prune forgets grants that no window containing now can hold. Windows are
// half-open, [t, t+per), so a grant at now-per is already out.
func (w *window) prune(now int64, per uint64) {
	for w.start < len(w.entries) && w.entries[w.start].at <= now-int64(per) {
		w.units -= w.entries[w.start].units
		w.start++
	}

	// Compact once the dead prefix is half the slice, so the log's memory
	// follows the number of live grants.
	if w.start > 32 && w.start*2 >= len(w.entries) {
		n := copy(w.entries, w.entries[w.start:])
		clear(w.entries[n:])
		w.entries = w.entries[:n]
		w.start = 0
	}
}

// add records a grant of u units at now.
func (w *window) add(now int64, u uint64) {
	w.units += u
	if last := len(w.entries) - 1; last >= w.start && w.entries[last].at == now {
		w.entries[last].units += u
		return
	}
	w.entries = append(w.entries, grantEntry{at: now, units: u})
}

// undo takes back the latest u units added at time at, if they are still
// in the log.
func (w *window) undo(at int64, u uint64) {
	last := len(w.entries) - 1
	if last < w.start || w.entries[last].at != at || w.entries[last].units < u {
		return
	}

	w.units -= u
	w.entries[last].units -= u
	if w.entries[last].units == 0 {
		w.entries = w.entries[:last]
	}
}

// fitsAt returns the first time at or after now when u more units fit under
// limit, given that nothing else is granted meanwhile.
func (w *window) fitsAt(now int64, u, limit, per uint64) int64 {
	excess := int64(w.units+u) - int64(limit)
	if excess <= 0 {
		return now
	}

	// Wait for the oldest grants to leave the window until enough has gone.
	for _, e := range w.entries[w.start:] {
		excess -= int64(e.units)
		if excess <= 0 {
			return max(now, e.at+int64(per))
		}
	}

	return now // unreachable while u <= limit
}

// reset empties the log.
func (w *window) reset() {
	*w = window{}
}
