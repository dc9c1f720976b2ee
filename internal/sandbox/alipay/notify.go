package alipay

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// notifySchedule is Alipay's documented retry schedule after the first attempt: eight
// notifications within about 25 hours.
var notifySchedule = []time.Duration{
	4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour,
}

// wallet is the Alipay side of the notification sender: form-encoded trade_status_sync posts,
// signed fresh at every attempt, acknowledged only by 200 with the body "success".
type wallet struct{ s *Sandbox }

func (w *wallet) Schedule() []time.Duration { return notifySchedule }

func (w *wallet) Acknowledged(status int, body []byte) bool {
	return status == http.StatusOK && string(body) == "success"
}

// Render turns a stored notification (its fields as a JSON object) into the form Alipay posts. The
// signing string leaves out sign and sign_type (sign_type is still sent), which both the Go SDK and
// the Node SDK's first try verify; fields are never empty, as Go's verifier does not skip empties.
func (w *wallet) Render(payload []byte, forged bool) (http.Header, []byte, error) {
	var fields map[string]string
	if err := json.Unmarshal(payload, &fields); err != nil {
		return nil, nil, fmt.Errorf("alipay sandbox: notification payload: %w", err)
	}
	form := url.Values{}
	for k, v := range fields {
		if v != "" {
			form.Set(k, v)
		}
	}
	form.Set("notify_time", timeText(w.s.now()))
	sig, err := signRSA2(w.s.app.alipayKey, []byte(signContent(form, false, "sign", "sign_type")))
	if err != nil {
		return nil, nil, err
	}
	if forged {
		sig = forgeSignature(sig)
	}
	form.Set("sign", sig)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return h, []byte(form.Encode()), nil
}

// forgeSignature damages a signature so it no longer verifies, keeping its length and encoding so
// the probe looks like a real notification.
func forgeSignature(sig string) string {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) == 0 {
		return sig + "A"
	}
	raw[len(raw)/2] ^= 0x5a
	return base64.StdEncoding.EncodeToString(raw)
}

// newNotifyID returns a notify_id: 34 hex characters, unique per notification and kept on retries.
func newNotifyID() string {
	b := make([]byte, 17)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tradeNotificationFields are the trade_status_sync fields for t's current state; rf adds the
// refund fields (refund_fee is cumulative, out_biz_no is the refund's out_request_no).
func (s *Sandbox) tradeNotificationFields(ctx context.Context, t *trade, rf *refund) (map[string]string, error) {
	f := map[string]string{
		"notify_type":     "trade_status_sync",
		"notify_id":       newNotifyID(),
		"app_id":          t.AppID,
		"auth_app_id":     t.AppID,
		"charset":         "utf-8",
		"version":         "1.0",
		"sign_type":       "RSA2",
		"trade_no":        t.TradeNo,
		"out_trade_no":    t.OutTradeNo,
		"seller_id":       s.app.sellerID,
		"trade_status":    t.Status,
		"total_amount":    formatYuan(t.TotalFen),
		"subject":         t.Subject,
		"body":            t.Body,
		"passback_params": t.PassbackParams,
		"gmt_create":      timeText(fromMillis(t.CreatedAt)),
	}
	if t.BuyerID != "" {
		u, err := userByID(ctx, s.db, t.BuyerID)
		if err != nil {
			return nil, err
		}
		f["buyer_id"], f["buyer_logon_id"] = u.id, u.logonID
		f["buyer_open_id"] = t.BuyerOpenID
	}
	if t.PaidAt != 0 {
		paid := formatYuan(t.TotalFen)
		f["receipt_amount"], f["invoice_amount"], f["buyer_pay_amount"], f["point_amount"] = paid, paid, paid, "0.00"
		f["gmt_payment"] = timeText(fromMillis(t.PaidAt))
		// Alipay writes this one JSON string with camelCase keys.
		f["fund_bill_list"] = `[{"amount":"` + paid + `","fundChannel":"ALIPAYACCOUNT"}]`
	}
	if t.ClosedAt != 0 {
		f["gmt_close"] = timeText(fromMillis(t.ClosedAt))
	}
	if rf != nil {
		f["out_biz_no"] = rf.OutRequestNo
		f["refund_fee"] = formatYuan(t.RefundedFen)
		f["gmt_refund"] = timeText(fromMillis(rf.CreatedAt))
	}
	return f, nil
}

// notifyTrade queues a trade_status_sync for t to notifyURL. The state change is already committed;
// a failure here is logged, not returned, so the caller's answer stays truthful about the trade.
func (s *Sandbox) notifyTrade(ctx context.Context, notifyURL string, t *trade, rf *refund) {
	if s.sender == nil {
		return
	}
	ctx = context.WithoutCancel(ctx) // the payer hanging up must not lose the notification
	fields, err := s.tradeNotificationFields(ctx, t, rf)
	if err == nil {
		var payload []byte
		if payload, err = json.Marshal(fields); err == nil {
			err = s.sender.Enqueue(ctx, walletName, fields["notify_id"], notifyURL, payload)
		}
	}
	if err != nil {
		s.log.Error("alipay sandbox: queue notification", "out_trade_no", t.OutTradeNo, "err", err)
	}
}
