package storetest

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func testPaymentRoundTrip(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	full := fullPayment(m.ID)
	want := *full
	createPayment(t, s, full)
	wantEqual(t, "payment after create", full, &want)

	got := mustPayment(t, s, m.ID, full.ID)
	wantEqual(t, "payment by merchant and id", got, &want)
	got = mustPayment(t, s, "", full.ID)
	wantEqual(t, "payment by id alone", got, &want)
	got, err := s.PaymentByOutTradeNo(ctx, full.Provider, full.ProviderRef.OutTradeNo)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "payment by out_trade_no", got, &want)

	// The smallest payment: no wallet chosen yet, nil maps and pointers, no expiry.
	bare := &payment.Payment{
		ID: payment.NewID("pay"), Object: "payment", MerchantID: m.ID, Status: payment.StatusPending,
		Amount: 1, Currency: "CNY", CreatedAt: t0, UpdatedAt: t0,
	}
	wantBare := *bare
	createPayment(t, s, bare)
	wantEqual(t, "bare payment", mustPayment(t, s, m.ID, bare.ID), &wantBare)

	// An empty map stays an empty map (the API shows "metadata": {} rather than null).
	empty := pendingPayment(m.ID, 5, t0)
	createPayment(t, s, empty)
	if got := mustPayment(t, s, m.ID, empty.ID); got.Metadata == nil || len(got.Metadata) != 0 {
		t.Fatalf("empty metadata came back as %#v", got.Metadata)
	}
}

func testPaymentTimesNormalised(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	cst := time.FixedZone("CST", 8*3600)
	created := time.Date(2026, 11, 25, 16, 30, 15, 123456789, cst)
	paid := created.Add(1500 * time.Nanosecond) // .123458289
	p := pendingPayment(m.ID, 100, created)
	p.Status, p.PaidAt = payment.StatusSucceeded, &paid
	createPayment(t, s, p)

	got := mustPayment(t, s, m.ID, p.ID)
	wantTime := time.Date(2026, 11, 25, 8, 30, 15, 123456000, time.UTC)
	if !identical(got.CreatedAt, wantTime) || !identical(*got.PaidAt, wantTime.Add(2*time.Microsecond)) {
		t.Fatalf("times came back as %v and %v, want UTC truncated to microseconds: %v and %v",
			got.CreatedAt, *got.PaidAt, wantTime, wantTime.Add(2*time.Microsecond))
	}
	// CreatePayment leaves p as stored, so the API's answer equals every later read.
	wantEqual(t, "p after CreatePayment", p, got)

	// A monotonic clock reading (time.Now) is not part of the stored value either.
	now := time.Now()
	q := pendingPayment(m.ID, 100, now)
	createPayment(t, s, q)
	wantEqual(t, "payment created at time.Now()", mustPayment(t, s, m.ID, q.ID), q)
}

func identical(a, b time.Time) bool { return a == b }

func testPaymentIsolation(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))

	got, err := s.Payment(ctx, m.ID, "pay_missing")
	wantNotFound(t, "missing payment", got, err)
	got, err = s.Payment(ctx, "", "pay_missing")
	wantNotFound(t, "missing payment, any merchant", got, err)
	got, err = s.Payment(ctx, other.ID, p.ID)
	wantNotFound(t, "another merchant's payment", got, err)

	got, err = s.PaymentByOutTradeNo(ctx, payment.WeChatPay, p.ProviderRef.OutTradeNo)
	wantNotFound(t, "out_trade_no under the other wallet", got, err)
	got, err = s.PaymentByOutTradeNo(ctx, payment.Alipay, "")
	wantNotFound(t, "empty out_trade_no", got, err)

	list, err := s.ListPayments(ctx, other.ID, gateway.PaymentFilter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("other merchant's list: %v, %v; want empty", list, err)
	}
	list, err = s.ListPayments(ctx, other.ID, gateway.PaymentFilter{StartingAfter: p.ID})
	wantNotFound(t, "cursor of another merchant's payment", list, err)

	called := false
	got, err = s.UpdatePayment(ctx, "pay_missing", func(*payment.Payment) (gateway.Effects, error) {
		called = true
		return gateway.Effects{}, nil
	})
	wantNotFound(t, "update of a missing payment", got, err)
	if called {
		t.Fatal("UpdatePayment called fn for a missing payment")
	}
}

