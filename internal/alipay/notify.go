package alipay

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Applier applies verified wallet news durably. *gateway.Service satisfies it.
type Applier interface {
	ApplyWalletPayment(ctx context.Context, provider payment.Provider, wp gateway.WalletPayment) (*payment.Payment, error)
	ApplyWalletRefund(ctx context.Context, provider payment.Provider, wr gateway.WalletRefund) (*payment.Refund, error)
}

// Recorder keeps a rejected notification for operators: kind is one of the Reject* classes,
// reason says why in words, fields holds the notification's identifying fields only (never the
// body, the signature or amounts beyond the totals).
type Recorder func(ctx context.Context, kind, reason string, fields map[string]string)

// Classes of rejected notifications passed to a Recorder.
const (
	RejectForged      = "forged"      // signature did not verify; answered "fail"
	RejectMalformed   = "malformed"   // unreadable form, or signed content that makes no sense
	RejectWrongApp    = "wrong_app"   // signed, but for another app_id; answered "success"
	RejectUnknown     = "unknown"     // signed, but no such payment or refund here; answered "success"
	RejectMismatch    = "mismatch"    // signed, but contradicts our record (gateway.ErrMismatch); answered "success"
	RejectUnsupported = "unsupported" // signed, but a notify_type or trade_status we do not act on; answered "success"
)

// maxNotificationBytes bounds a notification body; real ones are about 1.5 KB.
const maxNotificationBytes = 64 << 10

// The acknowledgement bodies Alipay understands: exactly "success" ends its retries.
const (
	ackSuccess = "success"
	ackFail    = "fail"
)

// identifying fields copied into records and logs; nothing secret, nothing bulky.
var recordFields = []string{"notify_id", "notify_type", "notify_time", "app_id", "out_trade_no", "trade_no", "out_biz_no", "trade_status", "total_amount", "refund_fee"}

// NotificationHandler serves Alipay's asynchronous notifications (POST form, trade_status_sync).
//
// A notification is verified first (see verify), then checked against this app, then applied
// through app. It answers "success" only once app has durably applied it, or when retrying could
// never help (unknown payment, mismatch, another app); a forged or unreadable notification and any
// other failure answer "fail", and Alipay retries on its schedule.
func (c *Connector) NotificationHandler(app Applier, rec Recorder) http.Handler {
	if rec == nil {
		rec = func(context.Context, string, string, map[string]string) {}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, ackFail, http.StatusMethodNotAllowed)
			return
		}
		ctx := r.Context()
		form, err := readForm(w, r)
		if err != nil {
			c.reject(ctx, rec, RejectMalformed, err.Error(), nil)
			answer(w, http.StatusBadRequest, ackFail)
			return
		}
		if err := c.verify(form); err != nil {
			c.reject(ctx, rec, RejectForged, err.Error(), form)
			answer(w, http.StatusBadRequest, ackFail)
			return
		}
		status, body := c.apply(ctx, app, rec, form)
		answer(w, status, body)
	})
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// readForm reads the notification's form body. Only the body counts: Alipay posts everything
// there, and a query string would let anyone add unsigned-looking extras to the signed set.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, fmt.Errorf("content type %q is not a form", ct)
		}
	} else {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxNotificationBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("unreadable form")
	}
	form := r.PostForm
	if len(form) == 0 {
		return nil, errors.New("empty form")
	}
	for k, vs := range form {
		if len(vs) != 1 {
			// Every field is sent once; repeats would make "the" value ambiguous after verification.
			return nil, fmt.Errorf("field %q is repeated", k)
		}
	}
	return form, nil
}

