package alipay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// The gateway's use cases are what the handler applies notifications through in production.
var _ Applier = (*gateway.Service)(nil)

// fakeApplier records what it is asked to apply and answers with the configured errors.
type fakeApplier struct {
	mu         sync.Mutex
	payments   []gateway.WalletPayment
	refunds    []gateway.WalletRefund
	paymentErr error
	refundErr  error
}

func (a *fakeApplier) ApplyWalletPayment(_ context.Context, p payment.Provider, wp gateway.WalletPayment) (*payment.Payment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p != payment.Alipay {
		return nil, fmt.Errorf("provider %q", p)
	}
	a.payments = append(a.payments, wp)
	if a.paymentErr != nil {
		return nil, a.paymentErr
	}
	return &payment.Payment{}, nil
}

func (a *fakeApplier) ApplyWalletRefund(_ context.Context, p payment.Provider, wr gateway.WalletRefund) (*payment.Refund, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p != payment.Alipay {
		return nil, fmt.Errorf("provider %q", p)
	}
	a.refunds = append(a.refunds, wr)
	if a.refundErr != nil {
		return nil, a.refundErr
	}
	return &payment.Refund{}, nil
}

type record struct {
	kind, reason string
	fields       map[string]string
}

type recorder struct {
	mu   sync.Mutex
	recs []record
}

func (r *recorder) record(_ context.Context, kind, reason string, fields map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, record{kind, reason, fields})
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		out = append(out, rec.kind)
	}
	return out
}

// paidForm is a trade_status_sync as Alipay sends it for a paid trade.
func paidForm() url.Values {
	return url.Values{
		"notify_id":        {"2026112500222153211000000001"},
		"notify_time":      {"2026-11-25 13:32:11"},
		"notify_type":      {"trade_status_sync"},
		"app_id":           {testAppID},
		"auth_app_id":      {testAppID},
		"charset":          {"utf-8"},
		"version":          {"1.0"},
		"sign_type":        {"RSA2"},
		"trade_no":         {"2026112522001400001000000001"},
		"out_trade_no":     {"HTabc123"},
		"trade_status":     {"TRADE_SUCCESS"},
		"total_amount":     {"12.34"},
		"receipt_amount":   {"12.34"},
		"buyer_pay_amount": {"12.34"},
		"seller_id":        {"2088000000000001"},
		"buyer_id":         {"2088000000000002"},
		"buyer_logon_id":   {"abc***@example.com"},
		"subject":          {"一杯咖啡 & cake=1"},
		"gmt_create":       {"2026-11-25 13:31:00"},
		"gmt_payment":      {"2026-11-25 13:32:10"},
		"fund_bill_list":   {`[{"amount":"12.34","fundChannel":"ALIPAYACCOUNT"}]`},
	}
}

func post(t *testing.T, h http.Handler, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/notify/alipay/payments", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestNotificationPaid(t *testing.T) {
	for _, withSignType := range []bool{false, true} {
		t.Run(fmt.Sprintf("sign_type_signed=%v", withSignType), func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{}, &recorder{}
			h := c.NotificationHandler(app, rec.record)
			form := signForm(t, keysOnce().alipay, paidForm(), withSignType)
			if sdkErr := c.client.VerifySign(form); (sdkErr == nil) == withSignType {
				t.Fatalf("SDK check = %v: the form must pass it only when sign_type is left out of the signature", sdkErr)
			}
			w := post(t, h, form)
			if w.Code != http.StatusOK || w.Body.String() != "success" {
				t.Fatalf("answer = %d %q, want 200 \"success\"", w.Code, w.Body.String())
			}
			if len(app.payments) != 1 || len(app.refunds) != 0 {
				t.Fatalf("applied %d payments, %d refunds; want 1, 0", len(app.payments), len(app.refunds))
			}
			want := gateway.WalletPayment{
				OutTradeNo: "HTabc123", State: gateway.WalletPaid, TradeNo: "2026112522001400001000000001",
				Amount: 1234, Currency: "CNY", Account: testAppID,
				PaidAt: time.Date(2026, 11, 25, 5, 32, 10, 0, time.UTC),
				Payer:  payment.Payer{BuyerID: "2088000000000002"},
			}
			if got := app.payments[0]; got != want {
				t.Fatalf("applied %+v\nwant    %+v", got, want)
			}
			if len(rec.recs) != 0 {
				t.Fatalf("recorded %v, want nothing", rec.kinds())
			}
		})
	}
}

