package payment

import (
	"encoding/json"
	"time"
)

// EventType names what happened; merchants subscribe to these.
type EventType string

const (
	EventPaymentSucceeded EventType = "payment.succeeded"
	EventPaymentFailed    EventType = "payment.failed"
	EventPaymentCanceled  EventType = "payment.canceled"
	EventRefundSucceeded  EventType = "refund.succeeded"
	EventRefundFailed     EventType = "refund.failed"
)

// EventTypes lists every event type.
var EventTypes = []EventType{EventPaymentSucceeded, EventPaymentFailed, EventPaymentCanceled, EventRefundSucceeded, EventRefundFailed}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool {
	for _, k := range EventTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Event records a state change for merchants, written in the same transaction as the change.
type Event struct {
	ID         string          `json:"id"`
	Object     string          `json:"object"` // always "event"
	MerchantID string          `json:"-"`
	Livemode   bool            `json:"livemode"`
	Type       EventType       `json:"type"`
	Data       json.RawMessage `json:"data"` // the object as it was after the change
	CreatedAt  time.Time       `json:"created_at"`
}

// PaymentEvent returns the event for p's current final status.
func PaymentEvent(id string, p *Payment, now time.Time) (Event, error) {
	var t EventType
	switch p.Status {
	case StatusSucceeded:
		t = EventPaymentSucceeded
	case StatusFailed:
		t = EventPaymentFailed
	case StatusCanceled:
		t = EventPaymentCanceled
	default:
		return Event{}, Errorf(Internal, "event_state", "no event for a %s payment", p.Status)
	}
	return newEvent(id, p.MerchantID, p.Livemode, t, p, now)
}

// RefundEvent returns the event for r's current final status.
func RefundEvent(id string, r *Refund, now time.Time) (Event, error) {
	var t EventType
	switch r.Status {
	case RefundSucceeded:
		t = EventRefundSucceeded
	case RefundFailed:
		t = EventRefundFailed
	default:
		return Event{}, Errorf(Internal, "event_state", "no event for a %s refund", r.Status)
	}
	return newEvent(id, r.MerchantID, r.Livemode, t, r, now)
}

func newEvent(id, merchantID string, livemode bool, t EventType, obj any, now time.Time) (Event, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return Event{}, Errorf(Internal, "event_encode", "encode %s: %v", t, err)
	}
	return Event{ID: id, Object: "event", MerchantID: merchantID, Livemode: livemode, Type: t, Data: data, CreatedAt: now}, nil
}
