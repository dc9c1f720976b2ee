package wechatpay

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

func TestNotificationPaymentApplied(t *testing.T) {
	var logs bytes.Buffer
	c := unitConnector(t, &logs, nil)
	app, rec := &fakeApplier{}, &recorder{}
	h := c.NotificationHandler(app, rec.fn())

	r := notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(t)
	sig := r.Header.Get("Wechatpay-Signature")
	w := serve(h, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204; body %s", w.Code, w.Body)
	}
	ps, rs := app.calls()
	if len(ps) != 1 || len(rs) != 0 {
		t.Fatalf("applied %d payments, %d refunds; want 1, 0", len(ps), len(rs))
	}
	want := gateway.WalletPayment{
		OutTradeNo: "HTorder0001", State: gateway.WalletPaid, TransactionID: "4200000001201711155555555555",
		Amount: 100, Currency: "CNY", Account: testMchID,
		PaidAt: time.Date(2018, 6, 8, 2, 34, 56, 0, time.UTC), Payer: payment.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
	}
	got := ps[0]
	if !got.PaidAt.Equal(want.PaidAt) {
		t.Fatalf("PaidAt %v, want %v", got.PaidAt, want.PaidAt)
	}
	got.PaidAt = want.PaidAt
	if got != want {
		t.Fatalf("applied %+v\nwant    %+v", got, want)
	}
	if len(rec.all()) != 0 {
		t.Fatalf("recorded %v for an applied notification", rec.all())
	}
	if strings.Contains(logs.String(), sig) || strings.Contains(logs.String(), "ciphertext") {
		t.Fatalf("logs contain the signature or the body:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "HTorder0001") {
		t.Fatalf("logs do not name the order:\n%s", logs.String())
	}
}

func TestNotificationRefunds(t *testing.T) {
	c := unitConnector(t, nil, nil)
	for _, tc := range []struct {
		event, status string
		want          gateway.WalletRefundState
	}{
		{"REFUND.SUCCESS", "SUCCESS", gateway.RefundSuccess},
		{"REFUND.CLOSED", "CLOSED", gateway.RefundClosed},
		{"REFUND.ABNORMAL", "ABNORMAL", gateway.RefundClosed},
	} {
		t.Run(tc.event, func(t *testing.T) {
			app := &fakeApplier{}
			w := serve(c.NotificationHandler(app, nil), notification{eventType: tc.event, plaintext: refundJSON(testMchID, tc.status, 300)}.request(t))
			if w.Code != http.StatusNoContent {
				t.Fatalf("status %d, want 204", w.Code)
			}
			_, rs := app.calls()
			if len(rs) != 1 {
				t.Fatalf("applied %d refunds, want 1", len(rs))
			}
			want := gateway.WalletRefund{OutTradeNo: "HTorder0001", OutRefundNo: "HTrefund0001", RefundID: "50000000382019052709732678859",
				State: tc.want, Amount: 300}
			if tc.want == gateway.RefundSuccess {
				want.SucceededAt = time.Date(2018, 6, 8, 2, 34, 56, 0, time.UTC)
			}
			got := rs[0]
			if !got.SucceededAt.Equal(want.SucceededAt) {
				t.Fatalf("SucceededAt %v, want %v", got.SucceededAt, want.SucceededAt)
			}
			got.SucceededAt = want.SucceededAt
			if got != want {
				t.Fatalf("applied %+v\nwant    %+v", got, want)
			}
		})
	}
}

func TestNotificationRejected(t *testing.T) {
	c := unitConnector(t, nil, nil)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	paid := transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)
	tamper := func(r *http.Request) *http.Request {
		// Same headers, one more byte of body: the signature no longer covers it.
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		body.WriteByte(' ')
		r2 := r.Clone(r.Context())
		r2.Body = httpBody(body.Bytes())
		return r2
	}
	for _, tc := range []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int
		reason string
	}{
		{"forged with another key", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, key: otherKey}.request(t)
		}, 401, ReasonBadSignature},
		{"tampered body", func(t *testing.T) *http.Request {
			return tamper(notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid}.request(t))
		}, 401, ReasonBadSignature},
		{"unknown serial", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, serial: "PUB_KEY_ID_OTHER"}.request(t)
		}, 401, ReasonBadSignature},
		{"signature type", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, sigType: "WECHATPAY2-SM2-WITH-SM3"}.request(t)
		}, 401, ReasonSignatureType},
		{"stale", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, ts: time.Now().Add(-301 * time.Second)}.request(t)
		}, 401, ReasonStale},
		{"from the future", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, ts: time.Now().Add(400 * time.Second)}.request(t)
		}, 401, ReasonStale},
		{"missing headers", func(t *testing.T) *http.Request {
			r := notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid}.request(t)
			r.Header.Del("Wechatpay-Nonce")
			return r
		}, 401, ReasonBadHeaders},
		{"timestamp with a sign", func(t *testing.T) *http.Request {
			r := notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid}.request(t)
			r.Header.Set("Wechatpay-Timestamp", "+"+r.Header.Get("Wechatpay-Timestamp"))
			return r
		}, 401, ReasonBadHeaders},
		{"wrong mchid", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON("1230000109", testAppID, "HTorder0001", "SUCCESS", 100)}.request(t)
		}, 200, ReasonWrongAccount},
		{"wrong appid", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, "wx0000000000000000", "HTorder0001", "SUCCESS", 100)}.request(t)
		}, 200, ReasonWrongAccount},
		{"refund for another mchid", func(t *testing.T) *http.Request {
			return notification{eventType: "REFUND.SUCCESS", plaintext: refundJSON("1230000109", "SUCCESS", 100)}.request(t)
		}, 200, ReasonWrongAccount},
		{"success event, not paid", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "NOTPAY", 100)}.request(t)
		}, 200, ReasonInvalidResource},
		{"paid in dollars", func(t *testing.T) *http.Request {
			pt := bytes.Replace(paid, []byte(`"currency":"CNY"`), []byte(`"currency":"USD"`), 1)
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: pt}.request(t)
		}, 200, ReasonInvalidResource},
		{"refund event contradicts status", func(t *testing.T) *http.Request {
			return notification{eventType: "REFUND.SUCCESS", plaintext: refundJSON(testMchID, "CLOSED", 100)}.request(t)
		}, 200, ReasonInvalidResource},
		{"plaintext not JSON", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: []byte("<xml/>")}.request(t)
		}, 200, ReasonInvalidResource},
		{"unsupported event", func(t *testing.T) *http.Request {
			return notification{eventType: "MCHTRANSFER.BILL.FINISHED", plaintext: []byte(`{}`)}.request(t)
		}, 200, ReasonUnsupportedEvent},
		{"short nonce (GCM would panic)", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, nonce: "short"}.request(t)
		}, 400, ReasonMalformed},
		{"no resource", func(t *testing.T) *http.Request {
			_, w := testKeys(t)
			return signedRequest(t, []byte(`{"id":"EV-1","event_type":"TRANSACTION.SUCCESS"}`), w, testPubKeyID, time.Now(), "")
		}, 400, ReasonMalformed},
		{"body not JSON", func(t *testing.T) *http.Request {
			_, w := testKeys(t)
			return signedRequest(t, []byte(`not json`), w, testPubKeyID, time.Now(), "")
		}, 400, ReasonMalformed},
		{"sealed with another APIv3 key", func(t *testing.T) *http.Request {
			return notification{eventType: "TRANSACTION.SUCCESS", plaintext: paid, apiV3Key: "ffffffffffffffffffffffffffffffff"}.request(t)
		}, 500, ReasonUndecryptable},
		{"too large", func(t *testing.T) *http.Request {
			_, w := testKeys(t)
			return signedRequest(t, bytes.Repeat([]byte("a"), maxNotification+1), w, testPubKeyID, time.Now(), "")
		}, 413, ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, rec := &fakeApplier{}, &recorder{}
			w := serve(c.NotificationHandler(app, rec.fn()), tc.req(t))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if ps, rs := app.calls(); len(ps)+len(rs) != 0 {
				t.Fatalf("applied %v %v", ps, rs)
			}
			recs := rec.all()
			if len(recs) != 1 || recs[0].reason != tc.reason {
				t.Fatalf("recorded %+v, want one %s", recs, tc.reason)
			}
			if tc.status >= 400 {
				var body struct{ Code, Message string }
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != "FAIL" || body.Message == "" {
					t.Fatalf("answer %q, want {\"code\":\"FAIL\",\"message\":…}", w.Body)
				}
			}
			for k, v := range recs[0].fields {
				if strings.Contains(v, "ciphertext") || k == "signature" {
					t.Fatalf("recorded field %s=%q leaks the body or signature", k, v)
				}
			}
		})
	}
}

