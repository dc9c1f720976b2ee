package alipay

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"
)

func TestPrecreateExistsOnlyOnceScanned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rsp := e.precreate("qr-1", "0.01", "")
	if rsp.OutTradeNo != "qr-1" || !strings.HasPrefix(rsp.QRCode, e.srv.URL+"/sandbox/alipay/qr/") {
		t.Fatalf("got out_trade_no %q qr_code %q", rsp.OutTradeNo, rsp.QRCode)
	}

	q := e.query("qr-1")
	if q.Code != "40004" || q.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("query before scan: got %s %s, want 40004 ACQ.TRADE_NOT_EXIST", q.Code, q.SubCode)
	}
	c, err := e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "qr-1"})
	if err != nil || c.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("close before scan: got %v %+v, want ACQ.TRADE_NOT_EXIST", err, c)
	}

	if status, body := e.control("/sandbox/alipay/trades/qr-1/scan", map[string]string{"buyer_id": "2088000000000042"}); status != 200 {
		t.Fatalf("scan: got %d %v", status, body)
	}
	q = e.query("qr-1")
	if !q.IsSuccess() || q.TradeStatus != sdk.TradeStatusWaitBuyerPay || q.BuyerUserId != "2088000000000042" || q.BuyerLogonId == "" {
		t.Fatalf("query after scan: got %+v", q)
	}
	if q.TotalAmount != "0.01" || q.BuyerPayAmount != "0.00" || q.TradeNo == "" {
		t.Fatalf("query amounts: got total %q paid %q trade_no %q", q.TotalAmount, q.BuyerPayAmount, q.TradeNo)
	}

	e.pay("qr-1")
	q = e.query("qr-1")
	if q.TradeStatus != sdk.TradeStatusSuccess || q.BuyerPayAmount != "0.01" || q.ReceiptAmount != "0.01" || q.SendPayDate == "" {
		t.Fatalf("query after pay: got %+v", q)
	}
	if len(q.FundBillList) != 1 || q.FundBillList[0].Amount != "0.01" || q.FundBillList[0].RealAmount != 0.01 {
		t.Fatalf("fund_bill_list: got %+v", q.FundBillList)
	}
	if _, err := time.ParseInLocation(alipayTime, q.SendPayDate, shanghai); err != nil {
		t.Fatalf("send_pay_date %q: %v", q.SendPayDate, err)
	}

	if status, body := e.control("/sandbox/alipay/trades/qr-1/pay", nil); status != http.StatusConflict {
		t.Fatalf("paying twice: got %d %v, want 409", status, body)
	}
	c, err = e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "qr-1"})
	if err != nil || c.SubCode != "ACQ.REASON_TRADE_STATUS_INVALID" {
		t.Fatalf("close paid: got %v %+v, want ACQ.REASON_TRADE_STATUS_INVALID", err, c)
	}
	again, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{Subject: "x", OutTradeNo: "qr-1", TotalAmount: "0.01"}})
	if err != nil || again.SubCode != "ACQ.TRADE_HAS_SUCCESS" {
		t.Fatalf("precreate a paid trade again: got %v %+v, want ACQ.TRADE_HAS_SUCCESS", err, again)
	}
}

func TestPayDirectlyScansAndPaysAQRTrade(t *testing.T) {
	e := newEnv(t)
	e.precreate("qr-direct", "12.30", "")
	status, body := e.control("/sandbox/alipay/trades/qr-direct/pay", map[string]string{"app_id": e.sb.Credentials().AppID})
	if status != 200 || body["trade_status"] != "TRADE_SUCCESS" || body["total_amount"] != "12.30" {
		t.Fatalf("pay: got %d %v", status, body)
	}
	if q := e.query("qr-direct"); q.TradeStatus != sdk.TradeStatusSuccess || q.BuyerUserId != e.sb.app.defaultBuyer {
		t.Fatalf("query: got %+v, want paid by the default buyer %s", q, e.sb.app.defaultBuyer)
	}
}

func TestPayerActionStatuses(t *testing.T) {
	e := newEnv(t)
	for _, action := range []string{"pay", "decline", "scan"} {
		if status, _ := e.control("/sandbox/alipay/trades/nope/"+action, nil); status != http.StatusNotFound {
			t.Errorf("%s unknown trade: got %d, want 404", action, status)
		}
	}
	e.precreate("qr-app", "1.00", "")
	if status, _ := e.control("/sandbox/alipay/trades/qr-app/pay", map[string]string{"app_id": "2021000000000000"}); status != http.StatusNotFound {
		t.Errorf("pay with another app_id: got %d, want 404", status)
	}
	if status, _ := e.control("/sandbox/alipay/trades/qr-app/pay", map[string]string{"buyer_id": "not-digits"}); status != http.StatusBadRequest {
		t.Errorf("pay with a malformed buyer_id: got %d, want 400", status)
	}
	if status, body := e.control("/sandbox/alipay/trades/qr-app/decline", nil); status != 200 || body["trade_status"] != "TRADE_CLOSED" {
		t.Fatalf("decline: got %d %v", status, body)
	}
	for _, action := range []string{"pay", "decline", "scan"} {
		if status, _ := e.control("/sandbox/alipay/trades/qr-app/"+action, nil); status != http.StatusConflict {
			t.Errorf("%s after decline: got %d, want 409", action, status)
		}
	}
	if q := e.query("qr-app"); q.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("query after decline: got %+v, want TRADE_CLOSED", q)
	}
}

