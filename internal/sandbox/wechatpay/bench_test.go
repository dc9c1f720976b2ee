package wechatpay

import (
	"context"
	"fmt"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
)

// BenchmarkNativePrepaySDK measures whole SDK Native prepay calls against the sandbox over loopback
// HTTP: request signing, verification, the database insert, response signing and SDK validation.
func BenchmarkNativePrepaySDK(b *testing.B) {
	e := newEnv(b, "")
	svc := native.NativeApiService{Client: e.pubKeyClient()}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		_, _, err := svc.Prepay(ctx, native.PrepayRequest{
			Appid: core.String(e.creds.AppID), Mchid: core.String(e.creds.MchID), Description: core.String("bench"),
			OutTradeNo: core.String(fmt.Sprintf("bench_%010d", i)), NotifyUrl: core.String("http://127.0.0.1:1/n"),
			Amount: &native.Amount{Total: core.Int64(1)},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkSignResponse is the RSA-2048 signing the sandbox does for every answer.
func BenchmarkSignResponse(b *testing.B) {
	e := newEnv(b, "")
	body := []byte(`{"code_url":"weixin://wxpay/bizpayurl?pr=abcdefghi"}`)
	b.ResetTimer()
	for range b.N {
		h := make(map[string][]string)
		if err := e.sb.signHeaders(h, e.sb.keys.publicKey, body); err != nil {
			b.Fatal(err)
		}
	}
}
