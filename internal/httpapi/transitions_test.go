package httpapi

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hutong-pay/hutong/internal/fakewallet"
	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
	"github.com/hutong-pay/hutong/internal/store/sqlite"
)

func TestCountTransitions(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{Migrate: true, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	counted := CountTransitions(st, reg)
	wallet := fakewallet.New(fakewallet.Options{})
	svc := gateway.New(gateway.Config{Store: counted, Providers: []gateway.Provider{wallet}, PublicURL: "https://x.test"})
	m := &payment.Merchant{ID: payment.NewID("mch"), Name: "m", CreatedAt: time.Now()}
	if err := st.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	create := func() *payment.Payment {
		p, err := svc.CreatePayment(ctx, m.ID, gateway.CreatePaymentParams{Amount: 100, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	paid := create()
	wp, _ := wallet.Pay(paid.ProviderRef.OutTradeNo)
	if _, err := svc.ApplyWalletPayment(ctx, payment.WeChatPay, wp); err != nil {
		t.Fatal(err)
	}
	// Repeated news changes nothing and counts nothing.
	if _, err := svc.ApplyWalletPayment(ctx, payment.WeChatPay, wp); err != nil {
		t.Fatal(err)
	}
	canceled := create()
	if _, err := svc.CancelPayment(ctx, m.ID, canceled.ID, "duplicate"); err != nil {
		t.Fatal(err)
	}
	// A refused cancel (succeeded payment) counts nothing.
	if _, err := svc.CancelPayment(ctx, m.ID, paid.ID, "duplicate"); err == nil {
		t.Fatal("canceled a succeeded payment")
	}
	wallet.SetRefundsPending(true)
	r, err := svc.CreateRefund(ctx, m.ID, gateway.CreateRefundParams{PaymentID: paid.ID, Amount: 40})
	if err != nil {
		t.Fatal(err)
	}
	wr, err := wallet.SettleRefund(r.ProviderRef.OutRefundNo, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ApplyWalletRefund(ctx, payment.WeChatPay, wr); err != nil {
		t.Fatal(err)
	}
	wallet.SetError(fakewallet.OpCreatePayment, errors.New("down"))
	if _, err := svc.CreatePayment(ctx, m.ID, gateway.CreatePaymentParams{Amount: 100, Description: "tea", Provider: payment.WeChatPay, Channel: payment.ChannelQR}); err == nil {
		t.Fatal("wallet failure not reported")
	}

	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "hutong_status_transitions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["object"]+" "+labels["from"]+"→"+labels["to"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"payment pending→succeeded": 1,
		"payment pending→canceled":  1,
		"payment pending→failed":    1,
		"refund pending→succeeded":  1,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
}
