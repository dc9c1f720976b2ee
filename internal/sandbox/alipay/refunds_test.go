package alipay

import (
	"context"
	"testing"

	sdk "github.com/smartwalle/alipay/v3"
)

func TestRefundsPartialIdempotentAndBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	refund := func(reqNo, amount string) *sdk.TradeRefundRsp {
		t.Helper()
		rsp, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "r-1", RefundAmount: amount, OutRequestNo: reqNo, RefundReason: "测试退款"})
		if err != nil {
			t.Fatalf("refund %s %s: %v", reqNo, amount, err)
		}
		return rsp
	}

	// Not paid yet: nothing to refund.
	if _, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "r-1", TotalAmount: "10.00"}, BuyerId: "2088000000000009"}); err != nil {
		t.Fatal(err)
	}
	if rsp := refund("rq-0", "1.00"); rsp.SubCode != "ACQ.TRADE_STATUS_ERROR" {
		t.Fatalf("refund unpaid: got %+v", rsp)
	}
	e.pay("r-1")

	rsp := refund("rq-1", "3.00")
	if !rsp.IsSuccess() || rsp.FundChange != "Y" || rsp.RefundFee != "3.00" || rsp.SendBackFee != "3.00" || rsp.BuyerUserId != "2088000000000009" {
		t.Fatalf("first refund: got %+v", rsp)
	}
	if rsp := refund("rq-1", "3.00"); !rsp.IsSuccess() || rsp.FundChange != "N" || rsp.RefundFee != "3.00" {
		t.Fatalf("repeated refund: got %+v, want success with fund_change N", rsp)
	}
	if rsp := refund("rq-1", "4.00"); rsp.SubCode != "ACQ.DISCORDANT_REPEAT_REQUEST" {
		t.Fatalf("repeat with another amount: got %+v", rsp)
	}
	if rsp := refund("rq-2", "7.01"); rsp.Code != "40004" || rsp.SubCode != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Fatalf("refund beyond what was paid: got %+v", rsp)
	}
	for _, bad := range []string{"0", "-1.00", "abc", "1.001"} {
		if rsp := refund("rq-bad", bad); rsp.SubCode != "ACQ.REASON_TRADE_REFUND_FEE_ERR" {
			t.Errorf("refund_amount %q: got %+v", bad, rsp)
		}
	}
	if q := e.query("r-1"); q.TradeStatus != sdk.TradeStatusSuccess {
		t.Fatalf("after partial refund: got %s, want TRADE_SUCCESS", q.TradeStatus)
	}
	if rsp := refund("rq-2", "7.00"); !rsp.IsSuccess() || rsp.FundChange != "Y" || rsp.RefundFee != "10.00" || rsp.SendBackFee != "7.00" {
		t.Fatalf("refund of the rest: got %+v", rsp)
	}
	if q := e.query("r-1"); q.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("after full refund: got %s, want TRADE_CLOSED", q.TradeStatus)
	}
	if rsp := refund("rq-3", "0.01"); rsp.SubCode != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Fatalf("refund a fully refunded trade: got %+v", rsp)
	}
	if rsp := refund("rq-2", "7.00"); !rsp.IsSuccess() || rsp.FundChange != "N" || rsp.RefundFee != "10.00" {
		t.Fatalf("repeat after full refund: got %+v", rsp)
	}

	rq, err := e.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: "r-1", OutRequestNo: "rq-1"})
	if err != nil || !rq.IsSuccess() || rq.RefundStatus != "REFUND_SUCCESS" || rq.RefundAmount != "3.00" || rq.TotalAmount != "10.00" || rq.OutRequestNo != "rq-1" {
		t.Fatalf("refund query: got %v %+v", err, rq)
	}
	rq, err = e.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: "r-1", OutRequestNo: "rq-never"})
	if err != nil || !rq.IsSuccess() || rq.RefundStatus != "" || rq.RefundAmount != "" {
		t.Fatalf("refund query of an unknown request: got %v %+v, want success without refund_status", err, rq)
	}
	rq, err = e.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: "nope", OutRequestNo: "rq-1"})
	if err != nil || rq.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("refund query of an unknown trade: got %v %+v", err, rq)
	}
	r, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "nope", RefundAmount: "1.00", OutRequestNo: "x"})
	if err != nil || r.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("refund unknown trade: got %v %+v", err, r)
	}
}

func TestRefundWithoutRequestNoUsesOutTradeNo(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.precreate("r-2", "5.00", "")
	e.pay("r-2")
	rsp, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "r-2", RefundAmount: "5.00"})
	if err != nil || !rsp.IsSuccess() || rsp.RefundFee != "5.00" {
		t.Fatalf("refund: got %v %+v", err, rsp)
	}
	rq, err := e.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{OutTradeNo: "r-2", OutRequestNo: "r-2"})
	if err != nil || rq.RefundStatus != "REFUND_SUCCESS" || rq.RefundAmount != "5.00" {
		t.Fatalf("refund query by out_trade_no: got %v %+v", err, rq)
	}
}
