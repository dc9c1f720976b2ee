package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func testRefunds(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := succeededPayment(t, s, m.ID, 1000)

	r1 := newRefund(p, 300)
	if err := s.CreateRefund(ctx, r1, nil, reserve(300)); err != nil {
		t.Fatal(err)
	}
	want1 := *r1
	got, err := s.Refund(ctx, m.ID, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "refund", got, &want1)
	if got, err = s.Refund(ctx, "", r1.ID); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "refund by id alone", got, &want1)
	if got, err = s.RefundByOutRefundNo(ctx, p.Provider, r1.ProviderRef.OutRefundNo); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "refund by out_refund_no", got, &want1)
	if p2 := mustPayment(t, s, m.ID, p.ID); p2.AmountRefunded != 300 {
		t.Fatalf("amount_refunded %d after a refund of 300", p2.AmountRefunded)
	}

	// A refund whose out_refund_no is taken is refused and its reservation undone.
	dup := newRefund(p, 100)
	dup.ProviderRef.OutRefundNo = r1.ProviderRef.OutRefundNo
	wantKind(t, "duplicate out_refund_no", s.CreateRefund(ctx, dup, nil, reserve(100)), payment.Conflict)
	// A callback's error comes back unchanged, and nothing is written.
	cause := errors.Join(errCallback)
	if err := s.CreateRefund(ctx, newRefund(p, 100), nil, func(p *payment.Payment) error {
		p.AmountRefunded += 100
		return cause
	}); err != cause {
		t.Fatalf("got %v, want the callback's error unchanged", err)
	}
	if p2 := mustPayment(t, s, m.ID, p.ID); p2.AmountRefunded != 300 {
		t.Fatalf("amount_refunded %d after refused refunds, want 300", p2.AmountRefunded)
	}

	r2 := newRefund(p, 200)
	r2.CreatedAt = r1.CreatedAt.Add(time.Second)
	r2.Metadata, r2.ProviderRef.OutRefundNo = nil, ""
	if err := s.CreateRefund(ctx, r2, nil, reserve(200)); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRefunds(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want2 := *r2
	wantEqual(t, "refunds, newest first", list, []*payment.Refund{&want2, &want1})

	// The wallet returns r1's money; r2 fails, and its amount is refundable again.
	now := t0.Add(2 * time.Hour)
	evt1 := payment.NewID("evt")
	done, err := s.UpdateRefund(ctx, r1.ID, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		if p.ID != r.PaymentID || p.AmountRefunded != 500 {
			return gateway.Effects{}, errors.New("UpdateRefund passed the wrong payment")
		}
		r.ProviderRef.RefundID = "50300000012026112500001"
		if _, err := r.Succeed(now, now); err != nil {
			return gateway.Effects{}, err
		}
		e, err := payment.RefundEvent(evt1, r, now)
		return gateway.Effects{Events: []payment.Event{e}}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != payment.RefundSucceeded || !done.SucceededAt.Equal(now) || done.ProviderRef.RefundID == "" {
		t.Fatalf("refund after success: %+v", done)
	}
	got, err = s.Refund(ctx, m.ID, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "UpdateRefund's answer and a fresh read", got, done)

	if _, err := s.UpdateRefund(ctx, r2.ID, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		if _, err := r.Fail("insufficient_balance", "merchant balance too low", now); err != nil {
			return gateway.Effects{}, err
		}
		p.AmountRefunded -= r.Amount
		p.UpdatedAt = now
		e, err := payment.RefundEvent(payment.NewID("evt"), r, now)
		return gateway.Effects{Events: []payment.Event{e}}, err
	}); err != nil {
		t.Fatal(err)
	}
	if p2 := mustPayment(t, s, m.ID, p.ID); p2.AmountRefunded != 300 || !p2.UpdatedAt.Equal(now) {
		t.Fatalf("payment after a failed refund: amount_refunded %d, updated %v; want 300 and %v", p2.AmountRefunded, p2.UpdatedAt, now)
	}
	events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Type: payment.EventRefundSucceeded, Limit: 10})
	if err != nil || len(events) != 1 || events[0].ID != evt1 {
		t.Fatalf("refund.succeeded events: %+v, %v", events, err)
	}

	// An error from the callback rolls back both rows and the events.
	_, err = s.UpdateRefund(ctx, r1.ID, func(r *payment.Refund, p *payment.Payment) (gateway.Effects, error) {
		r.Reason, p.Description = "changed", "changed"
		return gateway.Effects{Events: []payment.Event{{ID: payment.NewID("evt"), MerchantID: m.ID, Type: payment.EventRefundFailed, Data: []byte("{}"), CreatedAt: now}}}, errCallback
	})
	if err != errCallback {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if got, _ := s.Refund(ctx, m.ID, r1.ID); got.Reason == "changed" {
		t.Fatal("refund change survived a callback error")
	}
	if got := mustPayment(t, s, m.ID, p.ID); got.Description == "changed" {
		t.Fatal("payment change survived a callback error")
	}
	if events, _ := s.ListEvents(ctx, m.ID, gateway.EventFilter{Type: payment.EventRefundFailed, Limit: 10}); len(events) != 1 {
		t.Fatalf("%d refund.failed events, want 1", len(events))
	}
}

func testRefundIsolation(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	p := succeededPayment(t, s, m.ID, 100)
	r := newRefund(p, 10)
	if err := s.CreateRefund(ctx, r, nil, reserve(10)); err != nil {
		t.Fatal(err)
	}

	got, err := s.Refund(ctx, other.ID, r.ID)
	wantNotFound(t, "another merchant's refund", got, err)
	got, err = s.Refund(ctx, m.ID, "re_missing")
	wantNotFound(t, "missing refund", got, err)
	got, err = s.RefundByOutRefundNo(ctx, payment.WeChatPay, r.ProviderRef.OutRefundNo)
	wantNotFound(t, "out_refund_no under the other wallet", got, err)
	got, err = s.RefundByOutRefundNo(ctx, p.Provider, "")
	wantNotFound(t, "empty out_refund_no", got, err)
	got, err = s.UpdateRefund(ctx, "re_missing", func(*payment.Refund, *payment.Payment) (gateway.Effects, error) {
		t.Error("fn called for a missing refund")
		return gateway.Effects{}, nil
	})
	wantNotFound(t, "update of a missing refund", got, err)

	called := false
	lost := newRefund(p, 10)
	lost.PaymentID = "pay_missing"
	err = s.CreateRefund(ctx, lost, nil, func(*payment.Payment) error { called = true; return nil })
	wantKind(t, "refund of a missing payment", err, payment.NotFound)
	// A refund claiming another merchant cannot reach this merchant's payment.
	stolen := newRefund(p, 10)
	stolen.MerchantID = other.ID
	err = s.CreateRefund(ctx, stolen, nil, func(*payment.Payment) error { called = true; return nil })
	wantKind(t, "refund of another merchant's payment", err, payment.NotFound)
	if called {
		t.Fatal("CreateRefund called fn without the merchant's payment")
	}

	list, err := s.ListRefunds(ctx, "pay_missing")
	if err != nil || len(list) != 0 {
		t.Fatalf("refunds of a missing payment: %v, %v; want none", list, err)
	}
}
