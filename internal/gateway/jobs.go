package gateway

import (
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// JobPlanner decides which background jobs a state change enqueues in its transaction. The use
// cases say what happened; the planner (internal/jobs, on River) says what must follow, so that
// this package knows nothing of the queue. A nil planner enqueues nothing.
type JobPlanner interface {
	// PaymentCreated returns the jobs of a new payment: its expiry, and the polls that recover
	// lost notifications once it has a wallet.
	PaymentCreated(p *payment.Payment, now time.Time) []Job
	// OrderPlaced returns the jobs of a payment whose order the wallet has just accepted.
	OrderPlaced(p *payment.Payment, now time.Time) []Job
	// RefundCreated returns the jobs of a new refund: the polls that follow it to its end.
	RefundCreated(r *payment.Refund, now time.Time) []Job
	// EventsWritten returns the jobs that deliver events to the merchant's webhooks.
	EventsWritten(events []payment.Event) []Job
}

func (s *Service) planPaymentCreated(p *payment.Payment, now time.Time) []Job {
	if s.planner == nil {
		return nil
	}
	return s.planner.PaymentCreated(p, now)
}

func (s *Service) planOrderPlaced(p *payment.Payment, now time.Time) []Job {
	if s.planner == nil {
		return nil
	}
	return s.planner.OrderPlaced(p, now)
}

func (s *Service) planRefundCreated(r *payment.Refund, now time.Time) []Job {
	if s.planner == nil {
		return nil
	}
	return s.planner.RefundCreated(r, now)
}

// effects returns the effects of a change that reports events: the events and their deliveries.
func (s *Service) effects(events ...payment.Event) Effects {
	e := Effects{Events: events}
	if s.planner != nil && len(events) > 0 {
		e.Jobs = s.planner.EventsWritten(events)
	}
	return e
}
