package wechatpay

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/hutong-pay/hutong/internal/sandbox/notify"
	"github.com/hutong-pay/hutong/internal/sandbox/sandboxdb"
)

func (e *testEnv) settings(t *testing.T) merchantSettings {
	t.Helper()
	var m merchantSettings
	a := e.sandboxPost(http.MethodGet, "/sandbox/wechatpay/merchant", "")
	if err := json.Unmarshal(a.body, &m); err != nil || a.status != http.StatusOK {
		t.Fatalf("settings: %d %s (%v)", a.status, a.body, err)
	}
	return m
}

func (e *testEnv) refund(t *testing.T, outTradeNo, outRefundNo string, amount, total int64) *refunddomestic.Refund {
	t.Helper()
	rs := refunddomestic.RefundsApiService{Client: e.pubKeyClient()}
	r, _, err := rs.Create(context.Background(), refunddomestic.CreateRequest{
		OutTradeNo: core.String(outTradeNo), OutRefundNo: core.String(outRefundNo),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(amount), Total: core.Int64(total), Currency: core.String("CNY")},
	})
	if err != nil {
		t.Fatalf("refund %s: %v", outRefundNo, err)
	}
	return r
}

func (e *testEnv) queryRefund(t *testing.T, outRefundNo string) *refunddomestic.Refund {
	t.Helper()
	rs := refunddomestic.RefundsApiService{Client: e.pubKeyClient()}
	r, _, err := rs.QueryByOutRefundNo(context.Background(), refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String(outRefundNo)})
	if err != nil {
		t.Fatalf("query refund %s: %v", outRefundNo, err)
	}
	return r
}