func TestNotificationRejected(t *testing.T) {
	k := keysOnce()
	tampered := signForm(t, k.alipay, paidForm(), false)
	tampered.Set("total_amount", "0.01")
	noSign := paidForm()
	rsa1 := signForm(t, k.alipay, paidForm(), true)
	rsa1.Set("sign_type", "RSA")
	rsa1 = signForm(t, k.alipay, rsa1, true)
	certMode := paidForm()
	certMode.Set("alipay_cert_sn", "abc")
	certMode = signForm(t, k.alipay, certMode, false)
	badB64 := paidForm()
	badB64.Set("sign", "!!!")
	// Signed without sign_type, then sign_type removed: the fallback has nothing to add, must still fail.
	noTypeTampered := signForm(t, k.alipay, paidForm(), false)
	noTypeTampered.Del("sign_type")
	noTypeTampered.Set("buyer_id", "x")

	cases := map[string]url.Values{
		"stranger's key":            signForm(t, k.stranger, paidForm(), false),
		"stranger's key, sign_type": signForm(t, k.stranger, paidForm(), true),
		"app's own key":             signForm(t, k.app, paidForm(), false),
		"tampered amount":           tampered,
		"no signature":              noSign,
		"sign_type RSA":             rsa1,
		"certificate mode":          certMode,
		"signature not base64":      badB64,
		"tampered, no sign_type":    noTypeTampered,
	}
	for name, form := range cases {
		t.Run(name, func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{}, &recorder{}
			w := post(t, c.NotificationHandler(app, rec.record), form)
			if w.Code == http.StatusOK || w.Body.String() != "fail" {
				t.Fatalf("answer = %d %q, want non-200 \"fail\"", w.Code, w.Body.String())
			}
			if len(app.payments)+len(app.refunds) != 0 {
				t.Fatal("a forged notification was applied")
			}
			if got := rec.kinds(); len(got) != 1 || got[0] != RejectForged {
				t.Fatalf("recorded %v, want [forged]", got)
			}
			for k := range rec.recs[0].fields {
				if k == "sign" || k == "sign_type" {
					t.Fatalf("record carries %q", k)
				}
			}
		})
	}
}

func TestNotificationMalformedRequest(t *testing.T) {
	c := newTestConnector(t, "")
	app, rec := &fakeApplier{}, &recorder{}
	h := c.NotificationHandler(app, rec.record)

	signed := signForm(t, keysOnce().alipay, paidForm(), false)
	repeated := signed.Encode() + "&out_trade_no=other"
	for name, tc := range map[string]struct {
		method, ctype, body string
		wantCode            int
	}{
		"GET":           {http.MethodGet, "", "", http.StatusMethodNotAllowed},
		"json":          {http.MethodPost, "application/json", `{"a":1}`, http.StatusBadRequest},
		"empty":         {http.MethodPost, "application/x-www-form-urlencoded", "", http.StatusBadRequest},
		"bad escape":    {http.MethodPost, "application/x-www-form-urlencoded", "a=%zz", http.StatusBadRequest},
		"repeated key":  {http.MethodPost, "application/x-www-form-urlencoded", repeated, http.StatusBadRequest},
		"too large":     {http.MethodPost, "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", maxNotificationBytes), http.StatusBadRequest},
		"signed, query": {http.MethodPost, "application/x-www-form-urlencoded", "", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			target := "/notify/alipay/payments"
			if name == "signed, query" {
				target += "?" + signed.Encode() // only the body counts
			}
			req := httptest.NewRequest(tc.method, target, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantCode || strings.TrimSpace(w.Body.String()) != "fail" {
				t.Fatalf("answer = %d %q, want %d \"fail\"", w.Code, w.Body.String(), tc.wantCode)
			}
		})
	}
	if len(app.payments)+len(app.refunds) != 0 {
		t.Fatal("a malformed request was applied")
	}
}

