package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func testListEvents(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	var all, failed []*payment.Event
	for i := range 9 {
		p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
		q := createPayment(t, s, pendingPayment(other.ID, 100, t0))
		// Pairs share created_at: the id orders them.
		now := t0.Add(time.Duration(i/2) * time.Second)
		for _, pay := range []*payment.Payment{p, q} {
			updated, err := s.UpdatePayment(ctx, pay.ID, func(p *payment.Payment) (gateway.Effects, error) {
				var err error
				if i%3 == 0 {
					_, err = p.Fail("declined", "card declined", now)
				} else {
					_, err = p.Succeed(payment.ProviderRef{TradeNo: fmt.Sprint(i)}, now, now)
				}
				if err != nil {
					return gateway.Effects{}, err
				}
				e, err := payment.PaymentEvent(payment.NewID("evt"), p, now)
				return gateway.Effects{Events: []payment.Event{e}}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			if pay == p {
				e, err := payment.PaymentEvent("", updated, now)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, &e)
			}
		}
	}
	page, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != len(all) {
		t.Fatalf("%d events, want %d", len(page), len(all))
	}
	for i, e := range page {
		if e.MerchantID != m.ID || e.Object != "event" {
			t.Fatalf("event %d: merchant %q object %q", i, e.MerchantID, e.Object)
		}
		if i > 0 {
			prev := page[i-1]
			if e.CreatedAt.After(prev.CreatedAt) || (e.CreatedAt.Equal(prev.CreatedAt) && e.ID >= prev.ID) {
				t.Fatalf("events %d and %d out of order: %s %v, %s %v", i-1, i, prev.ID, prev.CreatedAt, e.ID, e.CreatedAt)
			}
		}
		if e.Type == payment.EventPaymentFailed {
			failed = append(failed, e)
		}
	}
	// The stored data is the payment as it was after the change, byte for byte.
	wantData := map[string]bool{}
	for _, e := range all {
		wantData[string(e.Data)] = true
	}
	for _, e := range page {
		if !wantData[string(e.Data)] {
			t.Fatalf("event %s data %s is not one written", e.ID, e.Data)
		}
	}

	var paged []*payment.Event
	f := gateway.EventFilter{Type: payment.EventPaymentFailed, Limit: 1}
	for {
		got, err := s.ListEvents(ctx, m.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		paged = append(paged, got...)
		f.StartingAfter = got[len(got)-1].ID
	}
	wantEqual(t, "payment.failed events paged one by one", paged, failed)

	def, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{})
	if err != nil || len(def) != 9 {
		t.Fatalf("limit 0: %d events (%v), want all 9 (fewer than the default 10)", len(def), err)
	}
	_, err = s.ListEvents(ctx, m.ID, gateway.EventFilter{StartingAfter: "evt_missing"})
	wantKind(t, "unknown cursor", err, payment.NotFound)
	otherPage, err := s.ListEvents(ctx, other.ID, gateway.EventFilter{Limit: 100})
	if err != nil || len(otherPage) != 9 {
		t.Fatalf("other merchant: %d events (%v), want 9", len(otherPage), err)
	}
	_, err = s.ListEvents(ctx, other.ID, gateway.EventFilter{StartingAfter: page[0].ID})
	wantKind(t, "cursor of another merchant's event", err, payment.NotFound)
}
