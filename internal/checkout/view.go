package checkout

import (
	"net/url"
	"time"

	"github.com/hutong-pay/hutong/internal/payment"
)

// State is what the buyer is shown: a payment's status, with expiry told apart from other
// cancellations and a pending payment past its expires_at already shown as expired (the expiry
// job closes it shortly; the page keeps following it in case the wallet was paid at the last moment).
type State string

const (
	StatePending   State = "pending"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCanceled  State = "canceled"
	StateExpired   State = "expired"
)

func stateOf(p *payment.Payment, now time.Time) State {
	switch p.Status {
	case payment.StatusSucceeded:
		return StateSucceeded
	case payment.StatusFailed:
		return StateFailed
	case payment.StatusCanceled:
		if p.CancelReason == payment.CancelReasonExpired {
			return StateExpired
		}
		return StateCanceled
	}
	if !now.Before(p.ExpiresAt) {
		return StateExpired
	}
	return StatePending
}

// Status is the buyer-facing view of a payment: the JSON of /checkout/{id}/status and of the
// choose answer. It deliberately leaves out the merchant, reference, metadata, customer, payer
// and wallet identifiers: the buyer needs none of them.
type Status struct {
	ID            string           `json:"id"`
	Status        payment.Status   `json:"status"`
	State         State            `json:"state"`
	Final         bool             `json:"final"`
	CancelReason  string           `json:"cancel_reason,omitempty"`
	Amount        int64            `json:"amount"`
	Currency      string           `json:"currency"`
	AmountDisplay string           `json:"amount_display"`
	Provider      payment.Provider `json:"provider,omitempty"`
	Channel       payment.Channel  `json:"channel,omitempty"`
	NextAction    *NextAction      `json:"next_action"`
	ReturnURL     string           `json:"return_url,omitempty"`
	ExpiresAt     time.Time        `json:"expires_at"`
}

// NextAction is the part of a payment's next action the buyer's page acts on.
type NextAction struct {
	Type    string            `json:"type"`
	QRCode  string            `json:"qr_code,omitempty"`
	QRImage string            `json:"qr_image,omitempty"` // our PNG of QRCode (or of URL, for scanning from a phone)
	URL     string            `json:"url,omitempty"`
	Params  map[string]string `json:"params,omitempty"` // WeChat JSAPI getBrandWCPayRequest parameters
	TradeNo string            `json:"trade_no,omitempty"`
}

// FormatAmount renders minor units for the buyer, e.g. 1234 CNY → "¥12.34".
func FormatAmount(amount int64, currency string) string {
	if currency == "" || currency == "CNY" {
		return "¥" + payment.FormatYuan(amount)
	}
	return currency + " " + payment.FormatYuan(amount)
}

// buildStatus returns the buyer's view of p. returnURL is the checkout's own return page, which
// WeChat H5 is told to send the buyer back to.
func (c *Checkout) buildStatus(p *payment.Payment, now time.Time) *Status {
	st := &Status{
		ID: p.ID, Status: p.Status, State: stateOf(p, now), Final: p.Status.Final(), CancelReason: p.CancelReason,
		Amount: p.Amount, Currency: p.Currency, AmountDisplay: FormatAmount(p.Amount, p.Currency),
		Provider: p.Provider, Channel: p.Channel, ReturnURL: safeURL(p.ReturnURL), ExpiresAt: p.ExpiresAt,
	}
	// A payment past its expires_at is shown without its way to pay, even before the expiry
	// job has closed it at the wallet.
	if st.State == StatePending && p.NextAction != nil {
		st.NextAction = c.buyerAction(p)
	}
	return st
}

func (c *Checkout) buyerAction(p *payment.Payment) *NextAction {
	na := p.NextAction
	out := &NextAction{Type: na.Type}
	qrImage := "/checkout/" + p.ID + "/qr/" + string(p.Provider) + ".png"
	switch na.Type {
	case payment.ActionQRCode:
		out.QRCode, out.QRImage = na.QRCode, qrImage
	case payment.ActionRedirect:
		out.URL = safeURL(na.URL)
		if out.URL != "" && p.Provider == payment.WeChatPay && !hasQuery(out.URL, "redirect_url") {
			// WeChat H5 returns the buyer to redirect_url after the cashier (its documented
			// way); without it the buyer lands wherever WeChat decides. The connector may
			// have added it already.
			out.URL = addQuery(out.URL, "redirect_url", c.svc.CheckoutURL(p.ID)+"/return")
		}
		if out.URL != "" {
			out.QRImage = qrImage
		}
	case payment.ActionWeChatJSAPI:
		out.Params = na.Params
	case payment.ActionAlipayTrade:
		out.TradeNo = na.TradeNo
	}
	// ActionApp: the order string belongs to the merchant's app, not to a web page.
	return out
}

// safeURL returns raw when it is an absolute http(s) URL and "" otherwise, so that no other
// scheme ever becomes a link or a redirect target.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return raw
}

// addQuery appends key=value to raw's query, keeping the rest byte for byte (wallet URLs may be signed).
func addQuery(raw, key, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += url.QueryEscape(key) + "=" + url.QueryEscape(value)
	return u.String()
}

func hasQuery(raw, key string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has(key)
}
