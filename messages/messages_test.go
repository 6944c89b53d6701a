package messages

import (
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRoundTrip checks that every message survives the wire unchanged, as
// it must to cross protoactor remote.
func TestRoundTrip(t *testing.T) {
	msgs := []proto.Message{
		&Acquire{RequestId: 1, Amount: 2.5, MaxWaitNanos: 3},
		&TryAcquire{RequestId: 2, Amount: 1},
		&Granted{RequestId: 3},
		&Rejected{RequestId: 4, Reason: RejectReason_REJECT_REASON_DEADLINE, Detail: "late"},
		&Cancel{RequestId: 5},
		&Release{RequestId: 6},
		&GetStatus{RequestId: 7},
		&Status{RequestId: 8, Limit: &Limit{Rate: 100, PerNanos: 1e9, Burst: 10,
			Mode: Mode_MODE_SLIDING_WINDOW}, Level: 1.5, Queued: 2, QueuedAmount: 3},
		&SetLimit{RequestId: 9, Limit: &Limit{Rate: 1}},
		&Stop{RequestId: 10},
		&ScheduleLeak{DelayNanos: 11, Cancel: true},
		&Leak{},
	}
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", m, err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("%T: got %v (%v), want %v", m, got, err, m)
		}
	}
}