func TestNotificationSignedButNotActionable(t *testing.T) {
	k := keysOnce()
	with := func(f func(url.Values)) url.Values {
		form := paidForm()
		f(form)
		return signForm(t, k.alipay, form, false)
	}
	cases := []struct {
		name     string
		form     url.Values
		wantKind string
	}{
		{"other app", with(func(f url.Values) { f.Set("app_id", "2021999999999999") }), RejectWrongApp},
		{"other notify_type", with(func(f url.Values) { f.Set("notify_type", "trade_settle_sync") }), RejectUnsupported},
		{"unknown trade_status", with(func(f url.Values) { f.Set("trade_status", "TRADE_PENDING") }), RejectUnsupported},
		{"amount with three decimals", with(func(f url.Values) { f.Set("total_amount", "12.340") }), RejectMalformed},
		{"negative amount", with(func(f url.Values) { f.Set("total_amount", "-12.34") }), RejectMalformed},
		{"bad refund_fee", with(func(f url.Values) { f.Set("refund_fee", "1e3") }), RejectMalformed},
		{"paid without amount", with(func(f url.Values) { f.Del("total_amount") }), RejectMalformed},
		{"no out_trade_no", with(func(f url.Values) { f.Del("out_trade_no") }), RejectMalformed},
		{"no trade_status", with(func(f url.Values) { f.Del("trade_status") }), RejectMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{}, &recorder{}
			w := post(t, c.NotificationHandler(app, rec.record), tc.form)
			if w.Code != http.StatusOK || w.Body.String() != "success" {
				t.Fatalf("answer = %d %q, want 200 \"success\" (retrying cannot help)", w.Code, w.Body.String())
			}
			if len(app.payments)+len(app.refunds) != 0 {
				t.Fatalf("applied %v %v", app.payments, app.refunds)
			}
			if got := rec.kinds(); len(got) != 1 || got[0] != tc.wantKind {
				t.Fatalf("recorded %v, want [%s]", got, tc.wantKind)
			}
		})
	}
}

func TestNotificationApplyErrors(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
		wantKind []string
	}{
		{"unknown payment", payment.ErrNotFound("payment", "HTabc123"), 200, "success", []string{RejectUnknown}},
		{"mismatch", fmt.Errorf("%w: amounts differ", gateway.ErrMismatch), 200, "success", []string{RejectMismatch}},
		{"conflict", payment.Errorf(payment.Conflict, "payment_state", "payment is canceled"), 200, "success", []string{RejectMismatch}},
		{"store down", errors.New("database is locked"), 500, "fail", nil},
		{"timeout", context.DeadlineExceeded, 500, "fail", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{paymentErr: tc.err}, &recorder{}
			w := post(t, c.NotificationHandler(app, rec.record), signForm(t, keysOnce().alipay, paidForm(), false))
			if w.Code != tc.wantCode || w.Body.String() != tc.wantBody {
				t.Fatalf("answer = %d %q, want %d %q", w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
			}
			if len(app.payments) != 1 {
				t.Fatalf("apply called %d times, want 1", len(app.payments))
			}
			if got := rec.kinds(); fmt.Sprint(got) != fmt.Sprint(tc.wantKind) {
				t.Fatalf("recorded %v, want %v", got, tc.wantKind)
			}
		})
	}
}

func refundForm(status string) url.Values {
	f := paidForm()
	f.Set("notify_id", "2026112500222153211000000002")
	f.Set("trade_status", status)
	f.Set("refund_fee", "12.34")
	f.Set("gmt_refund", "2026-11-25 14:00:00.123")
	f.Set("out_biz_no", "HTrefund1")
	if status == "TRADE_CLOSED" {
		f.Set("gmt_close", "2026-11-25 14:00:00")
	}
	return f
}