// verify checks the notification's RSA2 signature with Alipay's public key.
//
// First as the SDK (and Alipay's own Java SDK) does: over every field but sign and sign_type.
// Alipay's maintainers state that for some notifications sign_type is part of the signed text,
// and the official Node SDK therefore retries with it; the Go SDK has no such mode, so that second
// check is written here, over the same form, once, only when the first one failed.
func (c *Connector) verify(form url.Values) error {
	if form.Get("sign") == "" {
		return errors.New("no signature")
	}
	if form.Has("alipay_cert_sn") {
		// Certificate mode only; in public-key mode Alipay never sends it.
		return errors.New("certificate-mode notification in public-key mode")
	}
	if st := form.Get("sign_type"); st != "" && st != "RSA2" {
		return fmt.Errorf("sign_type %q is not RSA2", st)
	}
	if err := c.client.VerifySign(form); err == nil {
		return nil
	}
	if form.Get("sign_type") == "" {
		return errors.New("signature does not verify")
	}
	sig, err := base64.StdEncoding.DecodeString(form.Get("sign"))
	if err != nil {
		return errors.New("signature is not base64")
	}
	sum := sha256.Sum256([]byte(signingText(form, "sign")))
	if err := rsa.VerifyPKCS1v15(c.alipayKey, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not verify, with or without sign_type")
	}
	return nil
}

