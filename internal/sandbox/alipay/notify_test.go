package alipay

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/sandbox/faults"
)

func TestPaymentNotificationVerifiesAndIsRetriedWithTheSameID(t *testing.T) {
	e := newEnv(t)
	ns := newNotifyServer(t, 2) // the merchant fails twice, then acknowledges
	e.precreate("n-1", "88.80", ns.srv.URL+"/notify")
	e.pay("n-1")

	var ids []string
	for range 3 {
		form := ns.next(t)
		n, err := e.client.DecodeNotification(form)
		if err != nil {
			t.Fatalf("DecodeNotification: %v (form %v)", err, form)
		}
		if n.NotifyType != "trade_status_sync" || n.TradeStatus != sdk.TradeStatusSuccess || n.OutTradeNo != "n-1" ||
			n.TotalAmount != "88.80" || n.ReceiptAmount != "88.80" || n.BuyerPayAmount != "88.80" || n.SignType != "RSA2" ||
			n.AppId != e.sb.Credentials().AppID || n.AuthAppId != n.AppId || n.TradeNo == "" || n.GmtPayment == "" ||
			n.BuyerId == "" || n.SellerId == "" || n.Subject == "" || n.FundBillList == "" || n.NotifyTime == "" {
			t.Fatalf("notification fields: got %+v", n)
		}
		for k, vs := range form {
			if len(vs) != 1 || vs[0] == "" {
				t.Errorf("field %s: got %q, want one non-empty value", k, vs)
			}
		}
		for _, absent := range []string{"refund_fee", "gmt_refund", "out_biz_no", "alipay_cert_sn"} {
			if form.Has(absent) {
				t.Errorf("payment notification has %s", absent)
			}
		}
		ids = append(ids, n.NotifyId)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("notify_id changed between retries: %v", ids)
	}
	waitDelivered(t, e, ids[0], 3)
	select {
	case extra := <-ns.received:
		t.Fatalf("delivery after the acknowledgement: %v", extra)
	case <-time.After(300 * time.Millisecond):
	}
}

func waitDelivered(t *testing.T, e *env, id string, wantAttempts int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, delivered, err := e.sender.Attempts(context.Background(), id)
		if err == nil && delivered {
			if n != wantAttempts {
				t.Fatalf("attempts: got %d, want %d", n, wantAttempts)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s not delivered: attempts %d err %v", id, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefundNotifications(t *testing.T) {
	e := newEnv(t)
	ns := newNotifyServer(t, 0)
	ctx := context.Background()
	cr, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{NotifyURL: ns.srv.URL, Subject: "s", OutTradeNo: "n-2", TotalAmount: "10.00"}, BuyerId: "2088000000000077"})
	if err != nil || !cr.IsSuccess() {
		t.Fatalf("create: %v %+v", err, cr)
	}
	e.pay("n-2")
	paid, err := e.client.DecodeNotification(ns.next(t))
	if err != nil || paid.TradeStatus != sdk.TradeStatusSuccess {
		t.Fatalf("payment notification: %v %+v", err, paid)
	}

	if r, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "n-2", RefundAmount: "4.00", OutRequestNo: "rf-1"}); err != nil || !r.IsSuccess() {
		t.Fatalf("refund: %v %+v", err, r)
	}
	n, err := e.client.DecodeNotification(ns.next(t))
	if err != nil {
		t.Fatalf("refund notification: %v", err)
	}
	if n.TradeStatus != sdk.TradeStatusSuccess || n.RefundFee != "4.00" || n.OutBizNo != "rf-1" || n.GmtRefund == "" || n.TradeNo != cr.TradeNo || n.NotifyId == paid.NotifyId {
		t.Fatalf("partial refund notification: got %+v", n)
	}
	if _, err := time.ParseInLocation(alipayTime, n.GmtRefund, shanghai); err != nil {
		t.Fatalf("gmt_refund %q: %v", n.GmtRefund, err)
	}

	// A repeated refund request moves no money and sends nothing.
	if r, _ := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "n-2", RefundAmount: "4.00", OutRequestNo: "rf-1"}); r.FundChange != "N" {
		t.Fatalf("repeat: got %+v", r)
	}
	if r, err := e.client.TradeRefund(ctx, sdk.TradeRefund{OutTradeNo: "n-2", RefundAmount: "6.00", OutRequestNo: "rf-2"}); err != nil || !r.IsSuccess() {
		t.Fatalf("second refund: %v %+v", err, r)
	}
	n, err = e.client.DecodeNotification(ns.next(t))
	if err != nil {
		t.Fatalf("full refund notification: %v", err)
	}
	if n.TradeStatus != sdk.TradeStatusClosed || n.RefundFee != "10.00" || n.OutBizNo != "rf-2" || n.GmtClose == "" {
		t.Fatalf("full refund notification: got %+v", n)
	}
	select {
	case extra := <-ns.received:
		t.Fatalf("unexpected notification: %v", extra)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestForgedProbeDoesNotVerify(t *testing.T) {
	e := newEnv(t)
	ns := newNotifyServer(t, 0)
	if err := e.faults.Set(faults.Settings{Notifications: faults.NotificationFaults{ForgedRate: 1}}); err != nil {
		t.Fatal(err)
	}
	e.precreate("n-3", "1.00", ns.srv.URL)
	e.pay("n-3")
	forged, real := ns.next(t), ns.next(t)
	if _, err := e.client.DecodeNotification(forged); err == nil {
		t.Fatal("the forged probe verified")
	}
	if _, err := e.client.DecodeNotification(real); err != nil {
		t.Fatalf("the real notification: %v", err)
	}
	if forged.Get("notify_id") != real.Get("notify_id") {
		t.Fatal("the probe should impersonate the real notification")
	}
}

func TestDeclineAndMerchantCloseNotifications(t *testing.T) {
	e := newEnv(t)
	ns := newNotifyServer(t, 0)
	ctx := context.Background()
	e.precreate("n-4", "1.00", ns.srv.URL)
	e.control("/sandbox/alipay/trades/n-4/decline", nil)
	n, err := e.client.DecodeNotification(ns.next(t))
	if err != nil || n.TradeStatus != sdk.TradeStatusClosed || n.GmtClose == "" || n.GmtPayment != "" {
		t.Fatalf("decline notification: %v %+v", err, n)
	}

	// Closing through the API is notified only when the close call names a notify_url.
	if _, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{NotifyURL: ns.srv.URL, Subject: "s", OutTradeNo: "n-5", TotalAmount: "1.00"}, BuyerId: "2088000000000001"}); err != nil {
		t.Fatal(err)
	}
	if c, err := e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "n-5"}); err != nil || !c.IsSuccess() {
		t.Fatalf("close: %v %+v", err, c)
	}
	select {
	case extra := <-ns.received:
		t.Fatalf("close without notify_url was notified: %v", extra)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := e.client.TradeCreate(ctx, sdk.TradeCreate{Trade: sdk.Trade{Subject: "s", OutTradeNo: "n-6", TotalAmount: "1.00"}, BuyerId: "2088000000000001"}); err != nil {
		t.Fatal(err)
	}
	if c, err := e.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: "n-6", NotifyURL: ns.srv.URL}); err != nil || !c.IsSuccess() {
		t.Fatalf("close: %v %+v", err, c)
	}
	if n, err := e.client.DecodeNotification(ns.next(t)); err != nil || n.OutTradeNo != "n-6" || n.TradeStatus != sdk.TradeStatusClosed {
		t.Fatalf("close notification: %v %+v", err, n)
	}
}