func TestNotificationRefund(t *testing.T) {
	for _, status := range []string{"TRADE_CLOSED", "TRADE_SUCCESS"} {
		t.Run(status, func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{}, &recorder{}
			form := refundForm(status)
			form.Set("gmt_refund", "2026-11-25 14:00:00")
			w := post(t, c.NotificationHandler(app, rec.record), signForm(t, keysOnce().alipay, form, false))
			if w.Code != http.StatusOK || w.Body.String() != "success" {
				t.Fatalf("answer = %d %q, want 200 success", w.Code, w.Body.String())
			}
			if len(app.payments) != 1 || app.payments[0].State != gateway.WalletPaid || app.payments[0].Amount != 1234 {
				t.Fatalf("payment news %+v: a refunded trade must stay paid", app.payments)
			}
			want := gateway.WalletRefund{OutTradeNo: "HTabc123", OutRefundNo: "HTrefund1", State: gateway.RefundSuccess,
				SucceededAt: time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)}
			if len(app.refunds) != 1 || app.refunds[0] != want {
				t.Fatalf("refund news %+v\nwant %+v", app.refunds, want)
			}
		})
	}
}

func TestNotificationRefundErrors(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
		wantKind []string
	}{
		{"refund made elsewhere", payment.ErrNotFound("refund", "HTrefund1"), 200, "success", []string{RejectUnknown}},
		{"store down", errors.New("disk full"), 500, "fail", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConnector(t, "")
			app, rec := &fakeApplier{refundErr: tc.err}, &recorder{}
			form := refundForm("TRADE_SUCCESS")
			w := post(t, c.NotificationHandler(app, rec.record), signForm(t, keysOnce().alipay, form, true))
			if w.Code != tc.wantCode || w.Body.String() != tc.wantBody {
				t.Fatalf("answer = %d %q, want %d %q", w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
			}
			if fmt.Sprint(rec.kinds()) != fmt.Sprint(tc.wantKind) {
				t.Fatalf("recorded %v, want %v", rec.kinds(), tc.wantKind)
			}
		})
	}
}

func TestNotificationClosedUnpaid(t *testing.T) {
	c := newTestConnector(t, "")
	app := &fakeApplier{}
	form := paidForm()
	form.Set("trade_status", "TRADE_CLOSED")
	for _, k := range []string{"gmt_payment", "receipt_amount", "buyer_pay_amount", "fund_bill_list"} {
		form.Del(k)
	}
	w := post(t, c.NotificationHandler(app, nil), signForm(t, keysOnce().alipay, form, false))
	if w.Body.String() != "success" {
		t.Fatalf("answer %q", w.Body.String())
	}
	if len(app.payments) != 1 || app.payments[0].State != gateway.WalletClosed {
		t.Fatalf("payment news %+v, want closed", app.payments)
	}
}

func TestSigningText(t *testing.T) {
	form := url.Values{"b": {"2"}, "a": {""}, "sign": {"x"}, "sign_type": {"RSA2"}, "c": {"x=y&z"}}
	if got, want := signingText(form, "sign"), "a=&b=2&c=x=y&z&sign_type=RSA2"; got != want {
		t.Fatalf("signingText = %q, want %q", got, want)
	}
	if got, want := signingText(form, "sign", "sign_type"), "a=&b=2&c=x=y&z"; got != want {
		t.Fatalf("signingText = %q, want %q", got, want)
	}
}

func FuzzNotification(f *testing.F) {
	k := keysOnce()
	f.Add(signForm(f, k.stranger, paidForm(), false).Encode())
	f.Add(signForm(f, k.stranger, refundForm("TRADE_CLOSED"), true).Encode())
	tampered := signForm(f, k.alipay, paidForm(), false)
	tampered.Set("total_amount", "1.00")
	f.Add(tampered.Encode())
	f.Add("sign=&sign_type=RSA2&app_id=" + testAppID)
	f.Add("a=1&a=2")
	f.Add("%zz")
	f.Add("")
	c := newTestConnector(f, "")
	f.Fuzz(func(t *testing.T, body string) {
		app := &fakeApplier{}
		h := c.NotificationHandler(app, func(context.Context, string, string, map[string]string) {})
		req := httptest.NewRequest(http.MethodPost, "/notify/alipay/payments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if len(app.payments)+len(app.refunds) != 0 {
			t.Fatalf("unsigned body %q was applied", body)
		}
		if w.Body.String() != "fail" {
			t.Fatalf("unsigned body %q answered %q, want fail", body, w.Body.String())
		}
	})
}