func TestNotificationApplyErrors(t *testing.T) {
	c := unitConnector(t, nil, nil)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		reason string // "" means not recorded
	}{
		{"unknown payment", payment.ErrNotFound("payment", "HTorder0001"), 200, ReasonUnknownPayment},
		{"amount mismatch", fmt.Errorf("%w: payment pay_1 is 200 but wechatpay says 100 was paid", gateway.ErrMismatch), 200, ReasonMismatch},
		{"state conflict", payment.Errorf(payment.Conflict, "refund_state", "refund re_1 is succeeded"), 200, ReasonConflict},
		{"database down", errors.New("sqlite: database is locked"), 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, rec := &fakeApplier{err: tc.err}, &recorder{}
			w := serve(c.NotificationHandler(app, rec.fn()),
				notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(t))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if ps, _ := app.calls(); len(ps) != 1 {
				t.Fatalf("apply called %d times, want 1", len(ps))
			}
			recs := rec.all()
			switch {
			case tc.reason == "" && len(recs) != 0:
				t.Fatalf("recorded %+v, want nothing (WeChat Pay retries)", recs)
			case tc.reason != "" && (len(recs) != 1 || recs[0].reason != tc.reason || recs[0].kind != "payment" || recs[0].fields["out_trade_no"] != "HTorder0001"):
				t.Fatalf("recorded %+v, want one %s for payment HTorder0001", recs, tc.reason)
			}
			if tc.status == 500 && !strings.Contains(w.Body.String(), `"code":"FAIL"`) {
				t.Fatalf("500 answer %q lacks code FAIL", w.Body)
			}
		})
	}
}