// signingText is Alipay's notification signing string: every field except those in skip, sorted
// by key, as raw key=value joined by '&' (empty values kept, as Alipay keeps them).
func signingText(form url.Values, skip ...string) string {
	keys := make([]string, 0, len(form))
next:
	for k := range form {
		for _, s := range skip {
			if k == s {
				continue next
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(form.Get(k))
	}
	return b.String()
}

func (c *Connector) reject(ctx context.Context, rec Recorder, kind, reason string, form url.Values) {
	fields := map[string]string{}
	for _, k := range recordFields {
		if v := form.Get(k); v != "" {
			fields[k] = clip(v)
		}
	}
	rec(ctx, kind, reason, fields)
	c.log.Warn("alipay notification rejected", "kind", kind, "reason", reason,
		"notify_id", fields["notify_id"], "out_trade_no", fields["out_trade_no"], "out_biz_no", fields["out_biz_no"])
}

// clip bounds a field copied into a record: forged notifications may carry anything.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// Notification types and the refund markers of a trade_status_sync.
const notifyTradeStatusSync = "trade_status_sync"

// isRefund reports whether a trade_status_sync reports a refund: Alipay has no notification type
// of its own for refunds and marks them with refund_fee, gmt_refund and out_biz_no instead.
func isRefund(form url.Values) bool {
	return form.Get("refund_fee") != "" || form.Get("gmt_refund") != "" || form.Get("out_biz_no") != ""
}

// apply acts on a verified notification and returns the answer to send.
func (c *Connector) apply(ctx context.Context, app Applier, rec Recorder, form url.Values) (int, string) {
	if got := form.Get("app_id"); got != c.appID {
		c.reject(ctx, rec, RejectWrongApp, fmt.Sprintf("app_id %q is not this app", clip(got)), form)
		return http.StatusOK, ackSuccess
	}
	if nt := form.Get("notify_type"); nt != notifyTradeStatusSync {
		c.reject(ctx, rec, RejectUnsupported, fmt.Sprintf("notify_type %q", clip(nt)), form)
		return http.StatusOK, ackSuccess
	}
	wp, reason := walletPayment(form)
	if reason != "" {
		c.reject(ctx, rec, reasonKind(reason), reason, form)
		return http.StatusOK, ackSuccess
	}
	wp.Account = c.appID
	_, err := app.ApplyWalletPayment(ctx, payment.Alipay, wp)
	retry := c.outcome(ctx, rec, form, "payment", err)

	if isRefund(form) {
		outBizNo := form.Get("out_biz_no")
		if outBizNo == "" {
			c.reject(ctx, rec, RejectMalformed, "refund notification without out_biz_no", form)
		} else {
			wr := gateway.WalletRefund{
				OutTradeNo: wp.OutTradeNo, OutRefundNo: outBizNo, State: gateway.RefundSuccess,
				SucceededAt: parseTime(form.Get("gmt_refund")),
			}
			if wr.SucceededAt.IsZero() {
				wr.SucceededAt = c.now().UTC()
			}
			// refund_fee is the trade's cumulative refunded amount, not this refund's, so the
			// amount is left zero: the gateway then keeps its own.
			_, err := app.ApplyWalletRefund(ctx, payment.Alipay, wr)
			retry = c.outcome(ctx, rec, form, "refund", err) || retry
		}
	}
	if retry {
		return http.StatusInternalServerError, ackFail
	}
	c.log.Info("alipay notification applied", "notify_id", form.Get("notify_id"),
		"out_trade_no", wp.OutTradeNo, "state", string(wp.State), "refund", isRefund(form))
	return http.StatusOK, ackSuccess
}

// malformed reasons start with this, so that apply can tell them from unsupported ones.
const malformedPrefix = "malformed: "

func reasonKind(reason string) string {
	if strings.HasPrefix(reason, malformedPrefix) {
		return RejectMalformed
	}
	return RejectUnsupported
}

// outcome classifies an apply error and reports whether Alipay should retry.
func (c *Connector) outcome(ctx context.Context, rec Recorder, form url.Values, what string, err error) (retry bool) {
	switch {
	case err == nil:
		return false
	case payment.IsNotFound(err):
		c.reject(ctx, rec, RejectUnknown, "no such "+what+" here", form)
		return false
	case errors.Is(err, gateway.ErrMismatch), payment.KindOf(err) == payment.Conflict:
		// A conflict (e.g. a refund we already recorded as failed) is a contradiction between
		// Alipay and our record, like a mismatch: no retry can resolve it.
		c.reject(ctx, rec, RejectMismatch, err.Error(), form)
		return false
	}
	c.log.Error("alipay notification not applied; alipay will retry", "what", what,
		"notify_id", form.Get("notify_id"), "out_trade_no", form.Get("out_trade_no"), "err", err)
	return true
}

// walletPayment reads the payment news of a verified trade_status_sync. A non-empty reason
// means it cannot be acted on (prefixed "malformed: " when the content makes no sense).
func walletPayment(form url.Values) (gateway.WalletPayment, string) {
	wp := gateway.WalletPayment{
		OutTradeNo: form.Get("out_trade_no"), TradeNo: form.Get("trade_no"), Currency: "CNY",
		Payer: payment.Payer{BuyerID: form.Get("buyer_id"), AlipayOpenID: form.Get("buyer_open_id")},
	}
	if wp.OutTradeNo == "" {
		return wp, malformedPrefix + "no out_trade_no"
	}
	if s := form.Get("total_amount"); s != "" {
		amount, err := ParseYuan(s)
		if err != nil {
			return wp, malformedPrefix + "total_amount: " + err.Error()
		}
		wp.Amount = amount
	}
	for _, k := range []string{"refund_fee", "receipt_amount", "buyer_pay_amount"} {
		if s := form.Get(k); s != "" {
			if _, err := ParseYuan(s); err != nil {
				return wp, malformedPrefix + k + ": " + err.Error()
			}
		}
	}
	paid := func() {
		wp.State = gateway.WalletPaid
		wp.PaidAt = parseTime(form.Get("gmt_payment"))
	}
	switch sdk.TradeStatus(form.Get("trade_status")) {
	case sdk.TradeStatusWaitBuyerPay:
		wp.State = gateway.WalletPending
	case sdk.TradeStatusSuccess, sdk.TradeStatusFinished:
		paid()
	case sdk.TradeStatusClosed:
		// After a full refund Alipay closes a trade that was paid; only an unpaid trade is closed.
		if isRefund(form) || form.Get("gmt_payment") != "" {
			paid()
		} else {
			wp.State = gateway.WalletClosed
		}
	case "":
		return wp, malformedPrefix + "no trade_status"
	default:
		return wp, fmt.Sprintf("trade_status %q", clip(form.Get("trade_status")))
	}
	if wp.State == gateway.WalletPaid && form.Get("total_amount") == "" {
		return wp, malformedPrefix + "paid without total_amount"
	}
	return wp, ""
}