func testPaymentConflicts(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))

	dupID := pendingPayment(m.ID, 100, t0)
	dupID.ID = p.ID
	wantKind(t, "duplicate id", s.CreatePayment(ctx, dupID, nil), payment.Conflict)

	dupNo := pendingPayment(m.ID, 100, t0)
	dupNo.ProviderRef.OutTradeNo = p.ProviderRef.OutTradeNo
	wantKind(t, "duplicate (provider, out_trade_no)", s.CreatePayment(ctx, dupNo, nil), payment.Conflict)

	// The same out_trade_no at the other wallet is another order.
	dupNo.Provider = payment.WeChatPay
	createPayment(t, s, dupNo)

	// Payments waiting for the buyer to choose a wallet have no out_trade_no yet: any number may.
	for range 2 {
		q := pendingPayment(m.ID, 100, t0)
		q.Provider, q.Channel, q.ProviderRef, q.NextAction = "", "", payment.ProviderRef{}, nil
		createPayment(t, s, q)
	}
	// References are the merchant's and need not be unique.
	again := pendingPayment(m.ID, 100, t0)
	again.Reference = p.Reference
	createPayment(t, s, again)

	noMerchant := pendingPayment("mch_missing", 100, t0)
	if err := s.CreatePayment(ctx, noMerchant, nil); err == nil {
		t.Fatal("created a payment for a merchant that does not exist")
	}
	got, err := s.Payment(ctx, "", noMerchant.ID)
	wantNotFound(t, "payment of a missing merchant", got, err)
}

// listAll pages through ListPayments with limit and returns every id in order.
func listAll(t *testing.T, s gateway.Store, merchantID string, f gateway.PaymentFilter) []*payment.Payment {
	t.Helper()
	var all []*payment.Payment
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		page, err := s.ListPayments(ctx, merchantID, f)
		if err != nil {
			t.Fatalf("list after %q: %v", f.StartingAfter, err)
		}
		if len(page) > f.Limit {
			t.Fatalf("page of %d items, limit %d", len(page), f.Limit)
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			return all
		}
		f.StartingAfter = page[len(page)-1].ID
	}
}

