package wechatpay

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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

// BenchmarkScanPage is a payer opening a Native code_url: the order found by its token and the page rendered.
func BenchmarkScanPage(b *testing.B) {
	e := newEnv(b, "")
	c := e.pubKeyClient()
	for i := range 200 { // the lookup must not scan every order
		nativePrepay(b, e, c, fmt.Sprintf("bench_bg_%04d", i), "http://127.0.0.1:1/n", 1)
	}
	path := "/sandbox/wechatpay/scan?code_url=" + url.QueryEscape(nativePrepay(b, e, c, "bench_scan_1", "http://127.0.0.1:1/n", 1))
	b.ResetTimer()
	for range b.N {
		if p := e.get(path); p.status != http.StatusOK {
			b.Fatal(p.status)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}

// BenchmarkJSAPIVerify is the bridge checking getBrandWCPayRequest parameters: decoding, the paySign
// RSA verification and the order lookup, over loopback HTTP.
func BenchmarkJSAPIVerify(b *testing.B) {
	e := newEnv(b, "")
	params := jsapiParams(b, e, "bench_js_01", "oBench", "http://127.0.0.1:1/n")
	b.ResetTimer()
	for range b.N {
		if a := e.bridgeCall("/sandbox/wechatpay/jsapi/verify", params); a.status != http.StatusOK {
			b.Fatal(a.status)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
