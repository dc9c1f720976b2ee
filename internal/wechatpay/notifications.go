package wechatpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/hutong-pay/hutong/internal/gateway"
	"github.com/hutong-pay/hutong/internal/payment"
)

// Applier applies verified wallet news exactly once; gateway.Service satisfies it.
type Applier interface {
	ApplyWalletPayment(ctx context.Context, provider payment.Provider, wp gateway.WalletPayment) (*payment.Payment, error)
	ApplyWalletRefund(ctx context.Context, provider payment.Provider, wr gateway.WalletRefund) (*payment.Refund, error)
}

// Recorder keeps notifications that were not applied, for operators: kind is why, one of the
// Reason constants; reason says what was rejected ("payment notification", "refund notification",
// or "notification" when not yet known); fields are identifiers such as event_id, out_trade_no,
// serial. It never receives bodies, keys or signatures.
type Recorder func(ctx context.Context, kind, reason string, fields map[string]string)

// Why a notification was not applied. The HTTP answer each one gets is in NotificationHandler.
const (
	ReasonTooLarge         = "too_large"         // 413
	ReasonSignatureType    = "signature_type"    // 401: Wechatpay-Signature-Type is not WECHATPAY2-SHA256-RSA2048
	ReasonBadHeaders       = "bad_headers"       // 401: Wechatpay-* headers missing or malformed
	ReasonBadSignature     = "bad_signature"     // 401: forged, a probe, or signed with a key we do not trust
	ReasonStale            = "stale"             // 401: timestamp 300 s or more from our clock
	ReasonMalformed        = "malformed"         // 400: authentic but not a notification we can parse
	ReasonUndecryptable    = "undecryptable"     // 500: authentic but the APIv3 key does not open it
	ReasonUnsupportedEvent = "unsupported_event" // 200: an event type we do not handle
	ReasonWrongAccount     = "wrong_account"     // 200: another mchid or appid
	ReasonInvalidResource  = "invalid_resource"  // 200: decrypted content inconsistent or unusable
	ReasonUnknownPayment   = "unknown_payment"   // 200: no such payment here
	ReasonUnknownRefund    = "unknown_refund"    // 200: no such refund here
	ReasonMismatch         = "mismatch"          // 200: amount or state disagrees with our record
	ReasonConflict         = "conflict"          // 200: our record's state forbids the change
)

// WeChat Pay's notification event types.
const (
	eventTransactionSuccess = "TRANSACTION.SUCCESS"
	eventRefundSuccess      = "REFUND.SUCCESS"
	eventRefundClosed       = "REFUND.CLOSED"
	eventRefundAbnormal     = "REFUND.ABNORMAL"
)

const (
	signatureType   = "WECHATPAY2-SHA256-RSA2048"
	aeadAlgorithm   = "AEAD_AES_256_GCM"
	maxNotification = 64 << 10 // real ones are about 1 KiB
	// applyBudget bounds applying one notification. WeChat Pay wants an answer within 5 s but a
	// late answer only costs a retry, which is harmless: applying is idempotent.
	applyBudget = 15 * time.Second
)

// NotificationHandler returns the http.Handler for WeChat Pay's payment and refund notifications
// (both notify URLs may point at it). It verifies the signature with the keys of the configured
// mode, checks the timestamp, decrypts through the SDK's notify handler, checks the account, and
// applies the news through app; it acknowledges only once app has returned:
//   - 204 when applied (or already applied before);
//   - 401 {"code":"FAIL"} when forged, stale or signed with an unknown key (a real one verifies on retry);
//   - 200 when authentic but retrying cannot help (unknown payment, amount mismatch, other account,
//     unusable content): recorded for operators;
//   - 500 {"code":"FAIL"} when applying failed (e.g. the database is down) or the APIv3 key does
//     not decrypt it, so that WeChat Pay retries.
//
// rec may be nil.
func (c *Connector) NotificationHandler(app Applier, rec Recorder) http.Handler {
	if rec == nil {
		rec = func(context.Context, string, string, map[string]string) {}
	}
	return &notificationHandler{c: c, app: app, rec: rec}
}

type notificationHandler struct {
	c   *Connector
	app Applier
	rec Recorder
}

// outcome is how one notification ended.
type outcome struct {
	status int
	kind   string // payment | refund | notification
	reason string // "" when applied
	msg    string // for the answer's message; generic, no details of our state
	err    error  // for logs and the recorder
}

