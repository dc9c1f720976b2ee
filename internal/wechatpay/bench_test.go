package wechatpay

import (
	"context"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// BenchmarkCreatePaymentNative is the gateway-facing CreatePayment (Native) through the connector
// against the sandbox over loopback: request signing, HTTP, the sandbox's own work (SQLite write,
// response signing) and response verification. Both run on this machine's cores.
func BenchmarkCreatePaymentNative(b *testing.B) {
	s := startSandbox(b)
	c := s.connector(s.config(ModePublicKey, ""))
	req := func() gateway.PaymentRequest {
		return gateway.PaymentRequest{OutTradeNo: payment.NewOutTradeNo(), Amount: 100, Currency: "CNY", Description: "bench",
			Channel: payment.ChannelQR, NotifyURL: "http://127.0.0.1:9/notify/wechatpay/payments", ExpiresAt: time.Now().Add(time.Hour)}
	}
	run := func(b *testing.B, parallel bool) {
		start := time.Now()
		b.ResetTimer()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.CreatePayment(context.Background(), req()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for b.Loop() {
				if _, err := c.CreatePayment(context.Background(), req()); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// BenchmarkRSA is the cryptography in each call: the merchant's SHA256-RSA2048 signature of the
// request (JSAPI and App sign a second time for paySign) and the verification of WeChat's answer.
func BenchmarkRSA(b *testing.B) {
	m, w := testKeys(b)
	msg := "POST\n/v3/pay/transactions/native\n1700000000\n" + payment.RandomString(32) + "\n" +
		`{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"bench","out_trade_no":"HT0123456789","notify_url":"https://pay.example.com/notify/wechatpay/payments","amount":{"total":100,"currency":"CNY"}}` + "\n"
	signer := &signers.SHA256WithRSASigner{MchID: testMchID, CertificateSerialNo: "S", PrivateKey: m}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := signer.Sign(context.Background(), msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	sig := sign(w, msg)
	verifier := verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, rsa.PublicKey(w.PublicKey))
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := verifier.Verify(context.Background(), testPubKeyID, msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