func testListPaymentsPagination(t *testing.T, s gateway.Store) {
	m, other := newMerchant(t, s), newMerchant(t, s)
	var want []*payment.Payment
	for i := range 25 {
		// Groups of three share created_at: the id breaks the tie, so pages stay stable.
		p := pendingPayment(m.ID, int64(100+i), t0.Add(time.Duration(i/3)*time.Second))
		createPayment(t, s, p)
		want = append(want, p)
		createPayment(t, s, pendingPayment(other.ID, 1, t0.Add(time.Duration(i/3)*time.Second)))
	}
	sort.Slice(want, func(i, j int) bool {
		a, b := want[i], want[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})

	for _, limit := range []int{1, 3, 7, 25, 100} {
		got := listAll(t, s, m.ID, gateway.PaymentFilter{Limit: limit})
		wantEqual(t, fmt.Sprintf("all pages with limit %d", limit), got, want)
	}

	first, err := s.ListPayments(ctx, m.ID, gateway.PaymentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 10 {
		t.Fatalf("limit 0 gave %d payments, want the default 10", len(first))
	}
	last, err := s.ListPayments(ctx, m.ID, gateway.PaymentFilter{Limit: 10, StartingAfter: want[len(want)-1].ID})
	if err != nil || len(last) != 0 {
		t.Fatalf("after the oldest: %v, %v; want an empty page", last, err)
	}
	_, err = s.ListPayments(ctx, m.ID, gateway.PaymentFilter{Limit: 10, StartingAfter: "pay_missing"})
	wantKind(t, "unknown cursor", err, payment.NotFound)
}

func testListPaymentsFilters(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	var byRef, succeeded, both []string
	for i := range 12 {
		p := pendingPayment(m.ID, 100, t0.Add(time.Duration(i)*time.Second))
		if i%2 == 0 {
			p.Reference = "order-7"
		}
		if i%3 == 0 {
			p.Status = payment.StatusSucceeded
		}
		createPayment(t, s, p)
		// Collected newest first, as the store lists them.
		if i%2 == 0 {
			byRef = append([]string{p.ID}, byRef...)
		}
		if i%3 == 0 {
			succeeded = append([]string{p.ID}, succeeded...)
		}
		if i%6 == 0 {
			both = append([]string{p.ID}, both...)
		}
	}
	for _, tc := range []struct {
		name string
		f    gateway.PaymentFilter
		want []string
	}{
		{"reference", gateway.PaymentFilter{Reference: "order-7", Limit: 2}, byRef},
		{"status", gateway.PaymentFilter{Status: payment.StatusSucceeded, Limit: 3}, succeeded},
		{"both", gateway.PaymentFilter{Reference: "order-7", Status: payment.StatusSucceeded, Limit: 1}, both},
		{"no match", gateway.PaymentFilter{Reference: "order-8", Limit: 5}, nil},
	} {
		var ids []string
		for _, p := range listAll(t, s, m.ID, tc.f) {
			ids = append(ids, p.ID)
		}
		wantEqual(t, "filter "+tc.name, ids, tc.want)
	}
}

func testUpdatePaymentForwardOnly(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	now := t0.Add(time.Minute)
	evtID := payment.NewID("evt")

	updated, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		if p.Status != payment.StatusPending {
			return gateway.Effects{}, fmt.Errorf("callback saw %s", p.Status)
		}
		changed, err := p.Succeed(payment.ProviderRef{TradeNo: "2026112522001"}, now, now)
		if err != nil || !changed {
			return gateway.Effects{}, fmt.Errorf("succeed: %v %v", changed, err)
		}
		e, err := payment.PaymentEvent(evtID, p, now)
		return gateway.Effects{Events: []payment.Event{e}}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Status != payment.StatusSucceeded || updated.ProviderRef.TradeNo != "2026112522001" ||
		updated.ProviderRef.OutTradeNo != p.ProviderRef.OutTradeNo || updated.NextAction != nil || !updated.PaidAt.Equal(now) {
		t.Fatalf("after succeed: %+v", updated)
	}
	wantEqual(t, "UpdatePayment's answer and a fresh read", mustPayment(t, s, m.ID, p.ID), updated)
	events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Limit: 10})
	if err != nil || len(events) != 1 || events[0].ID != evtID || events[0].Type != payment.EventPaymentSucceeded {
		t.Fatalf("events after succeed: %+v, %v", events, err)
	}

	// Wallets repeat themselves: a second success changes nothing and is no error.
	again, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		changed, err := p.Succeed(payment.ProviderRef{}, now, now.Add(time.Hour))
		if changed {
			return gateway.Effects{}, errors.New("second succeed reported a change")
		}
		return gateway.Effects{}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "after repeated succeed", again, updated)

	// Backwards through the domain: the domain's Conflict comes back unchanged.
	_, err = s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		_, err := p.Cancel("requested", now)
		return gateway.Effects{}, err
	})
	wantKind(t, "cancel after success", err, payment.Conflict)

	// Backwards by hand: the store itself refuses to move a final status.
	_, err = s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Status = payment.StatusPending
		return gateway.Effects{}, nil
	})
	wantKind(t, "succeeded back to pending", err, payment.Conflict)
	_, err = s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Status = payment.StatusCanceled
		return gateway.Effects{}, nil
	})
	wantKind(t, "succeeded to canceled by hand", err, payment.Conflict)
	wantEqual(t, "payment after refused moves", mustPayment(t, s, m.ID, p.ID), updated)

	// The callback may not move a payment to another id or merchant.
	_, err = s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.MerchantID = "mch_other"
		return gateway.Effects{}, nil
	})
	if err == nil {
		t.Fatal("UpdatePayment let the callback change the merchant")
	}
	wantEqual(t, "payment after refused merchant change", mustPayment(t, s, m.ID, p.ID), updated)
}

func testUpdatePaymentRollback(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	want := mustPayment(t, s, m.ID, p.ID)
	cause := fmt.Errorf("gateway: wrapped: %w", errCallback)

	got, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Description = "changed"
		p.Metadata = map[string]string{"x": "y"}
		changed, err := p.Cancel("requested", t0)
		if err != nil || !changed {
			return gateway.Effects{}, fmt.Errorf("cancel: %v %v", changed, err)
		}
		e, err := payment.PaymentEvent(payment.NewID("evt"), p, t0)
		if err != nil {
			return gateway.Effects{}, err
		}
		return gateway.Effects{Events: []payment.Event{e}}, cause
	})
	if err != cause || !errors.Is(err, errCallback) {
		t.Fatalf("got error %v, want the callback's own error unchanged", err)
	}
	if got != nil {
		t.Fatalf("got payment %+v with the error", got)
	}
	wantEqual(t, "payment after rolled back update", mustPayment(t, s, m.ID, p.ID), want)
	events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Limit: 10})
	if err != nil || len(events) != 0 {
		t.Fatalf("events after rollback: %+v, %v; want none", events, err)
	}

	// A *payment.Error from the callback keeps its identity too.
	perr := payment.Errorf(payment.Conflict, "payment_state", "no")
	_, err = s.UpdatePayment(ctx, p.ID, func(*payment.Payment) (gateway.Effects, error) { return gateway.Effects{}, perr })
	var e *payment.Error
	if !errors.As(err, &e) || e != perr {
		t.Fatalf("got %v, want the callback's *payment.Error", err)
	}
}