func (h *notificationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeFail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	// The recorder and the store must finish even if WeChat Pay hangs up.
	ctx := context.WithoutCancel(r.Context())
	fields := map[string]string{
		"serial": truncate(r.Header.Get("Wechatpay-Serial"), 64), "remote_addr": r.RemoteAddr,
		"request_id": truncate(r.Header.Get("Request-Id"), 64),
	}
	o := h.handle(ctx, w, r, fields)
	log := h.c.log.With("provider", "wechatpay", "event_id", fields["event_id"], "event_type", fields["event_type"],
		"out_trade_no", fields["out_trade_no"], "out_refund_no", fields["out_refund_no"])
	switch {
	case o.reason == "" && o.status < 300:
		log.Info("wechatpay notification applied", "status", fields["result_status"])
	case o.reason == "":
		log.Error("wechatpay notification not applied; WeChat Pay will retry", "err", o.err)
	default:
		if o.err != nil {
			fields["error"] = truncate(o.err.Error(), 500)
		}
		level := slog.LevelWarn
		if o.status >= 500 {
			level = slog.LevelError
		}
		log.Log(ctx, level, "wechatpay notification rejected", "reason", o.reason, "http_status", o.status, "err", o.err)
		for k, v := range fields {
			if v == "" {
				delete(fields, k)
			}
		}
		what := "notification"
		if o.kind != what {
			what = o.kind + " notification"
		}
		h.rec(ctx, o.reason, what, fields)
	}
	switch {
	case o.status == http.StatusNoContent || o.status == http.StatusOK:
		w.WriteHeader(o.status)
	default:
		writeFail(w, o.status, o.msg)
	}
}

func (h *notificationHandler) handle(ctx context.Context, w http.ResponseWriter, r *http.Request, fields map[string]string) outcome {
	reject := func(status int, kind, reason, msg string, err error) outcome {
		return outcome{status: status, kind: kind, reason: reason, msg: msg, err: err}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotification))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return reject(http.StatusRequestEntityTooLarge, "notification", ReasonTooLarge, "too large", nil)
		}
		return reject(http.StatusBadRequest, "notification", ReasonMalformed, "unreadable body", err)
	}

	// Authenticity first: nothing in the body is trusted, or even parsed, before this.
	if st := r.Header.Get("Wechatpay-Signature-Type"); st != "" && st != signatureType {
		return reject(http.StatusUnauthorized, "notification", ReasonSignatureType, "unsupported signature type", fmt.Errorf("signature type %q", truncate(st, 64)))
	}
	serial, sig, nonce, tsText := r.Header.Get("Wechatpay-Serial"), r.Header.Get("Wechatpay-Signature"),
		r.Header.Get("Wechatpay-Nonce"), r.Header.Get("Wechatpay-Timestamp")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	// Exactly the values the SDK will use after trimming and re-formatting: no disagreement later.
	if !headerValue(serial) || !headerValue(sig) || !headerValue(nonce) || err != nil || strconv.FormatInt(ts, 10) != tsText {
		return reject(http.StatusUnauthorized, "notification", ReasonBadHeaders, "missing or malformed Wechatpay headers", nil)
	}
	message := tsText + "\n" + nonce + "\n" + string(body) + "\n"
	if err := h.c.verifier.Verify(ctx, serial, message, sig); err != nil {
		h.c.refreshCertificatesFor(ctx, serial)
		return reject(http.StatusUnauthorized, "notification", ReasonBadSignature, "signature verification failed", err)
	}
	walletTime := time.Unix(ts, 0)
	h.c.skew.observe(walletTime)
	if age := h.c.cfg.Now().Sub(walletTime); age.Abs() >= skewLimit {
		return reject(http.StatusUnauthorized, "notification", ReasonStale, "timestamp expired", fmt.Errorf("timestamp %d is %s from our clock", ts, age.Round(time.Second)))
	}

	// The envelope is parsed into the SDK's own type before the SDK sees it, so that the SDK's parse
	// cannot fail afterwards; and checked, because the SDK dereferences resource without a nil check
	// and GCM panics on a nonce that is not 12 bytes.
	var env notify.Request
	if err := json.Unmarshal(body, &env); err != nil {
		return reject(http.StatusBadRequest, "notification", ReasonMalformed, "malformed notification", fmt.Errorf("envelope: %w", err))
	}
	fields["event_id"], fields["event_type"] = truncate(env.ID, 64), truncate(env.EventType, 64)
	if env.Resource == nil || env.Resource.Algorithm != aeadAlgorithm || len(env.Resource.Nonce) != 12 {
		return reject(http.StatusBadRequest, "notification", ReasonMalformed, "malformed notification", errors.New("resource missing, or not AEAD_AES_256_GCM with a 12-byte nonce"))
	}

	switch env.EventType {
	case eventTransactionSuccess:
		var tx payments.Transaction
		if o, ok := h.decrypt(ctx, r, body, env.Resource, "payment", &tx); !ok {
			return o
		}
		wp, err := h.c.walletPayment(&tx)
		fields["out_trade_no"], fields["transaction_id"] = truncate(wp.OutTradeNo, 64), truncate(wp.TransactionID, 64)
		if err == nil && wp.State != gateway.WalletPaid {
			err = fmt.Errorf("event %s with trade_state %q", env.EventType, deref(tx.TradeState))
		}
		if err != nil {
			return resourceError("payment", err)
		}
		actx, cancel := context.WithTimeout(ctx, applyBudget)
		defer cancel()
		p, err := h.app.ApplyWalletPayment(actx, payment.WeChatPay, wp)
		if err != nil {
			return applyError("payment", ReasonUnknownPayment, err)
		}
		if p != nil {
			fields["payment_id"], fields["result_status"] = p.ID, string(p.Status)
		}
		return outcome{status: http.StatusNoContent, kind: "payment"}

	case eventRefundSuccess, eventRefundClosed, eventRefundAbnormal:
		var n refundNotice
		if o, ok := h.decrypt(ctx, r, body, env.Resource, "refund", &n); !ok {
			return o
		}
		wr, err := h.c.noticeRefund(env.EventType, &n)
		fields["out_trade_no"], fields["out_refund_no"] = truncate(wr.OutTradeNo, 64), truncate(wr.OutRefundNo, 64)
		if err != nil {
			return resourceError("refund", err)
		}
		actx, cancel := context.WithTimeout(ctx, applyBudget)
		defer cancel()
		rf, err := h.app.ApplyWalletRefund(actx, payment.WeChatPay, wr)
		if err != nil {
			return applyError("refund", ReasonUnknownRefund, err)
		}
		if rf != nil {
			fields["refund_id"], fields["result_status"] = rf.ID, string(rf.Status)
		}
		return outcome{status: http.StatusNoContent, kind: "refund"}
	}
	// Authentic, but not an event we subscribe to: nothing to do, and retrying would not change that.
	return reject(http.StatusOK, "notification", ReasonUnsupportedEvent, "", nil)
}