func TestPrecreateRepeatAndInconsistent(t *testing.T) {
	e := newEnv(t)
	first := e.precreate("qr-rep", "5.00", "")
	second := e.precreate("qr-rep", "5.00", "")
	if first.QRCode != second.QRCode {
		t.Fatalf("repeat precreate: got qr %q then %q, want the same", first.QRCode, second.QRCode)
	}
	rsp, err := e.client.TradePreCreate(context.Background(), sdk.TradePreCreate{Trade: sdk.Trade{Subject: "x", OutTradeNo: "qr-rep", TotalAmount: "6.00"}})
	if err != nil || rsp.SubCode != "ACQ.CONTEXT_INCONSISTENT" {
		t.Fatalf("precreate with another amount: got %v %+v", err, rsp)
	}
}

func TestTradeCreateWithBuyer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rsp, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "mini", OutTradeNo: "mp-1", TotalAmount: "8.88"}, BuyerId: "2088000000000001"})
	if err != nil || !rsp.IsSuccess() || rsp.TradeNo == "" || rsp.OutTradeNo != "mp-1" {
		t.Fatalf("create: got %v %+v", err, rsp)
	}
	q, err := e.client.TradeQuery(ctx, sdk.TradeQuery{TradeNo: rsp.TradeNo})
	if err != nil || q.TradeStatus != sdk.TradeStatusWaitBuyerPay || q.OutTradeNo != "mp-1" || q.BuyerUserId != "2088000000000001" {
		t.Fatalf("query by trade_no: got %v %+v", err, q)
	}
	if status, _ := e.control("/sandbox/alipay/trades/mp-1/pay", map[string]string{"buyer_id": "2088000000000002"}); status != http.StatusConflict {
		t.Fatalf("pay by another buyer: got %d, want 409", status)
	}
	e.pay("mp-1")
	if q := e.query("mp-1"); q.TradeStatus != sdk.TradeStatusSuccess || q.BuyerUserId != "2088000000000001" {
		t.Fatalf("after pay: got %+v", q)
	}

	none, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "mini", OutTradeNo: "mp-2", TotalAmount: "1.00"}})
	if err != nil || none.SubCode != "ACQ.INVALID_PARAMETER" {
		t.Fatalf("create without buyer: got %v %+v", err, none)
	}
	unknown, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "mini", OutTradeNo: "mp-3", TotalAmount: "1.00"}, BuyerOpenId: "0unknown"})
	if err != nil || unknown.SubCode != "ACQ.BUYER_NOT_EXIST" {
		t.Fatalf("create with an unknown open_id: got %v %+v", err, unknown)
	}

	_, code := e.control("/sandbox/alipay/auth-codes", nil)
	openID := code["open_id"].(string)
	byOpen, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "mini", OutTradeNo: "mp-4", TotalAmount: "1.00"}, BuyerOpenId: openID})
	if err != nil || !byOpen.IsSuccess() {
		t.Fatalf("create with open_id: got %v %+v", err, byOpen)
	}
	q = e.query("mp-4")
	if q.BuyerUserId != code["user_id"] {
		t.Fatalf("open_id buyer: got user %q, want %v", q.BuyerUserId, code["user_id"])
	}
}