func TestNotificationMethod(t *testing.T) {
	c := unitConnector(t, nil, nil)
	app := &fakeApplier{}
	r := notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(t)
	r.Method = http.MethodGet
	if w := serve(c.NotificationHandler(app, nil), r); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d, want 405", w.Code)
	}
	if ps, _ := app.calls(); len(ps) != 0 {
		t.Fatal("GET applied a payment")
	}
}

// The skew is measured on authentic notifications with the injected clock, which also decides staleness.
func TestNotificationSkewFromInjectedClock(t *testing.T) {
	var logs bytes.Buffer
	behind := func() time.Time { return time.Now().Add(-90 * time.Second) }
	c := unitConnector(t, &logs, behind)
	app := &fakeApplier{}
	w := serve(c.NotificationHandler(app, nil), notification{eventType: "TRANSACTION.SUCCESS", plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100)}.request(t))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204 (90 s is inside the window)", w.Code)
	}
	skew, ok := c.ClockSkew()
	if !ok || skew < 88*time.Second || skew > 92*time.Second {
		t.Fatalf("skew %v (seen %v), want about +90s", skew, ok)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "clock skew") {
		t.Fatalf("no skew warning logged:\n%s", logs.String())
	}

	// A forged notification must not move the gauge.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	_ = serve(c.NotificationHandler(app, nil), notification{eventType: "TRANSACTION.SUCCESS", key: other,
		plaintext: transactionJSON(testMchID, testAppID, "HTorder0001", "SUCCESS", 100), ts: time.Now().Add(-time.Hour)}.request(t))
	if s2, _ := c.ClockSkew(); s2 != skew {
		t.Fatalf("forged notification moved the skew from %v to %v", skew, s2)
	}
}

// The gateway's use cases are what the handler applies through.
var _ Applier = (*gateway.Service)(nil)
