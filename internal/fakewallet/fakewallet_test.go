package fakewallet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func req(n string, ch payment.Channel) gateway.PaymentRequest {
	return gateway.PaymentRequest{OutTradeNo: n, Amount: 100, Currency: "CNY", Description: "tea", Channel: ch,
		Payer: payment.Payer{OpenID: "o-1"}}
}

func TestNextActionPerChannel(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name payment.Provider
		ch   payment.Channel
		typ  string
	}{
		{payment.WeChatPay, payment.ChannelQR, payment.ActionQRCode},
		{payment.WeChatPay, payment.ChannelH5, payment.ActionRedirect},
		{payment.WeChatPay, payment.ChannelMiniProgram, payment.ActionWeChatJSAPI},
		{payment.WeChatPay, payment.ChannelApp, payment.ActionApp},
		{payment.Alipay, payment.ChannelQR, payment.ActionQRCode},
		{payment.Alipay, payment.ChannelWeb, payment.ActionRedirect},
		{payment.Alipay, payment.ChannelMiniProgram, payment.ActionAlipayTrade},
		{payment.Alipay, payment.ChannelApp, payment.ActionApp},
	} {
		w := New(Options{Name: tc.name})
		if w.Name() != tc.name {
			t.Fatalf("name %s, want %s", w.Name(), tc.name)
		}
		r := req("HT0123456789abcdefghij", tc.ch)
		res, err := w.CreatePayment(ctx, r)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.name, tc.ch, err)
		}
		if res.NextAction == nil || res.NextAction.Type != tc.typ {
			t.Fatalf("%s %s: next action %+v, want type %s", tc.name, tc.ch, res.NextAction, tc.typ)
		}
		again, err := w.CreatePayment(ctx, r)
		if err != nil || again.NextAction.Type != res.NextAction.Type || again.NextAction.QRCode != res.NextAction.QRCode ||
			again.NextAction.URL != res.NextAction.URL || again.TradeNo != res.TradeNo {
			t.Fatalf("%s %s: repeated order answered %+v, %v; want the same answer", tc.name, tc.ch, again, err)
		}
		if got := w.NextAction(r); got.Type != tc.typ {
			t.Fatalf("NextAction type %s, want %s", got.Type, tc.typ)
		}
	}
	if _, err := New(Options{}).CreatePayment(ctx, req("HT1", payment.ChannelWeb)); payment.KindOf(err) != payment.ProviderError {
		t.Fatalf("wechat web: err %v, want a provider refusal", err)
	}
}

func TestPayCloseRefund(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	w := New(Options{Now: func() time.Time { return now }})
	if _, err := w.CreatePayment(ctx, req("A", payment.ChannelQR)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R0", Amount: 10}); payment.KindOf(err) != payment.ProviderError {
		t.Fatalf("refund of unpaid order: %v, want refusal", err)
	}
	wp, err := w.Pay("A")
	if err != nil {
		t.Fatal(err)
	}
	if wp.State != gateway.WalletPaid || wp.Amount != 100 || wp.TransactionID == "" || !wp.PaidAt.Equal(now.Truncate(time.Second)) {
		t.Fatalf("pay answered %+v", wp)
	}
	if _, err := w.Pay("A"); err == nil {
		t.Fatal("paying twice succeeded")
	}
	if _, err := w.Pay("nope"); err == nil {
		t.Fatal("paying an unknown order succeeded")
	}
	var pe *payment.Error
	if err := w.ClosePayment(ctx, "A"); !errors.As(err, &pe) || pe.Code != "already_paid" {
		t.Fatalf("close of paid order: %v, want already_paid", err)
	}
	q, err := w.QueryPayment(ctx, "A")
	if err != nil || q.State != gateway.WalletPaid {
		t.Fatalf("query: %+v %v", q, err)
	}
	r1, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R1", Amount: 60})
	if err != nil || r1.State != gateway.RefundSuccess || r1.Amount != 60 {
		t.Fatalf("refund: %+v %v", r1, err)
	}
	if _, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R2", Amount: 41}); payment.KindOf(err) != payment.ProviderError {
		t.Fatalf("over-refund: %v, want refusal", err)
	}
	if again, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R1", Amount: 60}); err != nil || again.RefundID != r1.RefundID {
		t.Fatalf("retried refund: %+v %v, want the first answer", again, err)
	}
	if qr, err := w.QueryRefund(ctx, "A", "R1"); err != nil || qr.State != gateway.RefundSuccess {
		t.Fatalf("query refund: %+v %v", qr, err)
	}
	if qr, err := w.QueryRefund(ctx, "A", "R9"); err != nil || qr.State != gateway.RefundNotFound {
		t.Fatalf("query unknown refund: %+v %v", qr, err)
	}

	if _, err := w.CreatePayment(ctx, req("B", payment.ChannelQR)); err != nil {
		t.Fatal(err)
	}
	if err := w.ClosePayment(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Pay("B"); err == nil {
		t.Fatal("paying a closed order succeeded")
	}
	if q, _ := w.QueryPayment(ctx, "B"); q.State != gateway.WalletClosed {
		t.Fatalf("closed order queried as %s", q.State)
	}
	if q, _ := w.QueryPayment(ctx, "C"); q.State != gateway.WalletNotFound {
		t.Fatalf("unknown order queried as %s", q.State)
	}
}