func TestCloseUnpaidTrade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "c-1", TotalAmount: "2.00"}, BuyerId: "2088000000000001"})
	if err != nil || !created.IsSuccess() {
		t.Fatalf("create: %v %+v", err, created)
	}
	c, err := e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "c-1"})
	if err != nil || !c.IsSuccess() || c.TradeNo != created.TradeNo || c.OutTradeNo != "c-1" {
		t.Fatalf("close: got %v %+v", err, c)
	}
	if q := e.query("c-1"); q.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("query: got %s, want TRADE_CLOSED", q.TradeStatus)
	}
	if status, _ := e.control("/sandbox/alipay/trades/c-1/pay", nil); status != http.StatusConflict {
		t.Fatalf("pay closed: got %d, want 409", status)
	}
	c, err = e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "c-1"})
	if err != nil || c.SubCode != "ACQ.REASON_TRADE_STATUS_INVALID" {
		t.Fatalf("close twice: got %v %+v", err, c)
	}
	again, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "c-1", TotalAmount: "2.00"}, BuyerId: "2088000000000001"})
	if err != nil || again.SubCode != "ACQ.TRADE_HAS_CLOSE" {
		t.Fatalf("create a closed trade again: got %v %+v", err, again)
	}
	if q := e.query("missing"); q.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("query unknown: got %+v", q)
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	e := newEnv(t, envOptions{clock: clk})
	ctx := context.Background()
	rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "exp-1", TotalAmount: "1.00", TimeoutExpress: "5m"}})
	if err != nil || !rsp.IsSuccess() {
		t.Fatalf("precreate: %v %+v", err, rsp)
	}
	if status, _ := e.control("/sandbox/alipay/trades/exp-1/scan", nil); status != 200 {
		t.Fatal("scan failed")
	}
	clk.Add(4 * time.Minute)
	if q := e.query("exp-1"); q.TradeStatus != sdk.TradeStatusWaitBuyerPay {
		t.Fatalf("before expiry: got %s", q.TradeStatus)
	}
	clk.Add(2 * time.Minute)
	if q := e.query("exp-1"); q.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("after expiry: got %s, want TRADE_CLOSED", q.TradeStatus)
	}
	if status, _ := e.control("/sandbox/alipay/trades/exp-1/pay", nil); status != http.StatusConflict {
		t.Fatalf("pay expired: got %d, want 409", status)
	}

	// An unscanned QR code that expired cannot be paid and never existed for the merchant.
	e.precreate("exp-2", "1.00", "")
	clk.Add(2*time.Hour + time.Second)
	if status, _ := e.control("/sandbox/alipay/trades/exp-2/pay", nil); status != http.StatusConflict {
		t.Fatalf("pay an expired QR code: got %d, want 409", status)
	}
	if q := e.query("exp-2"); q.SubCode != "ACQ.TRADE_NOT_EXIST" {
		t.Fatalf("query an expired unscanned QR trade: got %+v", q)
	}
	// time_expire is absolute, in Beijing time.
	at := clk.Now().Add(10 * time.Minute).In(shanghai).Format(alipayTime)
	cr, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "exp-3", TotalAmount: "1.00", TimeExpire: at}, BuyerId: "2088000000000001"})
	if err != nil || !cr.IsSuccess() {
		t.Fatalf("create with time_expire: %v %+v", err, cr)
	}
	clk.Add(11 * time.Minute)
	if status, _ := e.control("/sandbox/alipay/trades/exp-3/pay", nil); status != http.StatusConflict {
		t.Fatalf("pay after time_expire: got %d, want 409", status)
	}

	for _, bad := range []string{"0m", "16d", "1.5h", "90", "m", "1w", "-5m", "01m"} {
		rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "bad-exp", TotalAmount: "1.00", TimeoutExpress: bad}})
		if err != nil || rsp.SubCode != "ACQ.INVALID_PARAMETER" {
			t.Errorf("timeout_express %q: got %v %+v, want ACQ.INVALID_PARAMETER", bad, err, rsp)
		}
	}
}

func TestTotalAmountValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, bad := range []string{"0", "0.00", "0.001", "1e2", "-1", "100000000.01", "abc", " 1", "1.", ".5", "01.00", "+1"} {
		rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "amt", TotalAmount: bad}})
		if err != nil || rsp.SubCode != "ACQ.INVALID_PARAMETER" {
			t.Errorf("total_amount %q: got %v %+v, want ACQ.INVALID_PARAMETER", bad, err, rsp)
		}
	}
	rsp, err := e.client.TradePreCreate(ctx, sdk.TradePreCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "amt-max", TotalAmount: "100000000"}})
	if err != nil || !rsp.IsSuccess() {
		t.Fatalf("maximum amount: got %v %+v", err, rsp)
	}
	// Some clients send the amount as a JSON number.
	body := e.rawCall(nil, e.signedParams("alipay.trade.precreate", `{"out_trade_no":"amt-num","total_amount":12.5,"subject":"n"}`, nil))
	if node := e.responseNode(body, "alipay_trade_precreate_response"); node["code"] != "10000" {
		t.Fatalf("numeric total_amount: got %v", node)
	}
	if status, body := e.control("/sandbox/alipay/trades/amt-num/pay", nil); status != 200 || body["total_amount"] != "12.50" {
		t.Fatalf("pay numeric: got %d %v", status, body)
	}
	// Missing required fields.
	for _, biz := range []string{`{"total_amount":"1.00","subject":"s"}`, `{"out_trade_no":"m1","subject":"s"}`, `{"out_trade_no":"m1","total_amount":"1.00"}`} {
		node := e.responseNode(e.rawCall(nil, e.signedParams("alipay.trade.precreate", biz, nil)), "alipay_trade_precreate_response")
		if node["code"] != "40001" || node["sub_code"] != "isv.missing-parameter" {
			t.Errorf("biz %s: got %v, want 40001 isv.missing-parameter", biz, node)
		}
	}
	long := strings.Repeat("x", 65)
	node := e.responseNode(e.rawCall(nil, e.signedParams("alipay.trade.precreate", `{"out_trade_no":"`+long+`","total_amount":"1","subject":"s"}`, nil)), "alipay_trade_precreate_response")
	if node["sub_code"] != "ACQ.INVALID_PARAMETER" {
		t.Errorf("65-char out_trade_no: got %v", node)
	}
}
