package httpapi

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// CountTransitions wraps store so that every committed status change of a payment or refund
// (whoever causes it: the API, a wallet notification, the expiry job) is counted in
// hutong_status_transitions_total{object,from,to} on reg. Wire it under the gateway.Service:
//
//	svc := gateway.New(gateway.Config{Store: httpapi.CountTransitions(store, reg), …})
func CountTransitions(store gateway.Store, reg prometheus.Registerer) gateway.Store {
	return &countingStore{Store: store, transitions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hutong_status_transitions_total", Help: "Committed status changes of payments and refunds.",
	}, []string{"object", "from", "to"}))}
}

type countingStore struct {
	gateway.Store
	transitions *prometheus.CounterVec
}

func (s *countingStore) UpdatePayment(ctx context.Context, id string, fn func(p *payment.Payment) (gateway.Effects, error)) (*payment.Payment, error) {
	var from payment.Status
	p, err := s.Store.UpdatePayment(ctx, id, func(p *payment.Payment) (gateway.Effects, error) {
		from = p.Status
		return fn(p)
	})
	// Counted only once committed: an error (from fn or the commit) changed nothing.
	if err == nil && p != nil && from != "" && p.Status != from {
		s.transitions.WithLabelValues("payment", string(from), string(p.Status)).Inc()
	}
	return p, err
}

func (s *countingStore) UpdateRefund(ctx context.Context, id string, fn func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error)) (*payment.Refund, error) {
	var from payment.RefundStatus
	var pFrom, pTo payment.Status
	r, err := s.Store.UpdateRefund(ctx, id, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		from, pFrom = r.Status, p.Status
		events, err := fn(r, p)
		pTo = p.Status
		return events, err
	})
	if err == nil && r != nil && from != "" && r.Status != from {
		s.transitions.WithLabelValues("refund", string(from), string(r.Status)).Inc()
	}
	if err == nil && pFrom != "" && pTo != pFrom {
		s.transitions.WithLabelValues("payment", string(pFrom), string(pTo)).Inc()
	}
	return r, err
}
