package gateway

import (
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// JobPlanner decides which background jobs a state change enqueues in its transaction. The use
// cases say what happened; the planner (internal/jobs, on River) says what must follow, so that
// this package knows nothing of the queue. A nil planner enqueues nothing.
type JobPlanner interface {
	// PaymentCreated returns the jobs of a new payment: what follows it to its end (polls that
	// recover lost notifications, its expiry), whether or not its wallet is chosen yet.
	PaymentCreated(p *payment.Payment, now time.Time) []Job
	// MethodChosen returns the jobs of a payment whose buyer has just chosen its wallet on the
	// checkout, written before the order is placed there.
	MethodChosen(p *payment.Payment, now time.Time) []Job
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

func (s *Service) planMethodChosen(p *payment.Payment, now time.Time) []Job {
	if s.planner == nil {
		return nil
	}
	return s.planner.MethodChosen(p, now)
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