// decrypt runs the SDK's notify handler (signature, timestamp, AES-256-GCM) over the already
// verified request and decodes the plaintext into content.
func (h *notificationHandler) decrypt(ctx context.Context, r *http.Request, body []byte, res *notify.EncryptedResource, kind string, content any) (o outcome, ok bool) {
	req := r.Clone(ctx)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	defer func() {
		// The envelope checks rule out the SDK panics we know of; any other must not take the
		// server down, and WeChat Pay's retry is the right answer to it.
		if p := recover(); p != nil {
			o, ok = outcome{status: http.StatusInternalServerError, kind: kind, reason: ReasonMalformed, msg: "internal error",
				err: fmt.Errorf("sdk notify handler panicked: %v", p)}, false
		}
	}()
	// The SDK's error text embeds the whole request (headers, signature, body): it never leaves
	// this function.
	nreq, err := h.c.notify.ParseNotifyRequest(ctx, req, content)
	switch {
	case err == nil:
		return outcome{}, true
	case nreq == nil:
		// Headers, signature and envelope passed our identical checks, so this is the SDK's
		// clock (time.Now) disagreeing with ours about the timestamp.
		return outcome{status: http.StatusUnauthorized, kind: kind, reason: ReasonStale, msg: "timestamp expired",
			err: errors.New("the SDK rejected a notification our checks accepted")}, false
	}
	if _, derr := utils.DecryptAES256GCM(h.c.cfg.APIv3Key, res.AssociatedData, res.Nonce, res.Ciphertext); derr != nil {
		return outcome{status: http.StatusInternalServerError, kind: kind, reason: ReasonUndecryptable, msg: "internal error",
			err: errors.New("AES-256-GCM open failed: is the APIv3 key right?")}, false
	}
	return outcome{status: http.StatusOK, kind: kind, reason: ReasonInvalidResource,
		err: errors.New("decrypted resource is not the expected JSON")}, false
}

// headerValue reports whether a Wechatpay-* header value is present and needs no trimming.
func headerValue(v string) bool { return v != "" && strings.TrimSpace(v) == v }

// resourceError classifies an authentic resource we refuse to apply.
func resourceError(kind string, err error) outcome {
	var ae *accountError
	if errors.As(err, &ae) {
		return outcome{status: http.StatusOK, kind: kind, reason: ReasonWrongAccount, err: err}
	}
	return outcome{status: http.StatusOK, kind: kind, reason: ReasonInvalidResource, err: err}
}

// applyError classifies an Applier error: news that can never apply is recorded and acknowledged,
// anything else is answered 500 so that WeChat Pay retries.
func applyError(kind, notFound string, err error) outcome {
	switch {
	case errors.Is(err, gateway.ErrMismatch):
		return outcome{status: http.StatusOK, kind: kind, reason: ReasonMismatch, err: err}
	case payment.IsNotFound(err):
		return outcome{status: http.StatusOK, kind: kind, reason: notFound, err: err}
	case payment.KindOf(err) == payment.Conflict:
		// e.g. REFUND.CLOSED for a refund we already recorded as succeeded.
		return outcome{status: http.StatusOK, kind: kind, reason: ReasonConflict, err: err}
	}
	return outcome{status: http.StatusInternalServerError, kind: kind, msg: "internal error", err: err}
}

func writeFail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "FAIL", "message": msg})
}

// truncate bounds what outside input may put into logs and records.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
