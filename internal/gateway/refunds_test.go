package gateway_test

import (
	"testing"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// A refund recorded by a node that stopped before asking the wallet (here: the wallet never
// answered) is asked for again when it is followed up, with the same out_refund_no, and the money
// moves exactly once.
func TestRefundTheWalletNeverHeardOfIsAskedAgain(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	p, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 500, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.wallet.Pay(p.ProviderRef.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SyncPayment(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	e.wallet.SetError(fakewallet.OpRefund, fakewallet.ErrUnavailable)
	r, err := e.svc.CreateRefund(ctx, e.merch, gateway.CreateRefundParams{PaymentID: p.ID, Amount: 200})
	if err != nil || r.Status != payment.RefundPending {
		t.Fatalf("refund without an answer: %+v %v, want pending", r, err)
	}
	if wr, _ := e.wallet.QueryRefund(ctx, p.ProviderRef.OutTradeNo, r.ProviderRef.OutRefundNo); wr.State != gateway.RefundNotFound {
		t.Fatalf("the wallet knows the refund already: %+v", wr)
	}
	e.wallet.SetError(fakewallet.OpRefund, nil)
	for range 2 { // following it up twice must not refund twice
		if r, err = e.svc.SyncRefund(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if r.Status != payment.RefundSucceeded {
		t.Fatalf("after follow-up: %s, want succeeded", r.Status)
	}
	if n := e.wallet.Calls(fakewallet.OpRefund); n != 2 {
		t.Fatalf("refund asked %d times, want 2 (the unanswered one and the follow-up)", n)
	}
	got, err := e.svc.Payment(ctx, e.merch, p.ID)
	if err != nil || got.AmountRefunded != 200 {
		t.Fatalf("payment after refund: %+v %v, want 200 refunded", got, err)
	}
}

// A merchant retrying a refund request (same Idempotency-Key) whose first run never answered
// gets that same refund carried on, never a second one: the money moves once.
func TestRetriedRefundRequestResumesTheFirst(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	p, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 500, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR, IdempotencyKey: "test:pay-1"})
	if err != nil {
		t.Fatal(err)
	}
	// The same payment request again resumes it instead of placing a second order.
	again, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 500, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR, IdempotencyKey: "test:pay-1"})
	if err != nil || again.ID != p.ID || e.wallet.Calls(fakewallet.OpCreatePayment) != 1 {
		t.Fatalf("retried payment request: %v %v after %d orders, want payment %s and one order", again.ID, err, e.wallet.Calls(fakewallet.OpCreatePayment), p.ID)
	}
	if _, err := e.wallet.Pay(p.ProviderRef.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SyncPayment(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	e.wallet.SetError(fakewallet.OpRefund, fakewallet.ErrUnavailable)
	params := gateway.CreateRefundParams{PaymentID: p.ID, IdempotencyKey: "test:refund-1"} // everything refundable
	first, err := e.svc.CreateRefund(ctx, e.merch, params)
	if err != nil || first.Status != payment.RefundPending {
		t.Fatalf("first run: %+v %v", first, err)
	}
	e.wallet.SetError(fakewallet.OpRefund, nil)
	second, err := e.svc.CreateRefund(ctx, e.merch, params)
	if err != nil || second.ID != first.ID || second.Status != payment.RefundSucceeded {
		t.Fatalf("retry: %+v %v, want refund %s succeeded", second, err, first.ID)
	}
	got, _ := e.svc.Payment(ctx, e.merch, p.ID)
	if got.AmountRefunded != 500 {
		t.Fatalf("amount_refunded %d, want 500 (once)", got.AmountRefunded)
	}
	// Another key is another refund: nothing is left to refund.
	if _, err := e.svc.CreateRefund(ctx, e.merch, gateway.CreateRefundParams{PaymentID: p.ID, Amount: 1, IdempotencyKey: "test:refund-2"}); payment.KindOf(err) != payment.Invalid {
		t.Fatalf("a new refund beyond the amount: %v, want invalid", err)
	}
}

// News of a refund arriving before its payment's own news (lost, or still being retried) makes
// the gateway ask the wallet about the payment: a refunded payment was paid.
func TestRefundNewsBeforePaymentNewsAsksTheWallet(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	p, err := e.svc.CreatePayment(ctx, e.merch, gateway.CreatePaymentParams{Amount: 300, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.wallet.Pay(p.ProviderRef.OutTradeNo); err != nil { // its notification is lost
		t.Fatal(err)
	}
	_, err = e.svc.ApplyWalletRefund(ctx, payment.WeChatPay, gateway.WalletRefund{
		OutTradeNo: p.ProviderRef.OutTradeNo, OutRefundNo: "made-at-the-merchant-portal", State: gateway.RefundSuccess, Amount: 100,
	})
	if !payment.IsNotFound(err) {
		t.Fatalf("refund we did not make: %v, want not found (recorded for operators)", err)
	}
	got, err := e.svc.Payment(ctx, e.merch, p.ID)
	if err != nil || got.Status != payment.StatusSucceeded {
		t.Fatalf("payment after its refund's news: %s %v, want succeeded", got.Status, err)
	}
}
