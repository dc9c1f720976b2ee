package alipay

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	sdk "github.com/smartwalle/alipay/v3"
)

// BenchmarkSDKTradePreCreate measures unmodified SDK TradePreCreate calls against the sandbox over
// loopback HTTP: client signing, request verification, a SQLite insert, response signing and
// client verification.
func BenchmarkSDKTradePreCreate(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{
			Subject: "bench", OutTradeNo: "bench-" + strconv.Itoa(i), TotalAmount: "0.01"}})
		if err != nil || !rsp.IsSuccess() {
			b.Fatalf("precreate: %v %+v", err, rsp)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func BenchmarkSDKTradePreCreateParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := n.Add(1)
			rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{
				Subject: "bench", OutTradeNo: "pbench-" + strconv.FormatInt(id, 10), TotalAmount: "0.01"}})
			if err != nil || !rsp.IsSuccess() {
				b.Errorf("precreate: %v %+v", err, rsp)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRSA2SignResponse is the sandbox's signing cost per answer (one RSA-2048 private-key operation).
func BenchmarkRSA2SignResponse(b *testing.B) {
	e := newEnv(b)
	node, err := marshalNode(precreateResponse{result: success, OutTradeNo: "bench-1", QRCode: e.srv.URL + "/sandbox/alipay/qr/bax0123456789abcdefghij"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := signRSA2(e.sb.app.alipayKey, node); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSA2VerifyRequest is the cost of checking one request signature.
func BenchmarkRSA2VerifyRequest(b *testing.B) {
	e := newEnv(b)
	p := e.signedParams("alipay.trade.precreate", `{"out_trade_no":"b1","total_amount":"0.01","subject":"bench"}`, nil)
	b.ResetTimer()
	for range b.N {
		if err := verifyRSA2(e.sb.app.appPublic, requestSignCandidates(p)[0], p.Get("sign")); err != nil {
			b.Fatal(err)
		}
	}
}