func TestPendingRefunds(t *testing.T) {
	ctx := context.Background()
	w := New(Options{Name: payment.Alipay})
	w.SetRefundsPending(true)
	_, _ = w.CreatePayment(ctx, req("A", payment.ChannelQR))
	if wp, _ := w.Pay("A"); wp.TradeNo == "" || wp.TransactionID != "" {
		t.Fatalf("alipay payment ids: %+v", wp)
	}
	r, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R1", Amount: 100})
	if err != nil || r.State != gateway.RefundProcessing {
		t.Fatalf("refund: %+v %v, want processing", r, err)
	}
	closed, err := w.SettleRefund("R1", false)
	if err != nil || closed.State != gateway.RefundClosed {
		t.Fatalf("settle: %+v %v", closed, err)
	}
	// The closed refund released its amount.
	if r, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A", OutRefundNo: "R2", Amount: 100}); err != nil || r.State != gateway.RefundProcessing {
		t.Fatalf("second refund: %+v %v", r, err)
	}
	if _, err := w.SettleRefund("R1", true); err == nil {
		t.Fatal("settled a closed refund")
	}
}

func TestFailureInjectionAndCounters(t *testing.T) {
	ctx := context.Background()
	w := New(Options{})
	refused := Refused("SYSTEMERROR", "try later")
	w.SetError(OpCreatePayment, refused)
	if _, err := w.CreatePayment(ctx, req("A", payment.ChannelQR)); !errors.Is(err, refused) {
		t.Fatalf("err %v, want the injected one", err)
	}
	if _, ok := w.Order("A"); ok {
		t.Fatal("a failed call placed the order")
	}
	w.SetError(OpCreatePayment, nil)
	if _, err := w.CreatePayment(ctx, req("A", payment.ChannelQR)); err != nil {
		t.Fatal(err)
	}
	for _, op := range []Op{OpQueryPayment, OpClosePayment, OpRefund, OpQueryRefund} {
		w.SetError(op, ErrUnavailable)
	}
	if _, err := w.QueryPayment(ctx, "A"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("query: %v", err)
	}
	if err := w.ClosePayment(ctx, "A"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("close: %v", err)
	}
	if _, err := w.Refund(ctx, gateway.RefundRequest{OutTradeNo: "A"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("refund: %v", err)
	}
	if _, err := w.QueryRefund(ctx, "A", "R"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("query refund: %v", err)
	}
	if got := w.Calls(OpCreatePayment); got != 2 {
		t.Fatalf("create calls %d, want 2", got)
	}
	for _, op := range []Op{OpQueryPayment, OpClosePayment, OpRefund, OpQueryRefund} {
		if got := w.Calls(op); got != 1 {
			t.Fatalf("%s calls %d, want 1", op, got)
		}
	}
}

func TestBlockingHookAndConcurrency(t *testing.T) {
	w := New(Options{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	w.SetHook(OpCreatePayment, func(ctx context.Context) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := w.CreatePayment(context.Background(), req("blocked", payment.ChannelQR))
		done <- err
	}()
	<-entered
	// Other operations proceed while one call is held.
	if _, err := w.QueryPayment(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.SetHook(OpCreatePayment, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.CreatePayment(ctx, req("canceled", payment.ChannelQR)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			n := "P" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			if _, err := w.CreatePayment(context.Background(), req(n, payment.ChannelQR)); err != nil {
				t.Error(err)
			}
			_, _ = w.Pay(n)
			_, _ = w.QueryPayment(context.Background(), n)
		})
	}
	wg.Wait()
	if got := w.Calls(OpQueryPayment); got != 51 {
		t.Fatalf("query calls %d, want 51", got)
	}
}
