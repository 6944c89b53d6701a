package dueheap

import (
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHeapPopsDueInOrder(t *testing.T) {
	h := New[string, int]()
	h.Set("c", 3, 30)
	h.Set("a", 1, 10)
	h.Set("b", 2, 20)
	h.Set("c", 4, 5) // moved to the front, with a new value
	h.Remove("b")
	h.Remove("nobody")

	if due, ok := h.Next(); !ok || due != 5 || h.Len() != 2 {
		t.Fatalf("Next() = %d, %v with %d keys; want 5, true with 2", due, ok, h.Len())
	}
	var got []int
	for {
		v, ok := h.PopDue(10)
		if !ok {
			break
		}
		got = append(got, v)
	}
	if !slices.Equal(got, []int{4, 1}) || h.Len() != 0 {
		t.Errorf("popped %v, %d left; want [4 1], 0 left", got, h.Len())
	}
	if _, ok := h.Next(); ok {
		t.Error("Next on an empty heap says there is a due time")
	}
}

func TestHeapKeepsWhatIsNotDue(t *testing.T) {
	h := New[int, int]()
	h.Set(1, 1, 100)
	if _, ok := h.PopDue(99); ok || h.Len() != 1 {
		t.Errorf("PopDue(99) took a wake-up due at 100; %d left", h.Len())
	}
}

// TestHeapAgainstASortedModel runs random operations against a map and
// checks that every pop is the earliest due time left.
func TestHeapAgainstASortedModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := New[int, int]()
	model := map[int]int64{}
	for range 100_000 {
		k := rng.IntN(200)
		switch op := rng.IntN(10); {
		case op < 5:
			due := rng.Int64N(1000)
			h.Set(k, k, due)
			model[k] = due
		case op < 7:
			h.Remove(k)
			delete(model, k)
		default:
			now := rng.Int64N(1000)
			v, ok := h.PopDue(now)
			earliest, found := int64(0), false
			for _, due := range model {
				if !found || due < earliest {
					earliest, found = due, true
				}
			}
			if want := found && earliest <= now; ok != want {
				t.Fatalf("PopDue(%d) = %v; earliest due %d of %d", now, ok, earliest, len(model))
			}
			if ok {
				if model[v] != earliest {
					t.Fatalf("PopDue(%d) gave key %d due %d; earliest is %d", now, v, model[v],
						earliest)
				}
				delete(model, v)
			}
		}
		if h.Len() != len(model) {
			t.Fatalf("%d keys, model has %d", h.Len(), len(model))
		}
	}
}
