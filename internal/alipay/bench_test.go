package alipay

import (
	"context"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/payment"
)

// BenchmarkCreatePaymentQR measures alipay.trade.precreate through the connector against the
// sandbox over loopback: request signing, HTTP, the sandbox's verification, SQLite insert and
// response signing, and the connector's response verification.
func BenchmarkCreatePaymentQR(b *testing.B) {
	e := newSandboxEnv(b)
	ctx := context.Background()
	req := e.request("", payment.ChannelQR, 100)
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			r := req
			r.OutTradeNo = payment.NewOutTradeNo()
			if _, err := e.conn.CreatePayment(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("parallel", func(b *testing.B) {
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := req
				r.OutTradeNo = payment.NewOutTradeNo()
				if _, err := e.conn.CreatePayment(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	})
}

// BenchmarkSignRequest is the connector's local cost of one request: building and RSA2-signing
// the parameters (an app.pay order string is exactly that, with no I/O).
func BenchmarkSignRequest(b *testing.B) {
	c := newTestConnector(b, "")
	p := sdk.TradeAppPay{Trade: sdk.Trade{Subject: "测试商品", OutTradeNo: payment.NewOutTradeNo(), TotalAmount: "1.00",
		ProductCode: productApp, NotifyURL: "https://pay.example/notify/alipay/payments", TimeExpire: "2026-11-25 14:00:00"}}
	for b.Loop() {
		if _, err := c.client.TradeAppPay(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyNotification is the cost of checking one notification's signature.
func BenchmarkVerifyNotification(b *testing.B) {
	c := newTestConnector(b, "")
	form := signForm(b, keysOnce().alipay, paidForm(), false)
	for b.Loop() {
		if err := c.verify(form); err != nil {
			b.Fatal(err)
		}
	}
}