func TestAcknowledgement(t *testing.T) {
	w := &wallet{}
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{200, "success", true},
		{200, "success\n", false},
		{200, "SUCCESS", false},
		{200, "fail", false},
		{500, "success", false},
		{204, "", false},
	} {
		if got := w.Acknowledged(c.status, []byte(c.body)); got != c.want {
			t.Errorf("Acknowledged(%d, %q): got %v, want %v", c.status, c.body, got, c.want)
		}
	}
	want := []time.Duration{4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour}
	got := w.Schedule()
	if len(got) != len(want) {
		t.Fatalf("schedule: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule: got %v, want %v", got, want)
		}
	}
}

// A restart while a notification waits for its retry: the new sandbox and sender over the same
// database deliver it, with the same notify_id, and it verifies with the persisted keys.
func TestRestartMidRetry(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	path := dir + "/sandbox.db"
	ns := newNotifyServer(t, 1)
	first := newEnv(t, envOptions{dbPath: path, clock: clk, timeScale: 1}) // real schedule on a fake clock
	first.precreate("rs-1", "3.00", ns.srv.URL)
	first.pay("rs-1")
	failed := ns.next(t)
	id := failed.Get("notify_id")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, _, err := first.sender.Attempts(context.Background(), id); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first attempt not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.sender.Close()
	first.srv.Close()

	clk.Add(5 * time.Minute) // past the first retry delay (4m)
	second := newEnv(t, envOptions{dbPath: path, clock: clk, timeScale: 1})
	if second.sb.Credentials() != first.sb.Credentials() {
		t.Fatal("credentials changed across the restart")
	}
	form := ns.next(t)
	n, err := second.client.DecodeNotification(form)
	if err != nil || n.NotifyId != id || n.OutTradeNo != "rs-1" {
		t.Fatalf("retried notification: %v %+v, want notify_id %s", err, n, id)
	}
	waitDelivered(t, second, id, 2)
	if status, _ := second.control("/sandbox/alipay/trades/rs-1/pay", nil); status != http.StatusConflict {
		t.Fatalf("trade state lost across restart: pay got %d, want 409", status)
	}
}
