package scheduler

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/messages"
)

// The errors a Scheduler returns wrap these; test with errors.Is.
var (
	// ErrInvalidAmount: the amount is NaN, infinite, zero, negative or
	// below the resolution of one millionth.
	ErrInvalidAmount = errors.New("scheduler: invalid amount")

	// ErrTooLarge: the amount can never fit (above Burst, or above Rate in
	// SlidingWindow mode).
	ErrTooLarge = errors.New("scheduler: amount too large")

	// ErrQueueFull: the queue is at the bound set by WithMaxQueue or
	// WithMaxQueuedAmount.
	ErrQueueFull = errors.New("scheduler: queue full")

	// ErrDeadline: the queue ahead cannot drain before the context's
	// deadline, so the request was refused without waiting.
	ErrDeadline = errors.New("scheduler: would exceed context deadline")

	// ErrStopped: the scheduler or its bucket has stopped.
	ErrStopped = errors.New("scheduler: stopped")

	// ErrInvalidLimit: a limit field is out of range.
	ErrInvalidLimit = errors.New("scheduler: invalid limit")

	// ErrRestarted: the bucket failed while handling this request and
	// restarted; the request was not granted and may be retried.
	ErrRestarted = errors.New("scheduler: bucket restarted")

	// ErrUnknownKey: no rule of a Keyed scheduler matches the key.
	ErrUnknownKey = errors.New("scheduler: unknown key")

	// ErrUnreachable: the bucket's node gave no sign of life for too long,
	// or its connection died; the request may still be retried.
	ErrUnreachable = errors.New("scheduler: bucket unreachable")
)

// errWouldWait is TryAcquire's refusal; it never leaves the package.
var errWouldWait = errors.New("scheduler: would wait")

// replyError converts a bucket's reply to Acquire or TryAcquire.
func replyError(reply proto.Message) error {
	switch m := reply.(type) {
	case *messages.Granted:
		return nil
	case *messages.Rejected:
		return rejectedError(m)
	}

	return fmt.Errorf("scheduler: unexpected reply %T", reply)
}

// rejectedError converts a rejection to an error wrapping its sentinel.
func rejectedError(m *messages.Rejected) error {
	var sentinel error
	switch m.GetReason() {
	case messages.RejectReason_REJECT_REASON_INVALID_AMOUNT:
		sentinel = ErrInvalidAmount
	case messages.RejectReason_REJECT_REASON_TOO_LARGE:
		sentinel = ErrTooLarge
	case messages.RejectReason_REJECT_REASON_QUEUE_FULL:
		sentinel = ErrQueueFull
	case messages.RejectReason_REJECT_REASON_DEADLINE:
		sentinel = ErrDeadline
	case messages.RejectReason_REJECT_REASON_CANCELLED:
		sentinel = context.Canceled
	case messages.RejectReason_REJECT_REASON_STOPPED:
		sentinel = ErrStopped
	case messages.RejectReason_REJECT_REASON_WOULD_WAIT:
		sentinel = errWouldWait
	case messages.RejectReason_REJECT_REASON_INVALID_LIMIT:
		sentinel = ErrInvalidLimit
	case messages.RejectReason_REJECT_REASON_RESTARTED:
		sentinel = ErrRestarted
	case messages.RejectReason_REJECT_REASON_UNKNOWN_KEY:
		sentinel = ErrUnknownKey
	case messages.RejectReason_REJECT_REASON_UNREACHABLE:
		sentinel = ErrUnreachable
	default:
		return fmt.Errorf("scheduler: request rejected (%v): %s", m.GetReason(), m.GetDetail())
	}

	return fmt.Errorf("%w: %s", sentinel, m.GetDetail())
}