func testEventsAtomic(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	evt := payment.Event{ID: payment.NewID("evt"), Object: "event", MerchantID: m.ID, Type: payment.EventPaymentFailed,
		Data: []byte(`{"id":"x"}`), CreatedAt: t0}
	if _, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Description = "first"
		return gateway.Effects{Events: []payment.Event{evt}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The second change's event cannot be written (its id is taken): the change goes with it.
	_, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.Description = "second"
		fresh := evt
		fresh.ID = payment.NewID("evt")
		return gateway.Effects{Events: []payment.Event{fresh, evt}}, nil
	})
	if err == nil {
		t.Fatal("an update whose event could not be written succeeded")
	}
	if got := mustPayment(t, s, m.ID, p.ID); got.Description != "first" {
		t.Fatalf("description %q after the failed event write, want %q", got.Description, "first")
	}
	events, err := s.ListEvents(ctx, m.ID, gateway.EventFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "events", events, []*payment.Event{&evt})

	// Events go to the payment's merchant only.
	other := newMerchant(t, s)
	_, err = s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		leak := evt
		leak.ID, leak.MerchantID = payment.NewID("evt"), other.ID
		return gateway.Effects{Events: []payment.Event{leak}}, nil
	})
	if err == nil {
		t.Fatal("UpdatePayment wrote an event for another merchant")
	}
}

func testOverRefundConstraint(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := succeededPayment(t, s, m.ID, 100)
	// A callback that forgets CheckRefund meets the schema's last line of defence.
	_, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
		p.AmountRefunded = p.Amount + 1
		return gateway.Effects{}, nil
	})
	wantKind(t, "over-refund", err, payment.Conflict)
	err = s.CreateRefund(ctx, newRefund(p, 150), nil, func(p *payment.Payment) error {
		p.AmountRefunded += 150
		return nil
	})
	wantKind(t, "over-refund through CreateRefund", err, payment.Conflict)
	if got := mustPayment(t, s, m.ID, p.ID); got.AmountRefunded != 0 {
		t.Fatalf("amount_refunded %d after refused over-refunds", got.AmountRefunded)
	}
	if refunds, err := s.ListRefunds(ctx, p.ID); err != nil || len(refunds) != 0 {
		t.Fatalf("refunds after refused over-refund: %+v, %v", refunds, err)
	}
}

func testConcurrentRefunds(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := succeededPayment(t, s, m.ID, 100)
	const workers = 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.CreateRefund(ctx, newRefund(p, 10), nil, reserve(10))
		}()
	}
	wg.Wait()
	close(errs)
	ok, tooLarge := 0, 0
	for err := range errs {
		var e *payment.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &e) && e.Code == "amount_too_large":
			tooLarge++
		default:
			t.Errorf("unexpected refund error: %v", err)
		}
	}
	if ok != 10 || tooLarge != 10 {
		t.Fatalf("%d refunds succeeded and %d were too large, want 10 and 10", ok, tooLarge)
	}
	if got := mustPayment(t, s, m.ID, p.ID); got.AmountRefunded != 100 {
		t.Fatalf("amount_refunded = %d, want 100", got.AmountRefunded)
	}
	refunds, err := s.ListRefunds(ctx, p.ID)
	if err != nil || len(refunds) != 10 {
		t.Fatalf("%d refunds stored (%v), want 10", len(refunds), err)
	}
}

func testConcurrentUpdates(t *testing.T, s gateway.Store) {
	m := newMerchant(t, s)
	p := createPayment(t, s, pendingPayment(m.ID, 100, t0))
	const workers = 20
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdatePayment(ctx, p.ID, func(p *payment.Payment) (gateway.Effects, error) {
				n, _ := strconv.Atoi(p.Metadata["n"])
				if p.Metadata == nil {
					p.Metadata = map[string]string{}
				}
				p.Metadata["n"] = strconv.Itoa(n + 1)
				return gateway.Effects{}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := mustPayment(t, s, m.ID, p.ID).Metadata["n"]; got != strconv.Itoa(workers) {
		t.Fatalf("counter = %s after %d increments: an update did not see the previous one's write", got, workers)
	}
}