func TestRefundOutcomeKnob(t *testing.T) {
	e := newEnv(t, "")
	sink := e.newSink()
	nativePrepay(t, e, e.pubKeyClient(), "outcome_01", sink.srv.URL+"/n", 1000)
	if a := e.pay("outcome_01", ""); a.status != http.StatusOK {
		t.Fatal(a.status)
	}
	if got := e.settings(t).RefundOutcome; got != "success" {
		t.Errorf("default refund_outcome = %q", got)
	}
	for _, bad := range []string{`{"refund_outcome":"ABNORMAL"}`, `{"refund_outcome":"lost"}`, `{"refund_outcome":1}`} {
		if a := e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", bad); a.status != http.StatusBadRequest {
			t.Errorf("PUT %s: %d", bad, a.status)
		}
	}
	// A rejected setting changes nothing else either.
	if a := e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"notification_signing":"certificate","refund_outcome":"x"}`); a.status != http.StatusBadRequest || e.settings(t).NotificationSigning != signingPub {
		t.Errorf("half-applied settings: %d %+v", a.status, e.settings(t))
	}

	// ABNORMAL: the next refund ends ABNORMAL, without success_time, and is notified as REFUND.ABNORMAL.
	a := e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"refund_outcome":"abnormal"}`)
	if a.status != http.StatusOK || e.settings(t).RefundOutcome != "abnormal" {
		t.Fatalf("PUT abnormal: %d %s", a.status, a.body)
	}
	r := e.refund(t, "outcome_01", "RA1", 100, 1000)
	if *r.Status != refunddomestic.STATUS_PROCESSING {
		t.Errorf("new refund status %s, want PROCESSING", *r.Status)
	}
	if got := e.settings(t).RefundOutcome; got != "success" {
		t.Errorf("the setting applies to one refund; now %q", got)
	}
	n := sink.wait("REFUND.ABNORMAL", nil)
	if n.plaintext["refund_status"] != "ABNORMAL" || n.plaintext["out_refund_no"] != "RA1" || n.plaintext["success_time"] != nil ||
		n.req.Summary != "退款异常" {
		t.Errorf("abnormal notification %+v %v", n.req, n.plaintext)
	}
	if q := e.queryRefund(t, "RA1"); *q.Status != refunddomestic.STATUS_ABNORMAL || q.SuccessTime != nil {
		t.Errorf("abnormal refund query: %s %v", *q.Status, q.SuccessTime)
	}

	// CLOSED: the money stays with the merchant, so it can be refunded again.
	e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"refund_outcome":"closed"}`)
	e.refund(t, "outcome_01", "RC1", 900, 1000)
	n = sink.wait("REFUND.CLOSED", nil)
	if n.plaintext["refund_status"] != "CLOSED" || n.plaintext["out_refund_no"] != "RC1" || n.plaintext["success_time"] != nil ||
		n.req.Summary != "退款关闭" {
		t.Errorf("closed notification %+v %v", n.req, n.plaintext)
	}
	if q := e.queryRefund(t, "RC1"); *q.Status != refunddomestic.STATUS_CLOSED {
		t.Errorf("closed refund query: %s", *q.Status)
	}
	// The ABNORMAL refund's 100 still counts; the CLOSED one's 900 is refundable again. Back to success.
	e.refund(t, "outcome_01", "RS1", 900, 1000)
	n = sink.wait("REFUND.SUCCESS", nil)
	if n.plaintext["out_refund_no"] != "RS1" || n.plaintext["success_time"] == nil || n.req.Summary != "退款成功" {
		t.Errorf("success notification %+v %v", n.req, n.plaintext)
	}
	if q := e.queryRefund(t, "RS1"); *q.Status != refunddomestic.STATUS_SUCCESS || q.SuccessTime == nil {
		t.Errorf("success refund query: %v", q)
	}
	rs := refunddomestic.RefundsApiService{Client: e.pubKeyClient()}
	_, _, err := rs.Create(context.Background(), refunddomestic.CreateRequest{
		OutTradeNo: core.String("outcome_01"), OutRefundNo: core.String("RS2"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(1), Total: core.Int64(1000), Currency: core.String("CNY")},
	})
	if ae := apiErr(t, err); ae.Code != "INVALID_REQUEST" {
		t.Errorf("over-refund after closed+abnormal+success: %v", ae)
	}
}

func TestClosedRefundReopensOrder(t *testing.T) {
	e := newEnv(t, "")
	sink := e.newSink()
	nativePrepay(t, e, e.pubKeyClient(), "outcome_02", sink.srv.URL+"/n", 500)
	e.pay("outcome_02", "")
	e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"refund_outcome":"closed"}`)
	e.refund(t, "outcome_02", "RC2", 500, 500)
	if st, _ := e.queryOrder("outcome_02"); st != "REFUND" {
		t.Errorf("while the refund is processing: %s", st)
	}
	sink.wait("REFUND.CLOSED", nil)
	if st, _ := e.queryOrder("outcome_02"); st != "SUCCESS" {
		t.Errorf("after its only refund closed: %s, want SUCCESS", st)
	}
	// The outcome is stored with the refund: a restart before settling keeps it.
	e.sb.refundDelay.Store(int64(400 * time.Millisecond))
	e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"refund_outcome":"abnormal"}`)
	e.refund(t, "outcome_02", "RA2", 500, 500)
	e.restart()
	if q := e.queryRefund(t, "RA2"); *q.Status != refunddomestic.STATUS_PROCESSING {
		t.Fatalf("refund settled before the restart finished: %s", *q.Status)
	}
	if n := sink.wait("REFUND.ABNORMAL", nil); n.plaintext["out_refund_no"] != "RA2" {
		t.Errorf("after restart: %v", n.plaintext)
	}
}

func TestTimeScaleScalesRefundDelay(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		want  time.Duration
	}{{0, time.Second}, {-3, time.Second}, {1, time.Second}, {0.01, 10 * time.Millisecond}, {60, time.Minute}} {
		db, err := sandboxdb.Open(filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		sender, err := notify.New(notify.Options{DB: db, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := New(context.Background(), Config{DB: db, Sender: sender, TimeScale: tc.scale, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(sb.refundDelay.Load()); got != tc.want {
			t.Errorf("TimeScale %v: refund delay %v, want %v", tc.scale, got, tc.want)
		}
		sender.Close()
		db.Close()
	}
}

// TestOlderDatabaseGetsNewColumns opens a database whose tables an earlier version created.
func TestOlderDatabaseGetsNewColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sandboxdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE wx_merchant (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,
			notification_signing TEXT NOT NULL DEFAULT 'public_key', created_at INTEGER NOT NULL)`,
		`CREATE TABLE wx_refunds (mchid TEXT NOT NULL, out_refund_no TEXT NOT NULL, refund_id TEXT NOT NULL UNIQUE,
			out_trade_no TEXT NOT NULL, transaction_id TEXT NOT NULL, amount INTEGER NOT NULL, total INTEGER NOT NULL,
			currency TEXT NOT NULL, reason TEXT NOT NULL, notify_url TEXT NOT NULL, funds_account TEXT NOT NULL,
			request_hash TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
			success_at INTEGER, event_id TEXT, notified INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (mchid, out_refund_no))`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	e := newEnv(t, path)
	sink := e.newSink()
	nativePrepay(t, e, e.pubKeyClient(), "old_db_001", sink.srv.URL+"/n", 10)
	e.pay("old_db_001", "")
	e.sandboxPost(http.MethodPut, "/sandbox/wechatpay/merchant", `{"refund_outcome":"abnormal"}`)
	e.refund(t, "old_db_001", "ROLD1", 10, 10)
	sink.wait("REFUND.ABNORMAL", nil)
	e.restart() // adding the columns again is a no-op
}
